"""The control loop with fake ports (metrics source, actuator, store) and the real policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from slo_operator.errors import StoreError, TargetNotFoundError
from slo_operator.loop import Conflict, ControlLoop
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.policy import OperatorLimits
from slo_operator.types import (
    ApplyResult,
    Fault,
    Observation,
    ProfileSet,
    RuntimeConfig,
    VariantProfile,
)

T0 = 1_800_000_000.0
PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(10.0, 8.0, 0.90),
        "quantized": VariantProfile(5.0, 4.0, 0.88),
        "distilled": VariantProfile(2.0, 2.0, 0.85),
    }
)


def spec(**policy: Any) -> dict[str, Any]:
    """The loop's tests' LatencySLO: the replica counts they expect are sized at the aim of
    headroom 0.8 (120 ms), whatever the default is."""
    return {
        "targetRef": {"name": "sentiment-worker"},
        "objective": {"latencyMs": 150, "windowSeconds": 15},
        "policy": {"intervalSeconds": 5, "scaleUpCooldownSeconds": 0, "headroom": 0.8, **policy},
    }


class FakeMetrics:
    """Answers each observe() with the next scripted (latency_ms, rate) or an error string (a
    failed query when it says so, else no data)."""

    def __init__(self, *script: tuple[float, float] | str) -> None:
        self.script = list(script)
        self.calls = 0

    async def observe(self, spec, namespace, ready_replicas, now, ranges=None) -> Observation:
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, str):
            fault = Fault.QUERY_FAILED if "query failed" in item else Fault.NO_DATA
            return Observation(now, None, None, None, None, ready_replicas, error=item, fault=fault)
        p99, rate = item
        return Observation(now, p99, rate, rate * 15, 1.0, ready_replicas)


class FakeActuator:
    def __init__(self, config: RuntimeConfig, *, missing: bool = False) -> None:
        self.config = config
        self.missing = missing
        self.applied: list[RuntimeConfig] = []
        self.on_apply = None
        self.result: ApplyResult | None = None

    async def read(self) -> tuple[RuntimeConfig, int]:
        if self.missing:
            raise TargetNotFoundError("Deployment ml/sentiment-worker not found")
        return self.config, self.config.replicas

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        if self.on_apply is not None:
            self.on_apply(target)
        self.applied.append(target)
        if self.result is not None:
            return self.result
        self.config = target
        return ApplyResult(
            replicas_set=True, config_written=True, pods_total=2, pods_acknowledged=2
        )


class MemoryStore:
    def __init__(self) -> None:
        self.saves: list[tuple[dict, dict]] = []
        self.fail: Exception | None = None

    async def save(self, status, memory) -> None:
        """Keeps the whole object: a part not written (None) stays as it was."""
        if self.fail is not None:
            raise self.fail
        last_status, last_memory = self.saves[-1] if self.saves else ({}, {})
        self.saves.append(
            (
                copy.deepcopy(dict(status)) if status is not None else last_status,
                copy.deepcopy(dict(memory)) if memory is not None else last_memory,
            )
        )


def make_loop(metrics, actuator, store=None, **kw) -> ControlLoop:
    return ControlLoop(
        name="sentiment",
        namespace="ml",
        metrics=metrics,
        actuator=actuator,
        profiles=PROFILES,
        store=store if store is not None else MemoryStore(),
        **kw,
    )


def cond(status, type_: str) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == type_)
    return found.status, found.reason


def reasons(result) -> list[str]:
    return [str(e.reason) for e in result.events]


START = RuntimeConfig(2, 0, 32, "full")


def die(target: RuntimeConfig) -> None:
    raise KeyboardInterrupt  # the operator process ends here: nothing after this runs


async def test_a_hold_reports_and_changes_nothing() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    loop = make_loop(FakeMetrics((60.0, 100.0)), actuator, store)
    result = await loop.step(spec(), now=T0, generation=3)
    assert actuator.applied == []
    assert not result.acted
    assert result.status.last_decision.action == "Hold"
    assert result.status.observed_generation == 3
    assert result.status.observed.latency_ms == 60.0
    assert cond(result.status, "Ready") == ("True", "Reconciling")
    assert cond(result.status, "SLOMet") == ("True", "WithinTarget")
    assert cond(result.status, "MetricsAvailable") == ("True", "MetricsFresh")
    assert cond(result.status, "QualityDegraded") == ("False", "PreferredVariant")
    assert cond(result.status, "Conflict") == ("False", "NoConflict")
    assert all(c.observed_generation == 3 for c in result.status.conditions)
    assert result.events == ()
    assert len(store.saves) == 1
    assert store.saves[0][1]["policy"]["version"] == 1


async def test_the_change_is_recorded_as_pending_before_acting() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    seen_at_apply: list[dict] = []
    actuator.on_apply = lambda target: seen_at_apply.append(store.saves[-1][0])
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, store)
    result = await loop.step(spec(), now=T0, generation=1)

    assert actuator.applied == [RuntimeConfig(5, 0, 32, "full")]
    pending = seen_at_apply[0]["pending"]
    assert pending["action"] == "ScaleUp"
    assert pending["to"]["replicas"] == 5
    assert pending["applied"] is True
    assert len(store.saves) == 2  # intent, then the result
    assert store.saves[-1][0]["pending"] is None
    status = result.status
    assert status.current.replicas == 5
    assert status.history[0].action == "ScaleUp"
    assert status.history[0].applied is True
    assert status.last_decision == status.history[0]
    assert reasons(result) == ["SLOBreached", "ScaledUp"]
    assert result.events[0].type == "Warning"


async def test_a_restarted_loop_finishes_the_pending_change_without_deciding() -> None:
    # The first operator records the intent and dies inside apply().
    actuator = FakeActuator(START)
    store = MemoryStore()

    actuator.on_apply = die
    with pytest.raises(KeyboardInterrupt):
        await make_loop(FakeMetrics((400.0, 300.0)), actuator, store).step(spec(), now=T0)
    status, memory = store.saves[-1]
    assert status["pending"]["to"]["replicas"] == 5

    # The restarted operator reads status and memory back from the object.
    actuator.on_apply = None
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, store)
    loop.restore(status, memory)
    result = await loop.step(spec(), now=T0 + 5)
    assert result.decision is None  # nothing decided
    assert actuator.applied == [RuntimeConfig(5, 0, 32, "full")]
    assert result.status.pending is None
    assert result.status.history[0].action == "ScaleUp"
    assert "finished after an interruption" in result.status.history[0].reason
    assert reasons(result) == ["SLOBreached", "ScaledUp"]

    # Next step: decided afresh; the scale-up is not repeated.
    result = await loop.step(spec(), now=T0 + 10)
    assert result.decision is not None
    assert [t.replicas for t in actuator.applied] == [5] + [5] * (len(actuator.applied) - 1)
    assert "ScaledUp" not in reasons(result)


async def test_a_pending_change_is_dropped_in_paused_mode() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    actuator.on_apply = die
    with pytest.raises(KeyboardInterrupt):
        await make_loop(FakeMetrics((400.0, 300.0)), actuator, store).step(spec(), now=T0)
    status, memory = store.saves[-1]
    actuator.on_apply = None
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, store)
    loop.restore(status, memory)
    result = await loop.step(spec(mode="Paused"), now=T0 + 5)
    assert actuator.applied == []  # the interrupted call never got through, nor a new one
    assert actuator.config == START
    assert result.status.pending is None
    assert cond(result.status, "Ready") == ("True", "Paused")


async def test_no_action_when_the_intent_cannot_be_recorded() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    store.fail = StoreError("API server unavailable")
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, store)
    result = await loop.step(spec(), now=T0)
    assert actuator.applied == []
    assert cond(result.status, "Ready") == ("False", "StatusWriteFailed")
    assert result.save_error is not None
    # The policy did not count a scale-up that never happened: the next step tries again.
    store.fail = None
    result = await loop.step(spec(), now=T0 + 5)
    assert [t.replicas for t in actuator.applied] == [5]


async def test_a_failed_apply_is_reported_and_not_counted() -> None:
    actuator = FakeActuator(START)
    actuator.result = ApplyResult(False, False, errors=("scale: changed by someone else (409)",))
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator)
    result = await loop.step(spec(), now=T0)
    record = result.status.last_decision
    assert record.applied is False
    assert "not applied: scale: changed by someone else (409)" in record.reason
    assert result.status.current.replicas == 2
    assert result.status.history == []
    assert "ScaledUp" not in reasons(result)
    actuator.result = None
    await loop.step(spec(), now=T0 + 5)
    assert actuator.config.replicas == 5  # decided again on fresh data, then done once


async def test_recommend_mode_changes_nothing_and_says_so_once() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, store)
    first = await loop.step(spec(mode="Recommend"), now=T0)
    second = await loop.step(spec(mode="Recommend"), now=T0 + 5)
    assert actuator.applied == []
    assert all(s["pending"] is None for s, _ in store.saves)
    assert reasons(first) == ["SLOBreached", "Recommended"]
    assert reasons(second) == []
    record = second.status.last_decision
    assert (record.action, record.applied, record.to.replicas) == ("ScaleUp", False, 5)
    assert len(second.status.history) == 1
    assert cond(second.status, "Ready") == ("True", "Recommending")


async def test_paused_holds() -> None:
    actuator = FakeActuator(START)
    result = await make_loop(FakeMetrics((400.0, 300.0)), actuator).step(
        spec(mode="Paused"), now=T0
    )
    assert actuator.applied == []
    assert result.status.last_decision.action == "Hold"
    assert cond(result.status, "Ready") == ("True", "Paused")


async def test_conflict_means_no_decision_and_no_write() -> None:
    actuator = FakeActuator(START)
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator)
    conflict = Conflict("HorizontalPodAutoscaler", "HorizontalPodAutoscaler h also scales it")
    first = await loop.step(spec(), now=T0, conflict=conflict)
    second = await loop.step(spec(), now=T0 + 5, conflict=conflict)
    assert actuator.applied == []
    assert first.decision is None
    assert second.decision is None
    assert "ConflictDetected" in reasons(first)
    assert "ConflictDetected" not in reasons(second)
    assert cond(second.status, "Conflict") == ("True", "HorizontalPodAutoscaler")
    assert cond(second.status, "Ready") == ("False", "Conflict")
    third = await loop.step(spec(), now=T0 + 10)
    assert cond(third.status, "Conflict") == ("False", "NoConflict")
    assert actuator.applied  # acts again once the conflict is gone


async def test_metrics_outage_one_warning_and_recovery() -> None:
    down = "Prometheus query failed: cannot connect to http://prometheus:9090: connection refused"
    metrics = FakeMetrics((60.0, 100.0), down, down, down, (60.0, 100.0))
    actuator = FakeActuator(START)
    loop = make_loop(metrics, actuator)
    results = [await loop.step(spec(), now=T0 + 5 * i) for i in range(5)]
    assert actuator.applied == []
    assert [cond(r.status, "MetricsAvailable")[0] for r in results] == [
        "True", "False", "False", "False", "True",
    ]  # fmt: skip
    assert cond(results[1].status, "MetricsAvailable") == ("False", "QueryFailed")
    assert cond(results[1].status, "SLOMet") == ("Unknown", "NoData")
    assert results[1].status.observed.latency_ms is None
    warnings = [e for r in results for e in r.events if e.reason == "MetricsUnavailable"]
    assert len(warnings) == 1
    assert warnings[0].type == "Warning"
    assert "holding replicas=2" in warnings[0].message


async def test_slo_breach_and_recovery_events_survive_no_data_in_between() -> None:
    metrics = FakeMetrics((400.0, 100.0), "no data: no requests", (60.0, 100.0))
    loop = make_loop(metrics, FakeActuator(START))
    r1 = await loop.step(spec(mode="Recommend"), now=T0)
    r2 = await loop.step(spec(mode="Recommend"), now=T0 + 5)
    r3 = await loop.step(spec(mode="Recommend"), now=T0 + 10)
    assert "SLOBreached" in reasons(r1)
    assert "SLORecovered" not in reasons(r2)
    assert "SLORecovered" in reasons(r3)
    recovered = next(e for e in r3.events if e.reason == "SLORecovered")
    assert recovered.message == "p99 60.0ms <= 150ms target at 100 req/s"


async def test_low_request_rate_is_not_trusted() -> None:
    loop = make_loop(FakeMetrics((400.0, 0.5)), FakeActuator(START))
    result = await loop.step(spec(), now=T0)
    assert cond(result.status, "SLOMet") == ("Unknown", "LowRequestRate")
    assert cond(result.status, "MetricsAvailable")[0] == "True"
    assert "SLOBreached" not in reasons(result)
    assert result.status.attainment.last_hour is None


async def test_transition_times_move_only_on_change() -> None:
    loop = make_loop(FakeMetrics((60.0, 100.0)), FakeActuator(START))
    first = await loop.step(spec(), now=T0)
    later = await loop.step(spec(), now=T0 + 60)
    for a, b in zip(first.status.conditions, later.status.conditions, strict=True):
        assert a.last_transition_time == b.last_transition_time


async def test_a_missing_target() -> None:
    metrics = FakeMetrics((60.0, 100.0))
    result = await make_loop(metrics, FakeActuator(START, missing=True)).step(spec(), now=T0)
    assert cond(result.status, "Ready") == ("False", "TargetNotFound")
    assert metrics.calls == 0


async def test_an_invalid_spec_is_reported() -> None:
    bad = spec()
    bad["replicas"] = {"min": 5, "max": 2}
    actuator = FakeActuator(START)
    result = await make_loop(FakeMetrics((60.0, 100.0)), actuator).step(bad, now=T0)
    status, reason = cond(result.status, "Ready")
    assert (status, reason) == ("False", "InvalidSpec")
    assert actuator.applied == []


async def test_the_hard_replica_cap() -> None:
    actuator = FakeActuator(START)
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator, limits=OperatorLimits(max_replicas=3))
    await loop.step(spec(), now=T0)
    assert actuator.applied[0].replicas == 3


async def test_attainment_and_quality_budget() -> None:
    loop = make_loop(
        FakeMetrics((60.0, 100.0), (60.0, 100.0), (400.0, 100.0)),
        FakeActuator(RuntimeConfig(2, 0, 32, "quantized")),
    )
    for i in range(3):
        result = await loop.step(spec(mode="Recommend"), now=T0 + 5 * i)
    assert result.status.attainment.last_hour == pytest.approx(2 / 3, abs=0.01)
    assert result.status.quality_budget.degraded_fraction > 0
    assert cond(result.status, "QualityDegraded") == ("True", "DegradedVariant")


async def test_operator_metrics_are_recorded() -> None:
    metrics = OperatorMetrics()
    loop = make_loop(FakeMetrics((400.0, 300.0)), FakeActuator(START), recorder=metrics)
    await loop.step(spec(), now=T0)
    get = metrics.registry.get_sample_value
    labels = {"namespace": "ml", "name": "sentiment"}
    assert get("latencyslo_observed_latency_seconds", labels) == pytest.approx(0.4)
    assert get("latencyslo_target_seconds", labels) == pytest.approx(0.15)
    assert get("latencyslo_replicas", labels) == 5
    assert (
        get("latencyslo_decisions_total", {**labels, "action": "ScaleUp", "reason": "Breach"}) == 1
    )
    assert get("latencyslo_variant_info", {**labels, "variant": "full"}) == 1
    assert get("latencyslo_slo_met", labels) == 0
    assert get("latencyslo_condition", {**labels, "type": "Ready"}) == 1
    assert get("latencyslo_reconcile_duration_seconds_count", labels) == 1


async def test_after_a_restart_scale_down_waits_for_a_window_of_fresh_data() -> None:
    window = 10
    actuator = FakeActuator(RuntimeConfig(3, 0, 32, "full"))
    store = MemoryStore()
    quiet = FakeMetrics((20.0, 10.0))  # one replica would do
    first = make_loop(quiet, actuator, store)
    t = T0
    while actuator.config.replicas == 3:
        await first.step(spec(scaleDownStabilizationSeconds=window), now=t)
        t += 5
    assert actuator.config.replicas == 2  # one step down after a window of fresh data
    downs = [t - 5]

    # The operator restarts (same memory): the next scale-down waits a whole window again.
    status, memory = store.saves[-1]
    restarted = make_loop(quiet, actuator, store)
    restarted.restore(status, memory)
    restart_at = t
    while actuator.config.replicas == 2:
        await restarted.step(spec(scaleDownStabilizationSeconds=window), now=t)
        t += 5
        assert t - restart_at < 60
    downs.append(t - 5)
    assert downs[1] - restart_at >= window
