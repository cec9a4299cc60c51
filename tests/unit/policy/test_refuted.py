"""The replicas a clear breach ordered on the measured quantile (step 5) are released once the
load has settled smooth and the fleet in force holds the aim, not held for a whole
stabilization window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from slo_operator.policy import ControllerParams, decide
from slo_operator.policy.feedback import feedback_refuted
from tests.unit.policy.helpers import NOW, PROFILES, SPEC, cfg, obs, settled

PARAMS = ControllerParams.build(SPEC)
SETTLE = PARAMS.ranges.window_s + SPEC.policy.interval_seconds  # 75 s


@pytest.mark.parametrize(
    ("feedback_ago", "burst_ago", "smooth", "p99", "ready", "refuted"),
    [
        pytest.param(90.0, None, True, 60.0, 16, True, id="settled-smooth-within-the-aim"),
        pytest.param(None, None, True, 60.0, 16, False, id="no-feedback"),
        pytest.param(60.0, None, True, 60.0, 16, False, id="feedback-too-recent"),
        pytest.param(300.0, None, True, 60.0, 16, False, id="feedback-left-the-window"),
        pytest.param(90.0, 60.0, True, 60.0, 16, False, id="a-burst-within-the-range"),
        pytest.param(90.0, None, False, 60.0, 16, False, id="bursty-now"),
        pytest.param(90.0, None, True, 85.5, 16, False, id="above-the-aim"),
        pytest.param(90.0, None, True, 60.0, 12, False, id="replicas-still-starting"),
    ],
)
def test_the_quantile_feedback_is_refuted_only_on_settled_smooth_load_within_the_aim(
    feedback_ago: float | None,
    burst_ago: float | None,
    smooth: bool,
    p99: float,
    ready: int,
    refuted: bool,
) -> None:
    st = settled(
        feedback_at=None if feedback_ago is None else NOW - feedback_ago,
        last_burst_at=None if burst_ago is None else NOW - burst_ago,
    )
    got = feedback_refuted(PARAMS, st, PARAMS.ranges, smooth, p99, ready, cfg(16), NOW)
    assert got is refuted


def test_a_refuted_feedback_releases_half_the_fleet_at_a_time() -> None:
    """Sixteen replicas ordered on the measured quantile 90 s ago (and recommended then); now
    the load is smooth at 1,200 req/s, which three replicas hold at the aim: the fleet halves
    now, where the stabilization window would have held all sixteen for five minutes."""
    recs = ((NOW - 90.0, 16), (NOW - 75.0, 3), (NOW - 60.0, 3), (NOW - 45.0, 3), (NOW - 30.0, 3))
    st = settled(recommendations=recs, feedback_at=NOW - 90.0, rates=((NOW - 15.0, 1200.0),))
    o = obs(rate=1200.0, current=cfg(16), ready=16)
    decision, _ = decide(SPEC, o, cfg(16), PROFILES, st, NOW)
    assert decision.target.replicas == 8, decision.reason
    assert "not needed" in decision.reason
    held, _ = decide(SPEC, o, cfg(16), PROFILES, replace(st, feedback_at=None), NOW)
    assert held.target.replicas == 16, held.reason
