"""What the loop remembers and writes: each knob booked on its own outcome, a stale pending
change expires, learned profile factors survive a restart, and a steady state writes nothing."""

from __future__ import annotations

from itertools import pairwise

import pytest

from slo_operator.loop import ControlLoop
from slo_operator.memory import MEMORY_CHECKPOINT_S, STATUS_REFRESH_S
from slo_operator.types import ApplyResult, BatchMeasurement, Observation, RuntimeConfig
from tests.unit.operator.test_loop import (
    PROFILES,
    START,
    T0,
    FakeActuator,
    FakeMetrics,
    MemoryStore,
    die,
    make_loop,
    spec,
)


class CountingStore(MemoryStore):
    """MemoryStore that counts every write of the status and of the memory."""

    def __init__(self) -> None:
        super().__init__()
        self.status_writes: list[float] = []
        self.memory_writes: list[float] = []
        self.now = 0.0

    async def save(self, status, memory) -> None:
        await super().save(status, memory)
        if status is not None:
            self.status_writes.append(self.now)
        if memory is not None:
            self.memory_writes.append(self.now)


async def test_a_failed_scale_write_is_not_booked_as_done() -> None:
    # The ConfigMap already holds the target (written), the scale PUT fails: the scale-up
    # must not count, so no cooldown starts and the next step scales up at once.
    actuator = FakeActuator(START)
    actuator.result = ApplyResult(
        replicas_set=False, config_written=True, errors=("scale: changed (409)",)
    )
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator)
    first = await loop.step(spec(scaleUpCooldownSeconds=60), now=T0)
    assert actuator.applied[0].replicas == 5
    assert first.status.last_decision.applied is False
    assert "not applied: scale: changed (409)" in first.status.last_decision.reason
    assert first.status.history == []
    assert loop.controller is not None
    assert loop.controller.state.last_scale_up_at is None

    actuator.result = None
    second = await loop.step(spec(scaleUpCooldownSeconds=60), now=T0 + 5)
    assert actuator.config.replicas == 5  # no cooldown was started by the failed write
    assert second.status.history[0].applied is True


async def test_a_partly_applied_change_books_the_knob_that_took() -> None:
    actuator = FakeActuator(RuntimeConfig(2, 0, 32, "full"))
    actuator.result = ApplyResult(replicas_set=True, config_written=False, errors=("cm: 409",))
    loop = make_loop(FakeMetrics((400.0, 300.0)), actuator)
    result = await loop.step(spec(scaleUpCooldownSeconds=60), now=T0)
    assert result.status.last_decision.applied is True
    assert "partly applied: cm: 409" in result.status.last_decision.reason
    assert loop.controller is not None
    assert loop.controller.state.last_scale_up_at == T0


async def interrupted(actuator: FakeActuator, store: MemoryStore) -> tuple[dict, dict]:
    """A scale-up 2 -> 5 recorded as pending, the operator killed inside apply(): the status
    and memory it left."""
    actuator.on_apply = die
    with pytest.raises(KeyboardInterrupt):
        await make_loop(FakeMetrics((400.0, 300.0)), actuator, store).step(spec(), now=T0)
    actuator.on_apply = None
    status, memory = store.saves[-1]
    assert status["pending"]["to"]["replicas"] == 5
    return status, memory


async def test_a_pending_change_older_than_the_gap_expires() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    status, memory = await interrupted(actuator, store)
    # An hour later the load is gone: the old scale-up is not replayed, the loop decides.
    loop = make_loop(FakeMetrics((60.0, 100.0)), actuator, store)
    loop.restore(status, memory)
    result = await loop.step(spec(), now=T0 + 3600)
    assert 5 not in [t.replicas for t in actuator.applied]
    assert result.decision is not None
    assert result.status.pending is None
    assert store.saves[-1][0]["pending"] is None


async def test_a_recent_pending_change_is_still_finished() -> None:
    actuator = FakeActuator(START)
    store = MemoryStore()
    status, memory = await interrupted(actuator, store)
    loop = make_loop(FakeMetrics((60.0, 100.0)), actuator, store)
    loop.restore(status, memory)
    result = await loop.step(spec(), now=T0 + 30)
    assert [t.replicas for t in actuator.applied] == [5]
    assert result.decision is None


class BatchMetrics(FakeMetrics):
    """FakeMetrics whose observations carry a batch measurement (variant -> ms, size 4)."""

    def __init__(self, batch_ms: dict[str, float]) -> None:
        super().__init__((60.0, 100.0))
        self.batch_ms = batch_ms

    async def observe(self, spec, namespace, ready_replicas, now, ranges=None) -> Observation:
        obs = await super().observe(spec, namespace, ready_replicas, now, ranges)
        from dataclasses import replace

        return replace(obs, batch=BatchMeasurement(dict(self.batch_ms), 4.0))


async def test_learned_profile_factors_survive_a_restart() -> None:
    full = PROFILES.variants["full"].batch_ms(4.0)
    quantized = PROFILES.variants["quantized"].batch_ms(4.0)
    actuator = FakeActuator(START)
    store = MemoryStore()
    # "full" served alone, its batches 1.8 x slower than calibrated
    first = make_loop(BatchMetrics({"full": 1.8 * full}), actuator, store)
    await first.step(spec(), now=T0)
    status, memory = store.saves[-1]
    assert memory["policy"]["profileFactors"] == {"full": pytest.approx(1.8)}

    # After a restart only "quantized" has traffic (x1.0): "full" keeps its own factor
    # rather than borrowing the measured one.
    restarted = make_loop(BatchMetrics({"quantized": quantized}), actuator, store)
    restarted.restore(status, memory)
    await restarted.step(spec(), now=T0 + 5)
    assert restarted.controller is not None
    fit = restarted.controller.last_fit
    assert fit is not None
    assert fit.scale["full"] == pytest.approx(1.8)
    assert fit.scale["quantized"] == pytest.approx(1.0)

    # Without the memory the factor is gone (what a restart did before): the median of
    # the measured ones stands in.
    amnesic = make_loop(BatchMetrics({"quantized": quantized}), actuator, MemoryStore())
    amnesic.restore(status, None)
    await amnesic.step(spec(), now=T0 + 5)
    assert amnesic.controller is not None
    assert amnesic.controller.last_fit is not None
    assert amnesic.controller.last_fit.scale["full"] == pytest.approx(1.0)


async def test_a_steady_state_writes_nothing_per_interval() -> None:
    store = CountingStore()
    loop: ControlLoop = make_loop(FakeMetrics((60.0, 100.0)), FakeActuator(START), store)
    interval = 5
    steps = 200
    for i in range(steps):
        store.now = T0 + i * interval
        await loop.step(spec(), now=store.now)
    assert store.status_writes[0] == T0  # the first step reports
    assert store.memory_writes[0] == T0
    # While the model's correction settles the hold's prediction moves and is reported.
    # Once settled (the first 60 steps), an interval changes nothing worth a write: the
    # only writes left are the periodic refresh (the first early by the object's phase, see
    # memory.py), never one per interval.
    settled = T0 + 60 * interval
    late_status = [w for w in store.status_writes if w >= settled]
    late_memory = [w for w in store.memory_writes if w >= settled]
    assert len(late_status) <= (steps - 60) * interval / STATUS_REFRESH_S + 1
    assert all(b - a >= STATUS_REFRESH_S for a, b in pairwise(late_status))
    assert all(b - a >= MEMORY_CHECKPOINT_S for a, b in pairwise(late_memory))
    intervals_with_a_write = {int((w - T0) // interval) for w in late_status + late_memory}
    assert len(intervals_with_a_write) < (steps - 60) / 20
