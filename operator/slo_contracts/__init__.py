"""What the inference worker and the operator share, and nothing else.

The worker (`inference_worker`) and the operator (`slo_operator`) never import each other;
both import this package:

- `slo_contracts.buckets`: the histogram bucket edges of the worker's metrics (the operator's
  PromQL and the simulator read the same edges);
- `slo_contracts.profiles`: `VariantProfile` and `ProfileSet`, the performance profile JSON
  that `latencyslo calibrate` writes and the controller reads;
- `slo_contracts.batch_times`: `BatchTimes`, every measured batch time behind a profile (its
  optional `batch_times` field), for a simulator to draw service times from.
- `slo_contracts.runtime`: the bounds of a worker's runtime configuration (window, batch
  size, queue wait limit).

Pure: standard library only (a test checks the import graph).
"""
