"""Local tooling around the operator: what `latencyslo demo` and the tests run on one machine.

Nothing here ships in the operator image (the image installs `slo_operator` and
`slo_contracts` only):

- `slo_local.demo`: the demo (scenario, run, timeline, simulator twin, terminal view, command);
- `slo_local.actuator`: `LocalActuator`, the `Actuator` port on local worker processes;
- `slo_local.scrape`: `DirectScrape`, the `MetricsSource` port reading worker `/metrics`;
- `slo_local.promserver`: a throwaway Prometheus server for the demo and the tests;
- `slo_local.loadgen`: the open-loop load generator and the round-robin router.

It depends on `slo_operator` and `inference_worker`; neither depends on it.
"""
