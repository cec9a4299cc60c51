"""Time-stepped scenarios: decide() in a closed loop against a simple plant."""

from __future__ import annotations

from collections.abc import Callable

from slo_operator.spec import Action
from tests.unit.policy.helpers import FLAT, cfg, closed_loop, make_spec, model_p99


def _step(t: float) -> float:
    return 400.0 if t < 300 else 1200.0


def test_a_step_is_bridged_then_replicas_then_quality_restored() -> None:
    loop = closed_loop(_step, 900)
    actions = [(t, d.actions) for t, d in zip(loop.times, loop.decisions, strict=True)
               if d.actions]  # fmt: skip
    first_t, first = actions[0]
    assert first_t <= 315  # the first decision after the step acts
    assert Action.DEGRADE_VARIANT in first  # the fast knob first...
    assert Action.SCALE_UP in first  # ...while replicas are ordered for the sustained rate
    restore = [t for t, a in actions if Action.RESTORE_VARIANT in a]
    assert restore, actions
    k = loop.times.index(restore[0])
    assert loop.ready[k] >= loop.configs[k].replicas  # restored once the replicas are ready
    assert restore[0] - first_t >= 120  # not before the variant's minimum dwell
    assert loop.configs[-1].variant == "full"
    assert all(p <= 100.0 for t, p in zip(loop.times, loop.p99, strict=True) if t >= 330)


def test_a_budget_shorter_than_a_dwell_still_bridges_a_step() -> None:
    """`windowMinutes: 5` at 20 %: 60 s of budget, less than the 120 s dwell. The step is
    still bridged while replicas start (a dwell of budget used to be asked for first, which
    no 60 s budget has), the budget ends the bridge, and the time off `full` stays within it."""
    spec = make_spec(variants={"qualityBudget": {"windowMinutes": 5}})
    loop = closed_loop(_step, 900, spec=spec)
    actions = [(t, d.actions) for t, d in zip(loop.times, loop.decisions, strict=True)
               if d.actions]  # fmt: skip
    first_t, first = actions[0]
    assert first_t <= 315
    assert Action.DEGRADE_VARIANT in first
    assert Action.SCALE_UP in first
    interval = spec.policy.interval_seconds
    off = [t for t, c in zip(loop.times, loop.configs, strict=True) if c.variant != "full"]
    assert 0 < len(off) * interval <= 60 + interval
    assert loop.configs[-1].variant == "full"
    assert all(p <= 100.0 for t, p in zip(loop.times, loop.p99, strict=True) if t >= 360)


def test_a_ramp_is_followed_ahead_by_replicas() -> None:
    def ramp(t: float) -> float:
        return 300.0 + min(max(t - 300, 0), 600) * 4.5  # 300 -> 3000 req/s over 10 min

    loop = closed_loop(ramp, 1500)
    ups = [t for t, a, b in loop.changes() if b.replicas > a.replicas]
    switches = [t for t, a, b in loop.changes() if b.variant != a.variant]
    assert len(ups) >= 5
    assert len(switches) <= 2  # at most one bridge, before three rises prove a ramp
    # once the ramp is recognized, replicas are ordered a start-up ahead: the p99 holds
    late = [p for t, p in zip(loop.times, loop.p99, strict=True) if t >= 420]
    assert max(late) <= 80.0  # the aim, not just the target
    assert loop.configs[-1].variant == "full"


def test_falling_load_releases_replicas_one_by_one_after_the_stabilization() -> None:
    def fall(t: float) -> float:
        return 1200.0 if t < 300 else 300.0

    loop = closed_loop(fall, 1500)
    downs = [(t, a.replicas - b.replicas) for t, a, b in loop.changes() if b.replicas < a.replicas]
    assert downs, "never scaled down"
    assert downs[0][0] >= 285 + 300  # a window after the last high need (285 s)
    assert all(step == 1 for _, step in downs)
    assert loop.configs[-1].replicas < loop.configs[0].replicas


def test_a_smooth_fall_releases_replicas_within_a_minute_of_lower_need() -> None:
    def ramp_down(t: float) -> float:
        return 3000.0 - min(max(t - 300, 0), 600) * 4.5  # 3000 -> 300 req/s over 10 min

    loop = closed_loop(ramp_down, 1500)
    downs = [t for t, a, b in loop.changes() if b.replicas < a.replicas and t > 300]
    assert downs, "never scaled down"
    # the fall is seen after three lower rates, and the last minute's need released
    # (a whole stabilization window of lower need would take until 675 s here)
    assert downs[0] <= 300 + 150
    assert all(p <= 100.0 for p in loop.p99)  # released only what the falling load frees
    assert loop.configs[-1].replicas < loop.configs[0].replicas


def test_a_wobbly_smooth_fall_releases_replicas_without_three_falls_in_a_row() -> None:
    """The same fall with every third decision 150 req/s up: the rate never falls three
    times in a row, but its trend stands out of the scatter on calm load."""

    def wobbly(t: float) -> float:
        base = 3000.0 - min(max(t - 300, 0), 600) * 4.5
        return base + (150.0 if int(t // 15) % 3 == 0 and 300 < t < 900 else 0.0)

    loop = closed_loop(wobbly, 1500)
    downs = [t for t, a, b in loop.changes() if b.replicas < a.replicas and t > 300]
    assert downs, "never scaled down"
    assert downs[0] <= 300 + 200  # three falls in a row would wait until 705 s here
    assert all(p <= 100.0 for p in loop.p99)
    assert loop.configs[-1].replicas < loop.configs[0].replicas


def test_a_calm_fall_on_a_flat_quantile_releases_what_the_rate_frees() -> None:
    """600 -> 100 req/s over ten minutes where the quantile barely moves with the replicas
    (at 300 req/s: six replicas 79 ms, eight 76, fourteen 73; the aim 80). A margin of 10 %
    of latency would keep about twice the replicas the rate needs until the fall ends; the
    calm fall's margin of 10 % of rate releases them as the rate falls."""

    def fall(t: float) -> float:
        return 600.0 - min(max(t - 300, 0), 600) * 500 / 600

    loop = closed_loop(fall, 1500, profiles=FLAT, start=cfg(12))
    at = dict(zip(loop.times, loop.configs, strict=True))
    downs = [t for t, a, b in loop.changes() if b.replicas < a.replicas]
    assert downs, "never scaled down"
    assert downs[0] <= 300 + 150, downs  # a latency margin: not before 780 s
    assert at[660.0].replicas <= 8  # 300 req/s: 7 hold the aim at 333 (a latency margin: 12)
    assert loop.configs[-1].replicas == 3  # 100 req/s, the fall over (a latency margin: 5)
    assert all(p <= 100.0 for p in loop.p99)


def test_a_restore_that_breaches_is_undone_and_not_retried_blind() -> None:
    """From three replicas on, `full` is much slower than the model says (shared cores), the
    other variants are not: the restore onto three breaches. It is undone at the next decision that
    confirms the breach, replicas are added for what it measured, and `full` comes back on
    them for good."""
    slow = lambda c: 3.5 if c.variant == "full" and c.replicas >= 3 else 1.0  # noqa: E731
    loop = closed_loop(_step, 1500, slowdown=slow)
    restores = [t for t, a, b in loop.changes() if b.variant == "full" != a.variant]
    degrades = [t for t, a, b in loop.changes() if a.variant == "full" != b.variant]
    assert len(restores) == 2, loop.changes()
    assert len(degrades) == 2, loop.changes()
    first_restore, second_degrade = restores[0], degrades[1]
    assert second_degrade - first_restore <= 2 * 15  # seen twice, then undone
    over = [t for t, p in zip(loop.times, loop.p99, strict=True) if t > 330 and p > 100.0]
    assert len(over) <= 2  # only the intervals that confirmed the failed restore
    assert loop.configs[-1].variant == "full"
    assert loop.configs[-1].replicas > 3


def _bursts(rate: float) -> Callable[[float], float]:
    """Fifteen-second bursts of `rate` at 300 s and 540 s on 600 req/s."""
    return lambda t: rate if 300 <= t < 315 or 540 <= t < 555 else 600.0


def test_after_a_burst_beyond_replicas_max_the_next_one_meets_a_variant_that_holds_it() -> None:
    """Four `full` replicas do not hold 2,350 req/s within the target; `quantized` holds it
    easily. Fifteen-second bursts at 300 s and 540 s: the first is bridged, and the variant
    that holds it serves until a stabilization window has passed without one, so the second
    meets it."""
    fixed = make_spec(replicas={"min": 4, "max": 4})
    ahead = closed_loop(_bursts(2350.0), 1200, spec=fixed, start=cfg(4))
    switches = [(t, b.variant) for t, a, b in ahead.changes() if a.variant != b.variant]
    assert switches[0] == (300.0, "quantized"), switches
    # from two replicas (max 4): bridged with `distilled` first; after the dwell the more
    # accurate `quantized`, which holds the burst, serves, not `full`
    spec = make_spec(replicas={"min": 1, "max": 4})
    bridged = closed_loop(_bursts(2350.0), 1200, spec=spec)
    switches = [(t, b.variant) for t, a, b in bridged.changes() if a.variant != b.variant]
    assert switches[:2] == [(300.0, "distilled"), (420.0, "quantized")], switches
    for run in (ahead, bridged):
        second = run.times.index(540.0)
        assert run.configs[second - 1].variant == "quantized"
        assert run.p99[second] <= 100.0  # the second burst is held
        # `full` is back a stabilization window after the last burst beyond it, for good
        back = [t for t, a, b in run.changes() if b.variant == "full" != a.variant]
        assert back
        assert 540 + 300 <= back[-1] <= 540 + 300 + 30
        assert run.configs[-1].variant == "full"


def test_bursts_replicas_max_hold_within_the_target_are_served_by_the_preferred_variant() -> None:
    """Four `full` replicas hold 2,200 req/s within the target (about 92 ms) but not at the
    aim: no faster variant is held ahead of the next burst (that spent the quality budget
    the bursts beyond `replicas.max` needed), and both bursts pass under the target."""
    fixed = make_spec(replicas={"min": 4, "max": 4})
    run = closed_loop(_bursts(2200.0), 1200, spec=fixed, start=cfg(4))
    assert {c.variant for c in run.configs} == {"full"}
    assert max(run.p99) <= 100.0
    assert max(run.p99) > fixed.aim_latency_ms  # the bursts do pass the aim


def test_a_tenth_more_load_on_a_fleet_near_its_knee_passes_without_a_breach() -> None:
    """At 1,580 req/s three replicas of `full` meet the aim (73 ms by the model, 80 the aim)
    but would not hold a quarter more at any latency: the curve is steep there. Sized for
    the target at the rate / headroom as well, the loop holds four, and a rise of a tenth
    five minutes later passes under the target with `full` serving throughout; sized for the
    aim alone it kept three, and the rise breached (145 ms) until a bridge and a fourth
    replica."""
    loop = closed_loop(lambda t: 1580.0 if t < 300 else 1738.0, 600, start=cfg(3))
    assert [c.replicas for c in loop.configs] == [4] * len(loop.configs)
    assert {c.variant for c in loop.configs} == {"full"}
    after = [p for t, p in zip(loop.times, loop.p99, strict=True) if t >= 300]
    assert max(after) <= 100.0


def test_a_burst_after_silence_meets_the_variant_parked_for_it() -> None:
    """2,000 req/s, then 300 (the fleet is released to what that asks for), then silence,
    then 1,200 req/s. The silence parks `distilled`: the hour's peak is beyond the fleet in
    force with `full`, within what `replicas.max` holds. The next burst's first look finds
    it within target on the replicas in force (`full` on them would be far over), replicas
    are ordered for it, and `full` is restored once they are ready."""

    def load(t: float) -> float:
        return 2_000.0 if t < 600 else 300.0 if t < 1_500 else 0.0 if t < 1_800 else 1_200.0

    loop = closed_loop(load, 2_400)
    parks = [(t, d) for t, d in zip(loop.times, loop.decisions, strict=True)
             if d.actions == (Action.DEGRADE_VARIANT,) and "parked" in d.reason]  # fmt: skip
    assert parks
    assert all(1_500 <= t < 1_800 for t, _ in parks), [t for t, _ in parks]
    i = loop.times.index(1_800.0)  # the burst's first look, on the configuration before it
    served, ready = loop.configs[i - 1], loop.ready[i]
    assert served.variant == "distilled"
    assert loop.p99[i] <= 100.0
    assert model_p99(1_200.0, served.with_(replicas=ready, variant="full")) > 2 * 100.0
    assert loop.configs[-1].variant == "full"
    assert loop.configs[-1].replicas > ready
    assert all(p <= 100.0 for t, p in zip(loop.times, loop.p99, strict=True) if t > 1_800)
