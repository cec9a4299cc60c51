"""The operator's own Prometheus metrics (names: docs/contracts.md), each labelled namespace/name.

One `OperatorMetrics` owns its own `CollectorRegistry` (so tests and embedded runs never clash
with the process-global one) and is served on its own port by `serve()`. The control loop feeds
it through `record_step`; `forget` drops a deleted LatencySLO's series.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from slo_operator.spec import VARIANTS, Action, ConditionType, LatencySLOSpec, LatencySLOStatus

LABELS = ("namespace", "name")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _seconds(ms: float | None) -> float:
    return ms / 1000.0 if ms is not None and math.isfinite(ms) else math.nan


class OperatorMetrics:
    """Gauges, counters and a histogram per LatencySLO."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.observed_p99 = Gauge(
            "latencyslo_observed_p99_seconds",
            "Observed latency at the objective's percentile (NaN when there is no data).",
            LABELS,
            registry=r,
        )
        self.target = Gauge(
            "latencyslo_target_seconds", "Target latency of the objective.", LABELS, registry=r
        )
        self.replicas = Gauge(
            "latencyslo_replicas", "Replicas of the target Deployment in force.", LABELS, registry=r
        )
        self.batch_window = Gauge(
            "latencyslo_batch_window_seconds", "Batch window in force.", LABELS, registry=r
        )
        self.variant = Gauge(
            "latencyslo_variant_info",
            "1 for the model variant in force, 0 for the others.",
            (*LABELS, "variant"),
            registry=r,
        )
        self.decisions = Counter(
            "latencyslo_decisions",
            "Decisions taken, by main action (Hold included).",
            (*LABELS, "action"),
            registry=r,
        )
        self.duration = Histogram(
            "latencyslo_reconcile_duration_seconds",
            "Duration of one control step (read, observe, decide, act, status).",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.prometheus_errors = Counter(
            "latencyslo_prometheus_errors",
            "Prometheus queries that failed (unreachable, timeout, HTTP error).",
            LABELS,
            registry=r,
        )
        self.quality_spent = Gauge(
            "latencyslo_quality_budget_spent_ratio",
            "degradedFraction / maxDegradedFraction (1 = quality budget used up).",
            LABELS,
            registry=r,
        )
        self.slo_met = Gauge(
            "latencyslo_slo_met",
            "1 when the SLO is met, 0 when breached, NaN when unknown.",
            LABELS,
            registry=r,
        )
        self.condition = Gauge(
            "latencyslo_condition",
            "1 when the condition is True, else 0.",
            (*LABELS, "type"),
            registry=r,
        )
        self.step_lag = Histogram(
            "latencyslo_operator_step_start_lag_seconds",
            "How late a control step started after its due time (queueing for a step slot "
            "included); operator-wide.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.prometheus_queries = Counter(
            "latencyslo_operator_prometheus_queries",
            "Instant queries sent to Prometheus (batched: one per figure per group); "
            "operator-wide.",
            registry=r,
        )
        self._server: Any = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on `port` (a background thread); 0 disables it."""
        if port:
            self._server = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            thread.join(timeout=5)
            self._server = None

    def step_started(self, lag_s: float) -> None:
        self.step_lag.observe(max(0.0, lag_s))

    def prometheus_error(self, namespace: str, name: str) -> None:
        self.prometheus_errors.labels(namespace, name).inc()

    def record_step(
        self,
        namespace: str,
        name: str,
        *,
        spec: LatencySLOSpec | None,
        status: LatencySLOStatus,
        action: Action | None,
        duration_s: float,
    ) -> None:
        labels = (namespace, name)
        self.duration.labels(*labels).observe(max(0.0, duration_s))
        if action is not None:
            self.decisions.labels(*labels, str(action)).inc()
        observed = status.observed.p99_ms if status.observed else None
        self.observed_p99.labels(*labels).set(_seconds(observed))
        if spec is not None:
            self.target.labels(*labels).set(spec.objective.latency_ms / 1000.0)
            budget = spec.variants.quality_budget.max_degraded_fraction
            spent = status.quality_budget.degraded_fraction if status.quality_budget else 0.0
            self.quality_spent.labels(*labels).set(
                spent / budget if budget > 0 else (math.inf if spent > 0 else 0.0)
            )
        current = status.current
        if current is not None:
            if current.replicas is not None:
                self.replicas.labels(*labels).set(current.replicas)
            if current.batch_window_ms is not None:
                self.batch_window.labels(*labels).set(current.batch_window_ms / 1000.0)
            if current.variant is not None:
                for variant in VARIANTS:
                    self.variant.labels(*labels, variant).set(
                        1.0 if variant == current.variant else 0.0
                    )
        met = {"True": 1.0, "False": 0.0}
        for condition in status.conditions:
            self.condition.labels(*labels, condition.type).set(
                1.0 if condition.status == "True" else 0.0
            )
            if condition.type == ConditionType.SLO_MET:
                self.slo_met.labels(*labels).set(met.get(condition.status, math.nan))

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted LatencySLO."""
        for metric in (
            self.observed_p99,
            self.target,
            self.replicas,
            self.batch_window,
            self.variant,
            self.decisions,
            self.duration,
            self.prometheus_errors,
            self.quality_spent,
            self.slo_met,
            self.condition,
        ):
            if hasattr(metric, "remove_by_labels"):  # prometheus_client >= 0.22
                metric.remove_by_labels({"namespace": namespace, "name": name})
            else:
                for labels in list(metric._metrics):
                    if labels[:2] == (namespace, name):
                        metric.remove(*labels)
