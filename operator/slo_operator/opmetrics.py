"""The operator's own Prometheus metrics (names: docs/contracts.md), each labelled namespace/name.

One `OperatorMetrics` owns its own `CollectorRegistry` (so tests and embedded runs never clash
with the process-global one) and is served on its own port by `serve()`. The control loop feeds
it through `record_step`; `forget` drops a deleted LatencySLO's series.

Every label value is bounded: namespace and name of the object, an `Action`, a
`DecisionReason` (derived from the decision and the trust in its data, never from text), a
variant, a condition type, and the objective's percentile, histogram and target (one series
per LatencySLO at a time).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from slo_operator.policy.trust import Trust
from slo_operator.spec import (
    VARIANTS,
    Action,
    ConditionType,
    LatencySLOSpec,
    LatencySLOStatus,
    Mode,
)
from slo_operator.types import Decision, Fault

LABELS = ("namespace", "name")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
OBJECTIVE_LABELS = ("percentile", "quantile", "histogram", "target")


class DecisionReason(StrEnum):
    """Why the controller decided what it did: the `reason` label of
    `latencyslo_decisions_total` (a fixed set; the words are in the status and the Events)."""

    BREACH = "Breach"
    """The trusted quantile is above the target."""
    FORECAST = "Forecast"
    """Within the target, but the model needs more for the load (capacity added, a bridge
    variant or a wider window), e.g. a rising rate or a prediction above the aim."""
    SURPLUS = "Surplus"
    """Within the target with capacity to spare: a replica removed or the window narrowed."""
    RECOVERED = "Recovered"
    """The preferred variant restored: the ready replicas hold the aim with it."""
    QUALITY_BUDGET_SPENT = "QualityBudgetSpent"
    """The preferred variant restored because the quality budget is spent."""
    STEADY = "Steady"
    """Within the target, nothing to change."""
    LOW_TRAFFIC = "LowTraffic"
    """The request rate is below minRequestRate: the quantile is not acted on."""
    NO_DATA = "NoData"
    """No usable quantile or rate (`Fault.NO_DATA`)."""
    STALE_DATA = "StaleData"
    """The newest sample is older than the staleness limit (`Fault.STALE`)."""
    QUERY_FAILED = "QueryFailed"
    """The metrics source could not be asked (`Fault.QUERY_FAILED`)."""
    PAUSED = "Paused"
    """`policy.mode` is Paused."""


_FAULT_REASON = {
    Fault.NO_DATA: DecisionReason.NO_DATA,
    Fault.STALE: DecisionReason.STALE_DATA,
    Fault.QUERY_FAILED: DecisionReason.QUERY_FAILED,
}
_MORE = (Action.SCALE_UP, Action.DEGRADE_VARIANT, Action.WIDEN_WINDOW)


def decision_reason(
    spec: LatencySLOSpec,
    decision: Decision,
    trust: Trust | None,
    observed_ms: float | None,
    degraded_fraction: float,
) -> DecisionReason:
    """The `DecisionReason` of one decision (pure; see the enum for each value).

    `trust` is the controller's trust in the observation the decision was taken on (None: no
    observation); `observed_ms` the quantile it observed; `degraded_fraction` the share of the
    quality-budget window spent off the preferred variant after the step."""
    if spec.policy.mode is Mode.PAUSED:
        return DecisionReason.PAUSED
    if trust is None:
        return DecisionReason.NO_DATA
    if not trust.latency:
        if trust.fault is not None:
            return _FAULT_REASON[trust.fault]
        return DecisionReason.LOW_TRAFFIC
    breach = observed_ms is not None and observed_ms > spec.target_latency_ms
    action = decision.action
    if action is Action.RESTORE_VARIANT:
        budget = spec.variants.quality_budget
        window_s = budget.window_minutes * 60.0
        left_s = (budget.max_degraded_fraction - degraded_fraction) * window_s
        if breach or left_s <= spec.policy.interval_seconds:
            return DecisionReason.QUALITY_BUDGET_SPENT
        return DecisionReason.RECOVERED
    if breach:
        return DecisionReason.BREACH
    if action in _MORE:
        return DecisionReason.FORECAST
    if action is Action.HOLD:
        return DecisionReason.STEADY
    return DecisionReason.SURPLUS


def _seconds(ms: float | None) -> float:
    return ms / 1000.0 if ms is not None and math.isfinite(ms) else math.nan


def objective_labels(spec: LatencySLOSpec) -> tuple[str, str, str, str]:
    """(percentile, quantile, histogram, target) of `latencyslo_objective_info`: `99`, `0.99`,
    the histogram's base name, the target Deployment."""
    pct = spec.objective.percentile
    return f"{pct:g}", f"{pct / 100.0:g}", spec.metrics.histogram, spec.target_ref.name


class OperatorMetrics:
    """Gauges, counters and a histogram per LatencySLO."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.observed_latency = Gauge(
            "latencyslo_observed_latency_seconds",
            "Observed latency at the objective's percentile (NaN when there is no data).",
            LABELS,
            registry=r,
        )
        self.predicted_latency = Gauge(
            "latencyslo_predicted_latency_seconds",
            "The controller's predicted latency at the objective's percentile for the "
            "configuration it chose at the last step (NaN when it predicted nothing).",
            LABELS,
            registry=r,
        )
        self.change_observed = Gauge(
            "latencyslo_last_change_observed_latency_seconds",
            "Observed latency at the objective's percentile that the last decision changing "
            "something (applied or recommended) acted on (NaN: none known).",
            LABELS,
            registry=r,
        )
        self.change_predicted = Gauge(
            "latencyslo_last_change_predicted_latency_seconds",
            "Predicted latency at the objective's percentile for the configuration the last "
            "decision changing something chose (NaN: none predicted).",
            LABELS,
            registry=r,
        )
        self.objective = Gauge(
            "latencyslo_objective_info",
            "1 for the objective in force: its percentile (99), quantile (0.99), latency "
            "histogram and target Deployment.",
            (*LABELS, *OBJECTIVE_LABELS),
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
            "Decisions taken, by main action (Hold included) and reason (a fixed set).",
            (*LABELS, "action", "reason"),
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
        self._objectives: dict[tuple[str, str], tuple[str, str, str, str]] = {}
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
        decision: Decision | None,
        trust: Trust | None = None,
        duration_s: float,
    ) -> None:
        """One control step: `decision` is the controller's (None: none was taken: a conflict,
        an unreadable target, an invalid spec, a change finished after an interruption),
        `trust` the controller's trust in the observation it was taken on."""
        labels = (namespace, name)
        self.duration.labels(*labels).observe(max(0.0, duration_s))
        observed = status.observed.latency_ms if status.observed else None
        self.observed_latency.labels(*labels).set(_seconds(observed))
        predicted = decision.predicted_latency_ms if decision is not None else None
        self.predicted_latency.labels(*labels).set(_seconds(predicted))
        spent = status.quality_budget.degraded_fraction if status.quality_budget else 0.0
        if spec is not None:
            self._objective(labels, objective_labels(spec))
            if decision is not None:
                reason = decision_reason(spec, decision, trust, observed, spent)
                self.decisions.labels(*labels, str(decision.action), str(reason)).inc()
                if not decision.is_hold:
                    self.change_observed.labels(*labels).set(_seconds(observed))
                    self.change_predicted.labels(*labels).set(_seconds(predicted))
            self.target.labels(*labels).set(spec.objective.latency_ms / 1000.0)
            budget = spec.variants.quality_budget.max_degraded_fraction
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

    def _objective(self, labels: tuple[str, str], objective: tuple[str, str, str, str]) -> None:
        """One `latencyslo_objective_info` series per LatencySLO: the old one goes when the
        objective changes."""
        before = self._objectives.get(labels)
        if before == objective:
            return
        if before is not None:
            self.objective.remove(*labels, *before)
        self.objective.labels(*labels, *objective).set(1.0)
        self._objectives[labels] = objective

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted LatencySLO."""
        self._objectives.pop((namespace, name), None)
        for metric in (
            self.observed_latency,
            self.predicted_latency,
            self.change_observed,
            self.change_predicted,
            self.objective,
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
