"""The `Controller`: parameters, per-knob booking, memory, restore, profile factors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from slo_operator.policy import Controller, ControllerParams, OperatorLimits, decide
from slo_operator.types import ApplyResult, BatchMeasurement, Ranges
from tests.unit.policy.helpers import NOW, PROFILES, SPEC, cfg, make_spec, obs, settled

BREACH = obs(rate=1500.0, p99=400.0, ready=2)  # scale up 2 -> 3 and bridge with quantized


def controller(**limits) -> Controller:
    return Controller(ControllerParams.build(SPEC, OperatorLimits(**limits)), PROFILES, settled())


def test_parameters_clamp_replicas_to_the_operator_cap_and_hold_the_ranges() -> None:
    params = ControllerParams.build(make_spec(replicas={"min": 2, "max": 50}), OperatorLimits(8))
    assert (params.spec.replicas.min, params.spec.replicas.max) == (2, 8)
    assert params.ranges == Ranges(window_s=60, recent_s=30, peak_s=30, peak_step_s=15)
    fast = ControllerParams.build(SPEC, OperatorLimits(scrape_interval_s=5))
    assert fast.ranges == Ranges(window_s=60, recent_s=15, peak_s=10, peak_step_s=5)
    assert ControllerParams.build(SPEC, OperatorLimits(max_data_age_s=45)).stale_after_s == 45
    assert ControllerParams.build(SPEC).stale_after_s == 30  # max(30 s, 2 intervals)


def test_a_step_decides_as_the_rule_does() -> None:
    c = controller()
    decision = c.step(BREACH, cfg(2), NOW)
    expected, _ = decide(SPEC, BREACH, cfg(2), PROFILES, settled(), NOW)
    assert decision == expected
    assert decision.apply


def test_each_knob_is_booked_on_its_own_outcome() -> None:
    c = controller()
    decision = c.step(BREACH, cfg(2), NOW)
    assert decision.target.replicas > 2
    c.applied(ApplyResult(replicas_set=False, config_written=True))
    assert c.state.last_scale_up_at is None  # the scale was not written: no cooldown
    assert c.state.pending_up is None

    assert c.state.last_variant_change_at == NOW  # the bridge was written
    assert c.state.variant_in_force == "quantized"

    c = controller()
    c.step(BREACH, cfg(2), NOW)
    c.applied(ApplyResult(replicas_set=True, config_written=False))
    assert c.state.last_scale_up_at == NOW
    assert c.state.last_change_at == NOW
    assert c.state.last_variant_change_at is None  # the bridge was not
    assert c.state.variant_in_force == "full"


def test_a_decision_never_reported_as_applied_counts_as_nothing_done() -> None:
    c = controller()
    c.step(BREACH, cfg(2), NOW)
    assert c.memory_if_applied()["lastScaleUpAt"] == NOW  # what the intent records
    assert c.memory()["lastScaleUpAt"] is None
    c.step(BREACH, cfg(2), NOW + 15)  # the intent could not be recorded; decided again
    assert c.state.last_scale_up_at is None


def test_restore_keeps_what_was_learned_and_resets_trust() -> None:
    c = controller()
    c.step(BREACH, cfg(2), NOW)
    c.applied(ApplyResult(True, True))
    memory = c.memory()
    memory["correction"] = 1.7
    memory["profileFactors"] = {"full": 1.4}
    restored = Controller.restore(c.params, PROFILES, memory, NOW + 30)
    assert restored.state.correction == pytest.approx(1.7)
    assert dict(restored.state.profile_factors) == {"full": pytest.approx(1.4)}
    assert restored.state.last_scale_up_at == NOW
    assert restored.state.fresh_since is None
    fresh = Controller.restore(c.params, PROFILES, {"version": 99}, NOW + 30)
    assert fresh.state.started_at == NOW + 30


def test_profile_factors_are_learned_from_batch_times_and_remembered() -> None:
    c = controller()
    full = PROFILES.variants["full"].batch_ms(8.0)
    measured = BatchMeasurement({"full": 2.0 * full}, 8.0)
    c.step(replace(obs(rate=600.0, p99=50.0, ready=2), batch=measured), cfg(2), NOW)
    assert dict(c.state.profile_factors) == {"full": pytest.approx(2.0)}
    assert c.last_fit is not None
    assert c.last_fit.profiles.variants["full"].alpha_ms == pytest.approx(
        2.0 * PROFILES.variants["full"].alpha_ms
    )


def test_a_window_the_controller_does_not_act_on_teaches_no_profile_factor() -> None:
    """Batches at a burst's tail, in a window that ends below minRequestRate, measured `full`
    1.7 times slower than it serves under load; that factor then sized the next burst. Only a
    window whose quantile is acted on teaches a factor; the others predict with the
    remembered ones."""
    c = controller()
    full = PROFILES.variants["full"].batch_ms(8.0)
    c.step(
        replace(
            obs(rate=600.0, p99=50.0, ready=2), batch=BatchMeasurement({"full": 1.5 * full}, 8.0)
        ),
        cfg(2),
        NOW,
    )
    tail = replace(
        obs(rate=0.2, p99=5.0, ready=2), batch=BatchMeasurement({"full": 2.6 * full}, 8.0)
    )
    c.step(tail, cfg(2), NOW + 15)
    assert dict(c.state.profile_factors) == {"full": pytest.approx(1.5)}
    assert c.last_fit is not None
    assert c.last_fit.scale["full"] == pytest.approx(1.5)


# ---------------------------------------------------------------------------- looks
@pytest.mark.parametrize(
    ("look", "scrape", "interval", "expect"),
    [
        pytest.param(5.0, 5.0, 15, 5.0, id="every-5s"),
        pytest.param(5.0, 15.0, 15, None, id="a-15s-scrape: nothing new between steps"),
        pytest.param(5.0, 10.0, 15, 10.0, id="never-faster-than-the-scrape"),
        pytest.param(0.0, 5.0, 15, None, id="off"),
        pytest.param(5.0, 5.0, 5, None, id="no-shorter-than-a-step"),
    ],
)
def test_looks_between_steps_never_outpace_the_scrape(
    look: float, scrape: float, interval: int, expect: float | None
) -> None:
    spec = make_spec(policy={"intervalSeconds": interval})
    limits = OperatorLimits(scrape_interval_s=scrape, look_interval_s=look)
    assert ControllerParams.build(spec, limits).look_s == expect


def _rose(last_rate: float, **changes: object) -> object:
    return settled(rates=((NOW - 15.0, last_rate),), **changes)


@pytest.mark.parametrize(
    ("observation", "state", "expect"),
    [
        pytest.param(BREACH, settled(), True, id="over-twice-the-target: step now"),
        pytest.param(
            obs(rate=1500.0, p99=130.0, ready=2),
            _rose(1450.0),
            False,
            id="a-modest-breach-on-steady-load: the step waits",
        ),
        pytest.param(
            obs(rate=1500.0, p99=130.0, ready=2),
            _rose(1000.0),
            True,
            id="a-modest-breach-with-the-rate-up-50%: step now",
        ),
        pytest.param(
            obs(rate=1500.0, p99=60.0, ready=2),
            _rose(500.0),
            False,
            id="a-rise-within-the-target: the step waits",
        ),
        pytest.param(
            replace(obs(rate=1000.0, p99=130.0, ready=2), recent_request_rate=1300.0),
            _rose(1450.0),
            True,
            id="a-modest-breach-at-a-burst's-front (recent 30% over the window's): step now",
        ),
        pytest.param(
            replace(obs(rate=1000.0, p99=130.0, ready=2), recent_request_rate=1100.0),
            _rose(1450.0),
            False,
            id="a-modest-breach-with-the-recent-rate-10%-over-the-window's: the step waits",
        ),
        pytest.param(
            obs(rate=None, p99=400.0, ready=2), settled(), False, id="no-rate: nothing to act on"
        ),
    ],
)
def test_a_look_asks_for_a_step_only_for_a_clear_breach(
    observation: object, state: object, expect: bool
) -> None:
    c = Controller(ControllerParams.build(SPEC, OperatorLimits()), PROFILES, state)  # type: ignore[arg-type]
    before = c.memory()
    assert c.urgent(observation, cfg(2), NOW) is expect  # type: ignore[arg-type]
    assert c.memory() == before  # a look learns and books nothing


def test_a_look_does_not_ask_for_a_step_that_would_change_nothing_urgent() -> None:
    at_max = cfg(16, variant="distilled")  # replicas.max on the fastest variant already
    c = Controller(ControllerParams.build(SPEC, OperatorLimits()), PROFILES, settled())
    assert not c.urgent(obs(rate=60_000.0, p99=900.0, ready=16), at_max, NOW)
    recommend = make_spec(policy={"mode": "Recommend"})
    c = Controller(ControllerParams.build(recommend, OperatorLimits()), PROFILES, settled())
    assert not c.urgent(BREACH, cfg(2), NOW)  # nothing is applied in Recommend mode
