"""The operator's own metrics: exactly the contract's names, labelled namespace/name, served on
their own port, dropped when a LatencySLO is deleted."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from slo_local.promserver import free_port
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.spec import (
    Condition,
    CurrentStatus,
    LatencySLOSpec,
    LatencySLOStatus,
    ObservedStatus,
    QualityBudgetStatus,
)
from slo_operator.status import timestamp

CONTRACT = {  # docs/contracts.md, "Operator"
    "latencyslo_observed_p99_seconds",
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


def status() -> LatencySLOStatus:
    return LatencySLOStatus(
        observed=ObservedStatus(p99_ms=212.0),
        current=CurrentStatus(
            replicas=4, ready_replicas=2, batch_window_ms=12, max_batch_size=32, variant="quantized"
        ),
        quality_budget=QualityBudgetStatus(degraded_fraction=0.05),
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
        "ml", "s", spec=SPEC, status=status(), action="DegradeVariant", duration_s=0.2
    )
    metrics.prometheus_error("ml", "s")
    got = samples(metrics)
    names = {name for name, _ in got}
    for name in CONTRACT:
        base = name.removesuffix("_total")
        assert name in names or f"{base}_count" in names or f"{name}_count" in names, name
    for (name, labels), _ in got.items():
        if name.startswith("latencyslo_") and not name.startswith("latencyslo_operator_"):
            assert dict(labels)["namespace"] == "ml"
            assert dict(labels)["name"] == "s"
    ml = frozenset({("namespace", "ml"), ("name", "s")})
    assert got[("latencyslo_observed_p99_seconds", ml)] == 0.212
    assert got[("latencyslo_target_seconds", ml)] == 0.15
    assert got[("latencyslo_replicas", ml)] == 4
    assert got[("latencyslo_batch_window_seconds", ml)] == 0.012
    assert got[("latencyslo_variant_info", ml | {("variant", "quantized")})] == 1
    assert got[("latencyslo_variant_info", ml | {("variant", "full")})] == 0
    assert got[("latencyslo_decisions_total", ml | {("action", "DegradeVariant")})] == 1
    assert got[("latencyslo_prometheus_errors_total", ml)] == 1
    assert got[("latencyslo_quality_budget_spent_ratio", ml)] == 0.25
    assert got[("latencyslo_slo_met", ml)] == 0
    assert got[("latencyslo_condition", ml | {("type", "QualityDegraded")})] == 1
    assert got[("latencyslo_reconcile_duration_seconds_count", ml)] == 1


def test_forget_drops_every_series_of_one_object() -> None:
    metrics = OperatorMetrics()
    for name in ("a", "b"):
        metrics.record_step("ml", name, spec=SPEC, status=status(), action="Hold", duration_s=0.1)
    metrics.forget("ml", "a")
    names = {
        dict(labels).get("name")
        for (metric, labels) in samples(metrics)
        if metric.startswith("latencyslo_") and not metric.startswith("latencyslo_operator_")
    }
    assert names == {"b"}


def test_served_on_its_own_port() -> None:
    metrics = OperatorMetrics()
    metrics.record_step("ml", "s", spec=SPEC, status=status(), action="Hold", duration_s=0.1)
    port = free_port()
    metrics.serve(port, addr="127.0.0.1")
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()
    assert 'latencyslo_replicas{name="s",namespace="ml"} 4.0' in body
