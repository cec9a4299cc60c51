"""The controller's memory survives a restart of the operator (JSON round trip)."""

from __future__ import annotations

import json

import pytest

from slo_operator.policy import ControllerState, decide, initial_state
from tests.unit.policy.helpers import NOW, PROFILES, SPEC, cfg, obs, settled


def test_round_trip_through_json_after_real_decisions() -> None:
    state = settled()
    current = cfg(2)
    for k, rate in enumerate([600.0, 1400.0, 1400.0, 1400.0]):
        now = NOW + 15 * k
        decision, state = decide(
            SPEC, obs(rate=rate, p99=300.0, at=now), current, PROFILES, state, now
        )
        if decision.apply:
            current = decision.target
    restored = ControllerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state


def test_a_failed_restore_survives_the_round_trip() -> None:
    state = settled(failed_restore=(NOW, 1200.0, 2.5))
    assert ControllerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_initial_state() -> None:
    st = initial_state(5.0)
    assert st.started_at == 5.0
    assert st.fresh_since is None
    assert st.correction == 1.0
    assert ControllerState.from_dict(st.to_dict()) == st


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": 99}, "version"),
        ({"startedAt": "yesterday"}, "startedAt"),
        ({"startedAt": None}, "startedAt"),
        ({"correction": -1.0}, "correction"),
        ({"recommendations": [[1.0]]}, "malformed"),
        ({"variantInForce": 3}, "variantInForce"),
        ({"lastScaleUpAt": float("nan")}, "lastScaleUpAt"),
        ({"failedRestore": [1.0, 2.0]}, "failedRestore"),
        ({"needs": [[1.0, 2.0, 3.0]]}, "malformed"),
        ({"needs": [[float("inf"), 2]]}, "needs"),
        ({"carried": [1.0]}, "malformed"),
        ({"carried": [float("nan"), 2]}, "carried"),
        ({"failedRestore": 7}, "malformed"),
        ({"failedRestore": [1.0, 2.0, float("inf")]}, "failedRestore"),
        ({"savingCorrections": [1.2]}, "savingCorrections must be an object"),
        ({"savingCorrections": {"quantized": 0}}, r"savingCorrections\.quantized"),
        ({"profileFactors": {"full": "fast"}}, r"profileFactors\.full"),
    ],
)
def test_bad_state_is_refused_with_the_field_named(change: dict, field: str) -> None:
    data = initial_state(0.0).to_dict() | change
    with pytest.raises(ValueError, match=field):
        ControllerState.from_dict(data)


def test_degraded_accounting_prunes_and_merges() -> None:
    st = initial_state(0.0).with_degraded_span(0.0, 100.0, 3600.0)
    st = st.with_degraded_span(100.0, 160.0, 3600.0)
    assert st.degraded == ((0.0, 160.0),)
    assert st.degraded_seconds(160.0, 3600.0) == pytest.approx(160.0)
    assert st.degraded_seconds(3700.0, 3600.0) == pytest.approx(60.0)
    st = st.with_degraded_span(5000.0, 5000.0, 3600.0)
    assert st.degraded == ()


def test_the_last_quantile_feedback_survives_the_round_trip() -> None:
    state = settled(feedback_at=NOW - 30.0)
    assert ControllerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="feedbackAt"):
        ControllerState.from_dict({**state.to_dict(), "feedbackAt": "soon"})


def test_what_a_quiet_spell_carries_over_survives_the_round_trip() -> None:
    state = settled(needs=((NOW - 600.0, 4), (NOW - 15.0, 6)), carried=(NOW, 6))
    assert ControllerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
