"""The operator's own metrics: exactly the contract's names, labelled namespace/name, served on
their own port, dropped when a LatencySLO is deleted; decisions counted by action and by a
reason from a fixed set; the objective's percentile and histogram as an info series."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slo_local.promserver import free_port
from slo_operator.opmetrics import DecisionReason, OperatorMetrics, decision_reason
from slo_operator.policy.trust import Trust
from slo_operator.spec import (
    Action,
    Condition,
    CurrentStatus,
    LatencySLOSpec,
    LatencySLOStatus,
    ObservedStatus,
    QualityBudgetStatus,
)
from slo_operator.status import timestamp
from slo_operator.types import Decision, Fault, RuntimeConfig

CONTRACT = {  # docs/contracts.md, "Operator"
    "latencyslo_observed_latency_seconds",
    "latencyslo_predicted_latency_seconds",
    "latencyslo_last_change_observed_latency_seconds",
    "latencyslo_last_change_predicted_latency_seconds",
    "latencyslo_objective_info",
    "latencyslo_target_seconds",
    "latencyslo_replicas",
    "latencyslo_batch_window_seconds",
    "latencyslo_variant_info",
    "latencyslo_decisions_total",
    "latencyslo_reconcile_duration_seconds",
    "latencyslo_prometheus_errors_total",
    "latencyslo_quality_budget_spent_ratio",
    "latencyslo_slo_met",
    "latencyslo_condition",
}
SPEC = LatencySLOSpec.model_validate({"targetRef": {"name": "w"}, "objective": {"latencyMs": 150}})
CONFIG = RuntimeConfig(4, 12, 32, "quantized")
TRUSTED = Trust(True, True, True)
R = DecisionReason
LOW = Trust(False, False, True, "low traffic")
NAN = Trust(False, True, True, "no quantile", Fault.NO_DATA)
OLD = Trust(False, False, False, "stale", Fault.STALE)
DOWN = Trust(False, False, False, "unreachable", Fault.QUERY_FAILED)


def spec(**objective: Any) -> LatencySLOSpec:
    return LatencySLOSpec.model_validate(
        {
            "targetRef": {"name": "w"},
            "objective": {"latencyMs": 150, **objective},
            "metrics": {"histogram": "my_latency_seconds"},
        }
    )


def decision(action: Action = Action.DEGRADE_VARIANT, predicted: float | None = 120.0) -> Decision:
    return Decision(
        action, CONFIG, "words that never reach a label", predicted_latency_ms=predicted
    )


def status(observed_ms: float | None = 212.0, degraded: float = 0.05) -> LatencySLOStatus:
    return LatencySLOStatus(
        observed=ObservedStatus(latency_ms=observed_ms),
        current=CurrentStatus(
            replicas=4, ready_replicas=2, batch_window_ms=12, max_batch_size=32, variant="quantized"
        ),
        quality_budget=QualityBudgetStatus(degraded_fraction=degraded),
        conditions=[
            Condition(
                type="SLOMet", status="False", reason="Breached", last_transition_time=timestamp(0)
            ),
            Condition(
                type="QualityDegraded",
                status="True",
                reason="DegradedVariant",
                last_transition_time=timestamp(0),
            ),
        ],
    )


def samples(metrics: OperatorMetrics) -> dict[tuple[str, frozenset], float]:
    from prometheus_client import generate_latest

    found = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_names_labels_and_values() -> None:
    metrics = OperatorMetrics()
    metrics.record_step(
        "ml", "s", spec=SPEC, status=status(), decision=decision(), trust=TRUSTED, duration_s=0.2
    )
    metrics.prometheus_error("ml", "s")
    got = samples(metrics)
    names = {name for name, _ in got}
    for name in CONTRACT:
        base = name.removesuffix("_total")
        assert name in names or f"{base}_count" in names or f"{name}_count" in names, name
    assert not any("p99" in name for name in names)
    for (name, labels), _ in got.items():
        if name.startswith("latencyslo_") and not name.startswith("latencyslo_operator_"):
            assert dict(labels)["namespace"] == "ml"
            assert dict(labels)["name"] == "s"
    ml = frozenset({("namespace", "ml"), ("name", "s")})
    assert got[("latencyslo_observed_latency_seconds", ml)] == 0.212
    assert got[("latencyslo_predicted_latency_seconds", ml)] == 0.12
    assert got[("latencyslo_last_change_observed_latency_seconds", ml)] == 0.212
    assert got[("latencyslo_last_change_predicted_latency_seconds", ml)] == 0.12
    assert got[("latencyslo_target_seconds", ml)] == 0.15
    assert got[("latencyslo_replicas", ml)] == 4
    assert got[("latencyslo_batch_window_seconds", ml)] == 0.012
    assert got[("latencyslo_variant_info", ml | {("variant", "quantized")})] == 1
    assert got[("latencyslo_variant_info", ml | {("variant", "full")})] == 0
    decided = ml | {("action", "DegradeVariant"), ("reason", "Breach")}
    assert got[("latencyslo_decisions_total", decided)] == 1
    objective = ml | {
        ("percentile", "99"),
        ("quantile", "0.99"),
        ("histogram", "inference_request_duration_seconds"),
        ("target", "w"),
    }
    assert got[("latencyslo_objective_info", objective)] == 1
    assert got[("latencyslo_prometheus_errors_total", ml)] == 1
    assert got[("latencyslo_quality_budget_spent_ratio", ml)] == 0.25
    assert got[("latencyslo_slo_met", ml)] == 0
    assert got[("latencyslo_condition", ml | {("type", "QualityDegraded")})] == 1
    assert got[("latencyslo_reconcile_duration_seconds_count", ml)] == 1


def test_reason_is_never_the_decision_text() -> None:
    metrics = OperatorMetrics()
    for action in Action:
        metrics.record_step(
            "ml", "s", spec=SPEC, status=status(), decision=decision(action), duration_s=0.1
        )
    reasons = {
        dict(labels)["reason"]
        for (name, labels) in samples(metrics)
        if name == "latencyslo_decisions_total"
    }
    assert reasons
    assert reasons <= {r.value for r in DecisionReason}


@pytest.mark.parametrize(
    ("action", "trust", "observed", "degraded", "mode", "expected"),
    [
        (Action.SCALE_UP, TRUSTED, 212.0, 0.0, "Enforce", R.BREACH),
        (Action.HOLD, TRUSTED, 212.0, 0.0, "Enforce", R.BREACH),
        (Action.SCALE_UP, TRUSTED, 120.0, 0.0, "Enforce", R.FORECAST),
        (Action.DEGRADE_VARIANT, TRUSTED, 140.0, 0.0, "Recommend", R.FORECAST),
        (Action.WIDEN_WINDOW, TRUSTED, 90.0, 0.0, "Enforce", R.FORECAST),
        (Action.SCALE_DOWN, TRUSTED, 40.0, 0.0, "Enforce", R.SURPLUS),
        (Action.NARROW_WINDOW, TRUSTED, 40.0, 0.0, "Enforce", R.SURPLUS),
        (Action.HOLD, TRUSTED, 100.0, 0.0, "Enforce", R.STEADY),
        (Action.RESTORE_VARIANT, TRUSTED, 60.0, 0.05, "Enforce", R.RECOVERED),
        (Action.RESTORE_VARIANT, TRUSTED, 60.0, 0.2, "Enforce", R.QUALITY_BUDGET_SPENT),
        (Action.RESTORE_VARIANT, TRUSTED, 212.0, 0.1, "Enforce", R.QUALITY_BUDGET_SPENT),
        (Action.HOLD, LOW, None, 0.0, "Enforce", R.LOW_TRAFFIC),
        (Action.HOLD, NAN, None, 0.0, "Enforce", R.NO_DATA),
        (Action.SCALE_UP, NAN, None, 0.0, "Enforce", R.NO_DATA),
        (Action.HOLD, OLD, 99.0, 0.0, "Enforce", R.STALE_DATA),
        (Action.HOLD, DOWN, None, 0.0, "Enforce", R.QUERY_FAILED),
        (Action.HOLD, None, None, 0.0, "Enforce", R.NO_DATA),
        (Action.HOLD, TRUSTED, 212.0, 0.0, "Paused", R.PAUSED),
    ],
)  # fmt: skip
def test_decision_reason(
    action: Action,
    trust: Trust | None,
    observed: float | None,
    degraded: float,
    mode: str,
    expected: DecisionReason,
) -> None:
    s = LatencySLOSpec.model_validate(
        {
            "targetRef": {"name": "w"},
            "objective": {"latencyMs": 150},
            "variants": {"qualityBudget": {"maxDegradedFraction": 0.2, "windowMinutes": 60}},
            "policy": {"mode": mode},
        }
    )
    assert decision_reason(s, decision(action), trust, observed, degraded) is expected


def test_holds_do_not_move_the_last_change_and_no_prediction_is_nan() -> None:
    metrics = OperatorMetrics()
    get = metrics.registry.get_sample_value
    ml = {"namespace": "ml", "name": "s"}
    metrics.record_step(
        "ml", "s", spec=SPEC, status=status(212.0), decision=decision(), duration_s=0.1
    )
    metrics.record_step(
        "ml",
        "s",
        spec=SPEC,
        status=status(90.0),
        decision=decision(Action.HOLD, predicted=None),
        duration_s=0.1,
    )
    assert get("latencyslo_observed_latency_seconds", ml) == 0.09
    assert math.isnan(get("latencyslo_predicted_latency_seconds", ml))
    assert get("latencyslo_last_change_observed_latency_seconds", ml) == 0.212
    assert get("latencyslo_last_change_predicted_latency_seconds", ml) == 0.12
    # no decision (a conflict, an unreadable target): nothing counted, nothing predicted
    metrics.record_step("ml", "s", spec=SPEC, status=status(90.0), decision=None, duration_s=0.1)
    total = sum(
        v for (n, labels), v in samples(metrics).items() if n == "latencyslo_decisions_total"
    )
    assert total == 2


def test_objective_info_follows_the_spec() -> None:
    metrics = OperatorMetrics()
    for s in (spec(), spec(percentile=99.9), spec(percentile=95)):
        metrics.record_step("ml", "s", spec=s, status=status(), decision=decision(), duration_s=0)
    infos = [
        dict(labels)
        for (name, labels), value in samples(metrics).items()
        if name == "latencyslo_objective_info" and value == 1
    ]
    assert infos == [
        {
            "namespace": "ml",
            "name": "s",
            "percentile": "95",
            "quantile": "0.95",
            "histogram": "my_latency_seconds",
            "target": "w",
        }
    ]


def test_forget_drops_every_series_of_one_object() -> None:
    metrics = OperatorMetrics()
    for name in ("a", "b"):
        metrics.record_step(
            "ml", name, spec=SPEC, status=status(), decision=decision(), duration_s=0.1
        )
    metrics.forget("ml", "a")
    names = {
        dict(labels).get("name")
        for (metric, labels) in samples(metrics)
        if metric.startswith("latencyslo_") and not metric.startswith("latencyslo_operator_")
    }
    assert names == {"b"}
    # a LatencySLO created again under the same name gets its objective series back
    metrics.record_step("ml", "a", spec=SPEC, status=status(), decision=None, duration_s=0.1)
    assert metrics.registry.get_sample_value(
        "latencyslo_objective_info",
        {
            "namespace": "ml",
            "name": "a",
            "percentile": "99",
            "quantile": "0.99",
            "histogram": "inference_request_duration_seconds",
            "target": "w",
        },
    )


def test_served_on_its_own_port() -> None:
    metrics = OperatorMetrics()
    metrics.record_step("ml", "s", spec=SPEC, status=status(), decision=None, duration_s=0.1)
    port = free_port()
    metrics.serve(port, addr="127.0.0.1")
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()
    assert 'latencyslo_replicas{name="s",namespace="ml"} 4.0' in body
