"""What a simulated run records (`Trace`, per second), the physical settings of the simulated
cluster (`SimSettings`) and the latency histogram's shape."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.types import RuntimeConfig

EDGES_S = np.asarray(LATENCY_BUCKETS_MS, dtype=float) / 1000.0
N_BUCKETS = len(LATENCY_BUCKETS_MS) + 1  # + the +Inf bucket


@dataclass(frozen=True)
class SimSettings:
    """Physical settings of the simulated cluster (not of any controller)."""

    startup_s: int = 30
    """Pod start + model load: seconds from a scale-up until the replica is ready."""
    switch_s: int = 2
    """Seconds from a variant switch order until running replicas serve the new variant."""
    scrape_s: int = 5
    """Prometheus scrape interval; observations see data up to the last scrape."""
    queue_limit: int = 256
    """Requests a replica queues before it answers 503 (the worker's `--max-queue` default)."""
    queue_wait_ms: float = 0.0
    """A request that has waited longer than the batch window plus this when its batch
    leaves is answered 503 unrun (the worker's `--max-queue-wait-ms`; 0, its default: no
    limit)."""
    service_cv: float = 0.05
    """Coefficient of variation of the batch service time (log-normal jitter)."""

    def unbounded(self) -> SimSettings:
        """These settings with the worker's queue unbounded and no queue wait limit: a load
        test measures what the model serves within the target, not what the queue refuses."""
        return replace(self, queue_limit=1 << 30, queue_wait_ms=0.0)


@dataclass
class Trace:
    """Per-second records of one run (for metrics and plots)."""

    desired: np.ndarray
    ready: np.ndarray
    pods: np.ndarray
    window_ms: np.ndarray
    max_batch: np.ndarray
    variant: np.ndarray  # index into the profile's variant names
    arrivals: np.ndarray  # arrivals per second
    rejected: np.ndarray
    completed: np.ndarray  # completions per second
    ok: np.ndarray  # completions within the target per second
    hist: np.ndarray  # (seconds, buckets) completions per latency bucket
    busy: np.ndarray  # mean busy share of ready pods per second
    inflight: np.ndarray  # requests queued or in service at the end of each second
    served_accuracy: np.ndarray  # per second: sum of the serving variant's accuracy
    served_known_accuracy: np.ndarray  # per second: requests served by a variant with one
    decisions: list[tuple[int, RuntimeConfig, RuntimeConfig]] = field(default_factory=list)
    variant_names: tuple[str, ...] = ()
    target_ms: float = 0.0
    unserved: int = 0  # accepted requests still queued at the end


def slice_trace(trace: Trace, start: int) -> Trace:
    """The trace from second `start` on (decisions re-timed), e.g. to drop a warm-up."""
    if start <= 0:
        return trace
    cut = {
        name: getattr(trace, name)[start:]
        for name in (
            "desired", "ready", "pods", "window_ms", "max_batch", "variant", "arrivals",
            "rejected", "completed", "ok", "hist", "busy", "inflight", "served_accuracy",
            "served_known_accuracy",
        )
    }  # fmt: skip
    return Trace(
        **cut,
        decisions=[(t - start, a, b) for t, a, b in trace.decisions if t >= start],
        variant_names=trace.variant_names,
        target_ms=trace.target_ms,
        unserved=trace.unserved,
    )
