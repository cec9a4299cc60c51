"""Looks between steps (`slo_operator.look`): metrics only, a step at once on a clear breach,
and the wait that holds them."""

from __future__ import annotations

from typing import Any

import pytest

from slo_operator.errors import QueryError
from slo_operator.handlers import Runtime
from slo_operator.look import look, wait_looking
from slo_operator.loop import Conflict, ControlLoop
from slo_operator.policy import OperatorLimits
from slo_operator.settings import OperatorSettings
from tests.unit.operator.test_loop import (
    PROFILES,
    T0,
    FakeActuator,
    FakeMetrics,
    RuntimeConfig,
    make_loop,
)

FULL = RuntimeConfig(2, 0, 32, "full")
LOOKS = OperatorLimits(scrape_interval_s=1.0, look_interval_s=1.0)


def spec() -> dict[str, Any]:
    return {
        "targetRef": {"name": "sentiment-worker"},
        "objective": {"latencyMs": 150, "windowSeconds": 15},
        "policy": {"intervalSeconds": 5, "scaleUpCooldownSeconds": 0},
    }


class CountingActuator(FakeActuator):
    def __init__(self, config: RuntimeConfig) -> None:
        super().__init__(config)
        self.reads = 0

    async def read(self) -> tuple[RuntimeConfig, int]:
        self.reads += 1
        return await super().read()


async def stepped(metrics: FakeMetrics, *, conflict: Conflict | None = None) -> ControlLoop:
    loop = make_loop(metrics, CountingActuator(FULL), limits=LOOKS)
    await loop.step(spec(), now=T0, conflict=conflict)
    return loop


async def test_a_clear_breach_between_steps_asks_for_a_step_without_reading_the_cluster() -> None:
    metrics = FakeMetrics((40.0, 20.0), (900.0, 400.0))  # calm at the step, then a breach
    loop = await stepped(metrics)
    actuator = loop.actuator
    assert isinstance(actuator, CountingActuator)
    reads, saves = actuator.reads, len(loop.persister.store.saves)  # type: ignore[union-attr]
    memory = loop.controller.memory() if loop.controller else None
    assert await look(loop, T0 + 2.0) is True
    assert metrics.calls == 2  # one observation, through the same metrics source
    assert actuator.reads == reads  # nothing read from the cluster
    assert len(loop.persister.store.saves) == saves  # type: ignore[union-attr]
    assert loop.controller is not None
    assert loop.controller.memory() == memory  # nothing learned or booked
    assert actuator.applied == []


async def test_calm_metrics_or_a_failed_query_never_bring_a_step_forward() -> None:
    loop = await stepped(FakeMetrics((40.0, 20.0), (45.0, 21.0)))
    assert await look(loop, T0 + 2.0) is False

    class Failing(FakeMetrics):
        async def observe(self, *args: Any, **kwargs: Any) -> Any:
            if self.calls:
                raise QueryError("prometheus is down")
            return await super().observe(*args, **kwargs)

    loop = await stepped(Failing((40.0, 20.0)))
    assert await look(loop, T0 + 2.0) is False

    class Buggy(FakeMetrics):
        async def observe(self, *args: Any, **kwargs: Any) -> Any:
            if self.calls:
                raise RuntimeError("a bug")
            return await super().observe(*args, **kwargs)

    loop = await stepped(Buggy((40.0, 20.0)))
    assert await look(loop, T0 + 2.0) is False  # logged; the daemon goes on waiting


async def test_no_look_before_a_step_has_decided() -> None:
    metrics = FakeMetrics((900.0, 400.0))
    loop = make_loop(metrics, FakeActuator(FULL), limits=LOOKS)
    assert await look(loop, T0) is False  # no step yet
    assert metrics.calls == 0
    conflicted = await stepped(metrics, conflict=Conflict("HPA", "an HPA scales the target"))
    calls = metrics.calls
    assert await look(conflicted, T0 + 2.0) is False  # the last step decided nothing
    assert metrics.calls == calls


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def nap(self, seconds: float) -> bool:
        self.naps.append(seconds)
        self.t += seconds
        return False


async def test_the_wait_looks_every_look_interval_and_ends_at_the_first_urgent_look() -> None:
    loop = await stepped(FakeMetrics((40.0, 20.0)))
    clock = Clock()
    answers = iter([False, False, True])

    async def looked() -> bool:
        return next(answers)

    assert await wait_looking(loop, 4.5, clock.nap, looked, clock) is True
    assert clock.naps == [1.0, 1.0, 1.0]  # brought forward at the third look
    clock = Clock()
    never = iter([False] * 10)

    async def calm() -> bool:
        return next(never)

    assert await wait_looking(loop, 4.5, clock.nap, calm, clock) is False
    assert clock.naps == [1.0, 1.0, 1.0, 1.0, 0.5]  # four looks, then the rest of the wait
    assert clock.t == 4.5


async def test_without_looks_the_wait_is_one_sleep_and_a_stop_ends_it() -> None:
    loop = make_loop(FakeMetrics((40.0, 20.0)), FakeActuator(FULL))  # 15 s scrape: no looks
    await loop.step(spec(), now=T0)
    clock = Clock()

    async def never() -> bool:
        raise AssertionError("no look expected")

    assert await wait_looking(loop, 4.5, clock.nap, never, clock) is False
    assert clock.naps == [4.5]
    looking = await stepped(FakeMetrics((40.0, 20.0)))

    async def stopped(seconds: float) -> bool:
        return True

    assert await wait_looking(looking, 4.5, stopped, never, clock) is False


@pytest.mark.parametrize(
    ("scrape", "look_s", "share"),
    [
        pytest.param(15.0, 5.0, 7.5, id="15s-scrape: no looks, the usual cells"),
        pytest.param(5.0, 5.0, 5.0, id="looks-every-5s: cells of 5s"),
        pytest.param(5.0, 0.0, 7.5, id="looks-off"),
        pytest.param(5.0, 10.0, 7.5, id="looks-rarer-than-the-cells"),
    ],
)
async def test_a_look_reads_figures_at_most_one_look_old(
    scrape: float, look_s: float, share: float
) -> None:
    settings = OperatorSettings(scrape_interval_s=scrape, look_interval_s=look_s)
    runtime = Runtime(settings, api=None, baseline=PROFILES)  # type: ignore[arg-type]
    try:
        assert runtime.hub().share_s == share
    finally:
        await runtime.hub().aclose()
