"""Writes only on change, with measurements that jitter as real ones do.

Measured figures from a real Prometheus move in their last digits at every step (a rate of
20.013 then 19.987 req/s); a steady LatencySLO must still write nothing per interval, only the
periodic refresh. A change a user would see (the percentile moving by more than the 5 %
resolution, a condition changing) is written at once.
"""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

from slo_operator.memory import (
    MEMORY_CHECKPOINT_S,
    RESOLUTION,
    STATUS_REFRESH_S,
    Persister,
    changed,
    durable,
    phase_of,
    status_changed,
)
from slo_operator.spec import LatencySLOStatus
from slo_operator.types import Observation
from tests.unit.operator.test_loop import START, T0, FakeActuator, make_loop, spec
from tests.unit.operator.test_loop_outcomes import CountingStore


class JitteryMetrics:
    """p99 and rate around the given values, each step off by up to `jitter` (relative)."""

    def __init__(self, p99_ms: float, rate: float, jitter: float = 0.01, seed: int = 1) -> None:
        self.p99_ms, self.rate, self.jitter = p99_ms, rate, jitter
        self.random = random.Random(seed)

    def _noisy(self, value: float) -> float:
        return value * (1 + self.random.uniform(-self.jitter, self.jitter))

    async def observe(self, spec, namespace, ready_replicas, now, ranges=None) -> Observation:
        rate = self._noisy(self.rate)
        return Observation(now, self._noisy(self.p99_ms), rate, rate * 15, 1.0, ready_replicas)


async def run(metrics: JitteryMetrics, store: CountingStore, steps: int, start: int = 0) -> None:
    loop = make_loop(metrics, FakeActuator(START), store)
    for i in range(start, start + steps):
        store.now = T0 + i * 5
        await loop.step(spec(), now=store.now)


async def test_a_jittering_steady_state_writes_only_the_refresh() -> None:
    store = CountingStore()
    steps = 960  # 80 minutes at 5 s
    await run(JitteryMetrics(60.0, 100.0), store, steps)
    settled = T0 + 60 * 5
    late_status = [w for w in store.status_writes if w >= settled]
    late_memory = [w for w in store.memory_writes if w >= settled]
    # after the first periodic rewrite (early by the object's phase), one per period
    assert all(b - a >= STATUS_REFRESH_S for a, b in pairwise(late_status[1:])), late_status
    assert all(b - a >= MEMORY_CHECKPOINT_S for a, b in pairwise(late_memory[1:])), late_memory
    span = (steps - 60) * 5
    assert 1 <= len(late_status) <= span / STATUS_REFRESH_S + 2
    assert 1 <= len(late_memory) <= span / MEMORY_CHECKPOINT_S + 2


async def test_periodic_rewrites_of_many_objects_are_spread_over_the_period() -> None:
    """200 steady objects started together: the status refreshes of any one 15 s interval
    are a small share of them, not all of them at once."""
    firsts: list[float] = []
    for i in range(200):
        persister = Persister(CountingStore(), phase_of(f"team-{i % 14:02d}", f"slo-{i:04d}"))
        status = LatencySLOStatus()
        writes: list[float] = []
        for t in range(0, int(STATUS_REFRESH_S) + 15, 15):
            before = persister._status_at
            await persister.save(status, None, float(t))
            if persister._status_at != before:
                writes.append(float(t))
        assert writes[0] == 0.0  # the first save writes
        firsts.append(writes[1])
    per_interval = Counter(firsts)
    assert max(per_interval.values()) <= 200 * 0.1, per_interval
    assert max(firsts) - min(firsts) >= STATUS_REFRESH_S * 0.8


async def test_a_visible_change_is_written_at_once() -> None:
    store = CountingStore()
    metrics = JitteryMetrics(60.0, 100.0)
    loop = make_loop(metrics, FakeActuator(START), store)
    for i in range(80):
        store.now = T0 + i * 5
        await loop.step(spec(), now=store.now)
    before = len(store.status_writes)
    metrics.p99_ms = 60.0 * (1 + 3 * RESOLUTION)  # still within target: only the figure moves
    store.now = T0 + 80 * 5
    await loop.step(spec(), now=store.now)
    assert len(store.status_writes) == before + 1
    written, _ = store.saves[-1]
    assert written["observed"]["latencyMs"] > 65


def test_the_comparison_keys() -> None:
    base = {
        "observed": {"latencyMs": 60.0, "requestRate": 20.013, "samples": 300.2, "sampledAt": "a"},
        "lastDecision": {"action": "Hold", "time": "t1", "reason": "p99 60ms", "applied": False},
        "conditions": [{"type": "SLOMet", "status": "True", "reason": "WithinTarget"}],
        "history": [],
    }
    jitter = {
        "observed": {"latencyMs": 60.4, "requestRate": 19.987, "samples": 299.8, "sampledAt": "b"},
        "lastDecision": {"action": "Hold", "time": "t2", "reason": "p99 61ms", "applied": False},
        "conditions": [
            {"type": "SLOMet", "status": "True", "reason": "WithinTarget", "message": "x"}
        ],
        "history": [],
    }
    assert not status_changed(base, jitter)
    breached = {
        **jitter,
        "conditions": [{"type": "SLOMet", "status": "False", "reason": "Breached"}],
    }
    assert status_changed(base, breached)
    acted = {**jitter, "lastDecision": {**jitter["lastDecision"], "action": "ScaleUp"}}
    assert status_changed(base, acted)
    entry = {"action": "ScaleUp", "time": "t3", "reason": "r"}
    assert status_changed(base, {**jitter, "history": [entry]})
    slower = {**base, "observed": {**base["observed"], "latencyMs": 80.0}}
    assert status_changed(slower, base)
    assert status_changed(None, base)
    gone = {k: v for k, v in jitter.items() if k != "conditions"}
    assert status_changed(base, gone)
    assert status_changed(gone, base)

    memory = {"version": 1, "policy": {"correction": 1.004, "profileFactors": {"full": 1.8}}}
    settled = {"version": 1, "policy": {"correction": 1.011, "profileFactors": {"full": 1.81}}}
    moved = {"version": 1, "policy": {"correction": 1.2, "profileFactors": {"full": 1.81}}}
    assert not changed(durable(memory), durable(settled))
    assert changed(durable(memory), durable(moved))
