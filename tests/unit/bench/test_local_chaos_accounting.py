"""bench/local_chaos.py's attribution of failed requests to kills, on hand-made records."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from slo_local.loadgen import TRANSPORT_ERROR, RequestRecord

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def chaos() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    return importlib.import_module("local_chaos")


def req(sent: float, ended: float, replica: str, ok: bool = True) -> RequestRecord:
    status = 200 if ok else TRANSPORT_ERROR
    return RequestRecord(sent, ended - sent, status, replica, "full" if ok else "", 0.0)


def test_failures_in_flight_on_a_victim_are_its_kill_and_others_are_lost(
    chaos: ModuleType,
) -> None:
    kill = chaos.Kill("w1", 1234, at=10.0, in_flight=2, exited_at=10.05)
    records = [
        req(9.0, 9.1, "w1"),  # answered before the kill
        req(9.95, 10.06, "w1", ok=False),  # in flight at the kill
        req(9.99, 10.02, "w1"),  # in flight at the kill, answered all the same
        req(10.02, 10.06, "w1", ok=False),  # routed while it was dying: its kill's too
        req(10.2, 10.21, "w1", ok=False),  # routed after its exit: lost
        req(9.95, 10.3, "w2", ok=False),  # another replica's failure: lost
    ]
    counts = chaos.kill_accounting(records, kill, 0.0, math.inf)
    assert counts["sent"] == 6
    assert counts["failed"] == 4
    assert counts["in_flight_at_kill"] == 2  # agrees with the router's 2
    assert counts["failed_in_flight_on_victim"] == 2
    assert counts["of_which_routed_while_dying"] == 1
    assert counts["lost_beyond_in_flight"] == 2
    assert len(chaos.lost_beyond_in_flight(records, [kill])) == 2


def test_a_request_in_flight_on_the_next_rounds_victim_is_not_lost(chaos: ModuleType) -> None:
    """Rounds count the requests that ended in them: one routed just before the next round
    began, in flight at that round's kill, is counted there and allowed there."""
    first = chaos.Kill("w1", 1, at=10.0, in_flight=1, exited_at=10.05)
    second = chaos.Kill("w2", 2, at=20.01, in_flight=1, exited_at=20.06)
    records = [req(9.99, 10.05, "w1", ok=False), req(19.995, 20.07, "w2", ok=False)]
    kills = [first, second]
    one = chaos.kill_accounting(records, first, 5.0, 20.0, kills)
    two = chaos.kill_accounting(records, second, 20.0, math.inf, kills)
    assert (one["failed"], one["lost_beyond_in_flight"]) == (1, 0)
    assert (two["failed"], two["failed_in_flight_on_victim"], two["lost_beyond_in_flight"]) == (
        1,
        1,
        0,
    )
    assert chaos.lost_beyond_in_flight(records, kills) == []
    assert len(chaos.lost_beyond_in_flight(records, [first])) == 1


def test_double_actions_are_changes_that_repeat_the_one_before(chaos: ModuleType) -> None:
    from slo_local.demo.timeline import Step
    from slo_operator.types import RuntimeConfig

    two, three = RuntimeConfig(2, 0, 32, "full"), RuntimeConfig(3, 0, 32, "full")

    def step(before: RuntimeConfig, after: RuntimeConfig, acted: bool = True) -> Step:
        return Step(0.0, 50.0, 10.0, None, 0.0, "ScaleUp", "", acted, before, after, True)

    assert chaos.double_actions([step(two, three), step(three, two), step(two, three)]) == []
    twice = [step(two, three), step(two, two, acted=False), step(two, three)]
    assert len(chaos.double_actions(twice)) == 1
