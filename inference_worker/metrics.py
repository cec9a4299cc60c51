"""The worker's Prometheus metrics (names and labels are a contract: docs/contracts.md).

Each worker owns a registry (so tests can run several in one process) holding:

- `inference_request_duration_seconds{variant,outcome}`: every predict request the worker
  did not serve in time counts, so that a quantile over the histogram sees overload:
  `outcome="served"` (200) and `"timeout"` (504) are observed at their arrival-to-response
  time; `"refused"` (503 queue full / not ready / shutting down, 429) and `"failed"` (500 and
  any other 5xx) are observed at `NOT_SERVED_SECONDS`, above the highest bucket edge, so they
  land in the `+Inf` bucket only: a breach of every target the buckets can express. Client
  errors (4xx other than 429) are not observed: a malformed request is not load, and must not
  make the controller scale;
- `inference_batch_size`: texts per batch;
- `inference_batch_duration_seconds{variant}`: service time of one batch (tokenize + forward);
- `inference_queue_depth`: texts waiting for a batch;
- `inference_requests_total{variant,code}`: every answered predict request by HTTP status;
- `inference_runtime_config_info{variant,batch_window_ms,max_batch_size,max_queue_wait_ms}`: 1
  for the config in force (one series; `max_queue_wait_ms` 0: no limit);
- `inference_variant_accuracy{variant}`: held-out accuracy of each variant in the manifest
  that states one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from inference_worker.config import RuntimeSettings
from slo_contracts.buckets import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S

CONTENT_TYPE = CONTENT_TYPE_LATEST
NOT_SERVED_SECONDS = 10.0
"""Value observed for a refused or failed request: above the highest latency bucket edge
(`LATENCY_BUCKETS_S[-1]`), so only `le="+Inf"` counts it, and finite, so `_sum` stays usable
(take mean latencies over `outcome="served"`). 10 s is the default request deadline."""
assert LATENCY_BUCKETS_S[-1] < NOT_SERVED_SECONDS


def outcome(code: int) -> str | None:
    """The `outcome` label of a predict answer, or None for a client error (not observed)."""
    if code == 200:
        return "served"
    if code == 504:
        return "timeout"
    if code in (429, 503):
        return "refused"
    if code >= 500:
        return "failed"
    return None


disable_created_metrics()  # no `*_created` series: nothing reads them, they double the output


class WorkerMetrics:
    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.request_duration = Histogram(
            "inference_request_duration_seconds",
            "Time from arrival at the handler to the response (queue + batch wait + compute); "
            "refused and failed requests at NOT_SERVED_SECONDS (+Inf bucket).",
            ["variant", "outcome"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "inference_batch_size", "Texts per batch.", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_duration = Histogram(
            "inference_batch_duration_seconds",
            "Model service time of one batch (tokenize + forward).",
            ["variant"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue_depth = Gauge(
            "inference_queue_depth", "Texts waiting in the batch queue.", registry=r
        )
        self.queue_depth.set_function(queue_depth)
        self.requests = Counter(
            "inference_requests",
            "Predict requests answered, by the variant in force and HTTP status code.",
            ["variant", "code"],
            registry=r,
        )
        self.config_info = Gauge(
            "inference_runtime_config_info",
            "1 for the runtime configuration in force.",
            ["variant", "batch_window_ms", "max_batch_size", "max_queue_wait_ms"],
            registry=r,
        )
        self.accuracy = Gauge(
            "inference_variant_accuracy",
            "Held-out accuracy of each variant (from the manifest).",
            ["variant"],
            registry=r,
        )
        self._config_labels: tuple[str, str, str, str] | None = None

    def observe_request(self, variant: str, code: int, seconds: float) -> None:
        """Count one answered predict request (see the module docstring for what is observed)."""
        self.requests.labels(variant, str(code)).inc()
        kind = outcome(code)
        if kind is None:
            return
        value = seconds if kind in ("served", "timeout") else NOT_SERVED_SECONDS
        self.request_duration.labels(variant, kind).observe(value)

    def set_accuracy(self, accuracies: Mapping[str, float | None]) -> None:
        for name, acc in accuracies.items():
            if acc is not None:
                self.accuracy.labels(variant=name).set(acc)

    def set_config(self, settings: RuntimeSettings) -> None:
        labels = (
            settings.variant,
            settings.window_label(),
            str(settings.max_batch_size),
            settings.queue_wait_label(),
        )
        if labels == self._config_labels:
            return
        if self._config_labels is not None:
            self.config_info.remove(*self._config_labels)
        self.config_info.labels(*labels).set(1)
        self._config_labels = labels

    def render(self) -> bytes:
        return generate_latest(self.registry)
