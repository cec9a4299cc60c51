"""The decision on untrusted data (docs/policy.md, section 2 step 1 and section 3): hold
inside the bounds; a trusted rate alone may add replicas; a quiet spell may park a faster
variant for the next burst; an hour of quiet returns the fleet to `replicas.min` (pure)."""

from __future__ import annotations

import math
from dataclasses import replace

from slo_operator.policy.economy import bridge_reserve, budget_left, fits
from slo_operator.policy.history import PEAK_MEMORY_S, carry_over, prune
from slo_operator.policy.sizing import Sizing
from slo_operator.policy.state import ControllerState
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import RuntimeConfig

IDLE_RELEASE_S = 3600.0
"""After an hour of quiet (fresh data, traffic below minRequestRate, no trusted decision),
the preferred variant is restored and the fleet returns to `replicas.min` (at least one),
one replica per interval: a service idle overnight does not keep its evening's fleet until
the morning. An hour, not a stabilization window: the lulls before the traces' largest
bursts last up to a quarter of an hour (the shipped trace reversed: quiet for 15 minutes,
then 850 req/s on the six or seven replicas the lull kept), and holding through them keeps
those within G1."""

PARK_SHARE = 0.5
"""A quiet spell parks a faster variant only while at least half the quality budget is left:
the other half stays for bridging breaches."""


def park_variant(
    spec: LatencySLOSpec, ctx: Sizing, st: ControllerState, config: RuntimeConfig, now: float
) -> str | None:
    """The variant a quiet spell serves the next burst's front with, or None (keep `config`).

    A variant that serves nobody degrades nobody (the budget books only served time), so
    while the preferred variant in force idles the fastest allowed one may wait in its place.
    Only where it buys something the fleet does not: the busiest rate sized for within the
    last hour (`history.note_peak`) is beyond what the replicas in force hold within the
    target with the preferred variant (learned correction and profiles), and not beyond what
    `replicas.max` of it would (bursts beyond that are the ceiling rule's, which needs the
    budget); and only while PARK_SHARE of the budget is left. The usual restore brings the
    preferred variant back once the ready replicas hold the aim with it."""
    pref, fastest = spec.variants.effective_preferred, spec.variants.ladder[-1]
    at, peak = st.peak_at, st.peak_rate
    if config.variant != pref or fastest == pref or at is None or peak is None:
        return None
    budget_s, left = budget_left(spec, st, now)
    if now - at > PEAK_MEMORY_S or left < max(PARK_SHARE * budget_s, bridge_reserve(spec)):
        return None
    burst, target = ctx.at_rate(peak), spec.target_latency_ms
    if burst.holds(pref, config.replicas, st.correction, target):
        return None
    return fastest if burst.holds(pref, spec.replicas.max, st.correction, target) else None


def hold(
    spec: LatencySLOSpec,
    ctx: Sizing,
    st: ControllerState,
    current: RuntimeConfig,
    conformed: RuntimeConfig,
    now: float,
    *,
    why: str,
    rate_ok: bool,
    quiet: bool,
    settled: bool,
    no_requests: bool,
) -> tuple[ControllerState, RuntimeConfig, str, float | None]:
    """(state, target, reason, predicted p99) on untrusted data. Missing data records the
    fleet in force as a recommendation (it may hide any load); a `quiet` spell (low traffic)
    carries over what the rate asked for lately (`history.carry_over`). Once `settled` (a
    stabilization window of fresh data), one with `no_requests` served in the last
    interval may park a faster variant (`park_variant`), and a trickle served off the
    preferred variant with the quality budget spent restores it. An hour into the spell the
    preferred variant is restored, then one replica released per interval down to
    `replicas.min`."""
    stab = float(spec.policy.scale_down_stabilization_seconds)
    kept = max(current.replicas, conformed.replicas)
    recs = prune(st.recommendations, now, stab)
    st = carry_over(st, kept, now, stab) if quiet else st
    st = replace(st, recommendations=recs if quiet else (*recs, (now, kept)))
    target, reason = conformed, f"holding: {why}; no capacity removed, variant kept"
    predicted = None
    pref = spec.variants.effective_preferred
    idle_s = quiet_for(st, now) if quiet else 0.0
    floor = max(spec.replicas.min, 1)  # with no pod, no traffic is seen to bring one back
    early = quiet and settled and idle_s < IDLE_RELEASE_S
    parked = park_variant(spec, ctx, st, conformed, now) if early and no_requests else None
    spent = early and not fits(spec, st, now, spec.policy.interval_seconds)
    if rate_ok and ctx.rate > 0:
        need, _ = ctx.replicas_needed(pref, st.correction)
        since_up = math.inf if st.last_scale_up_at is None else now - st.last_scale_up_at
        cooled = since_up >= spec.policy.scale_up_cooldown_seconds
        if need > conformed.replicas and cooled:
            target = conformed.with_(replicas=need)
            predicted = ctx.p99(pref, need, target.batch_window_ms, st.correction)
            reason = (
                f"{why}; {ctx.rate:.0f} req/s needs {need} replicas: scaling up "
                f"{conformed.replicas} -> {need} (never down on missing data)"
            )
    elif parked is not None:
        target = conformed.with_(variant=parked)
        reason = (
            f"{why}: {parked} parked for the next burst: {conformed.replicas} replica(s) of "
            f"{pref} do not hold the {st.peak_rate:.0f} req/s of the last hour"
        )
    elif spent and conformed.variant != pref:
        target = conformed.with_(variant=pref)
        reason = f"{why}: quality budget spent, {pref} restored"
    elif idle_s >= IDLE_RELEASE_S and conformed.variant != pref:
        target = conformed.with_(variant=pref)
        reason = f"{why} for {idle_s / 60:.0f} min: {pref} restored"
    elif idle_s >= IDLE_RELEASE_S and floor < conformed.replicas <= current.replicas:
        n = conformed.replicas
        target = conformed.with_(replicas=n - 1)
        reason = f"{why} for {idle_s / 60:.0f} min: {n} -> {n - 1} replicas, toward replicas.min"
    if conformed.differs(current) and target == conformed:
        reason = f"{reason}; moved into the spec's bounds"
    return st, target, reason, predicted


def quiet_for(st: ControllerState, now: float) -> float:
    """Seconds of fresh data since the last trusted decision (or since the data became fresh,
    whichever is later: a restart or an outage does not count as quiet)."""
    last_trusted = st.rates[-1][0] if st.rates else st.started_at
    since = max(last_trusted, st.fresh_since if st.fresh_since is not None else now)
    return max(0.0, now - since)
