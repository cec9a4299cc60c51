"""What the controller reads from its own recent history: the model's correction factor,
the trend of the rate it sized for, how long ordered replicas took to become ready, what
a failed restore measured, and the last burst `replicas.max` of the preferred variant did not
hold."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

from slo_operator.model.queueing import predict
from slo_operator.policy.state import ControllerState
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, ProfileSet, RuntimeConfig

MIN_STARTUP_S, MAX_STARTUP_S = 5.0, 900.0
CORRECTION_MIN, CORRECTION_MAX = 0.5, 4.0
CORRECTION_GAIN = 0.15
LEARN_FROM = 0.4
"""Learn only from quantiles above 40 % of the aim (measured or predicted): far below it the
histogram's buckets are coarse and the model's error there says little about the error near
the aim."""
MIN_TAIL = 10.0
"""Where the model predicts less than LEARN_FROM of the aim, a quantile measured above it is
learned from only when at least this many requests of the window lie beyond the quantile
(1,000 requests for p99): on fewer, the quantile is set by a handful of requests and the
service time's own spread (the model's service time is the profile's line), not by the
model's error near the aim. Learning from them took the correction to 2.2-2.4x at a trickle
of 2-6 req/s between bursts, and that sized every burst."""
ASSUMED_STARTUP_S = 30.0
"""Seconds a new replica is assumed to take until one scale-up has been measured."""
TREND_POINTS = 4
FALL_POINTS = 6
"""The rates sized for that are kept: the last six decisions (a fall is fitted on them, a
rise and a step read the last four and two)."""
FALL_T = 2.0
"""A fall counts when its slope is at least two standard errors below zero."""
TREND_MIN = 0.03
"""A projected rise, or a fall, smaller than 3 % of the rate is noise."""
FALL_Z = 3.0
"""Nor is a fall (or a rise) counted within 3 standard deviations of the difference between
two independent window rates of Poisson arrivals (sqrt(2 * rate / window)): at a few dozen
requests a second that noise exceeds 3 %, and the rates sized for, read every interval from
overlapping windows, wander together far enough for a least-squares trend to pass its own
test (`trend_floor`)."""
STEADY_RATE_TOLERANCE = 0.2
"""The load counts as steady when the recent rate is within 20 % of the window's rate."""
RISE_CONFIRMS = 1.25
"""A breach seen together with a rise of the rate by 25 % or more since the previous step,
while replicas are ordered for the new rate, is bridged at once, without waiting to see it
twice: the step explains it (the model, sized on the rate before, could not foresee it), and
waiting one more interval only lengthens the episode (the simulator's x2 step, five seeds:
33 s to recover with the wait, 17 s without). Without replicas ordered (a burst the fleet is
predicted to hold) it waits as before: bridging such bursts at once left the fleet one
replica smaller on the trace and cost it 1.6 violating windows (docs/policy.md)."""


def risen(rate: float | None, before: float | None) -> bool:
    """`rate` RISE_CONFIRMS or more above `before` (a positive rate; False if either is
    unknown): a step, not noise."""
    return rate is not None and before is not None and rate >= RISE_CONFIRMS * before > 0


def rate_stepped(rates: tuple[tuple[float, float], ...]) -> bool:
    """The rate sized for rose by RISE_CONFIRMS or more since the previous step."""
    return len(rates) >= 2 and risen(rates[-1][1], rates[-2][1])


def at_burst_front(recent: float | None, window_rate: float | None) -> bool:
    """The recent rate RISE_CONFIRMS or more above the quantile window's: a burst's front,
    which the window (and the rate sized for, when a busier past set it) still averages
    with the calmer seconds before it."""
    return risen(recent, window_rate)


def rose_since(rates: tuple[tuple[float, float], ...], since: float | None) -> bool:
    """The rate sized for rose by RISE_CONFIRMS or more since `since` (a time; None: ever),
    now against the lowest one kept from then on."""
    kept = [r for t, r in rates if since is None or t >= since]
    return len(kept) >= 2 and kept[-1] > 0 and kept[-1] >= RISE_CONFIRMS * min(kept[:-1])


def sustained_rise(rates: tuple[tuple[float, float], ...]) -> float:
    """A sustained rise in req/s per second: the smallest of the last three increases. A
    ramp rises three times in a row; a step (even one that lands mid-interval and shows as
    two rises) or noise does not. 0 when there is no such rise."""
    if len(rates) < TREND_POINTS:
        return 0.0
    pts = rates[-TREND_POINTS:]
    slopes = [(r1 - r0) / (t1 - t0) if t1 > t0 else 0.0 for (t0, r0), (t1, r1) in pairwise(pts)]
    return max(0.0, min(slopes))


def sustained_fall(rates: tuple[tuple[float, float], ...]) -> float:
    """A sustained fall in req/s per second (positive): the smallest of the last three
    decreases; 0 unless the rate fell three times in a row."""
    return sustained_rise(tuple((t, -r) for t, r in rates))


def _trend(pts: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """(least-squares slope in req/s per second, its standard error) of (time, rate) points;
    (0, inf) when the times do not spread."""
    n = len(pts)
    t_mean = sum(t for t, _ in pts) / n
    r_mean = sum(r for _, r in pts) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in pts)
    if sxx <= 0:
        return 0.0, math.inf
    slope = sum((t - t_mean) * (r - r_mean) for t, r in pts) / sxx
    scatter = sum((r - r_mean - slope * (t - t_mean)) ** 2 for t, r in pts)
    return slope, math.sqrt(scatter / (n - 2) / sxx)


def significant_fall(rates: tuple[tuple[float, float], ...]) -> float:
    """A fall in req/s per second (positive) that the rates sized for at the last FALL_POINTS
    decisions show beyond their own scatter: the least-squares slope, at least FALL_T
    standard errors below zero; 0 otherwise. A smooth fall passes even when one decision
    ticks up (the three-in-a-row rule then waits three more); a flat rate with noise does
    not, nor a step down (the rate at one decision below 1 / RISE_CONFIRMS of the one
    before): a lull may end as suddenly, so a step waits the whole stabilization window."""
    pts = rates[-FALL_POINTS:]
    if len(pts) < FALL_POINTS or any(r1 * RISE_CONFIRMS < r0 for (_, r0), (_, r1) in pairwise(pts)):
        return 0.0
    slope, stderr = _trend(pts)
    return -slope if slope < 0 and -slope >= FALL_T * stderr else 0.0


def significant_rise(rates: tuple[tuple[float, float], ...]) -> float:
    """A rise in req/s per second that the rates sized for at the last FALL_POINTS decisions
    show beyond their own scatter (the least-squares slope, at least FALL_T standard errors
    above zero), else 0; infinite while fewer decisions are kept (a rise is not ruled out)."""
    pts = rates[-FALL_POINTS:]
    if len(pts) < FALL_POINTS:
        return math.inf
    slope, stderr = _trend(pts)
    return slope if slope > 0 and slope >= FALL_T * stderr else 0.0


def trend_floor(rate: float, window_s: float) -> float:
    """The smallest fall (or rise) of the rate (req/s) that is not noise: TREND_MIN of the rate, or
    FALL_Z standard deviations of the difference between two window rates of Poisson
    arrivals, whichever is larger."""
    noise = math.sqrt(2.0 * rate / window_s) if rate > 0 and window_s > 0 else 0.0
    return max(TREND_MIN * rate, FALL_Z * noise)


def falling_load(
    st: ControllerState,
    is_smooth: bool,
    rate: float,
    interval: float,
    stab: float,
    now: float,
    window_s: float,
) -> tuple[bool, bool]:
    """(falling, calm fall). Falling: on smooth load, the rate sized for fell by more than
    `trend_floor` (of a rate over `window_s` seconds), three times in a row or, on load calm
    for a stabilization window (no burst seen), as a least-squares trend over the last
    FALL_POINTS decisions. A calm fall also sizes the scale-down for the recent rate: the
    window's rate trails a fall by half the window."""
    if not is_smooth:
        return False, False
    floor = trend_floor(rate, window_s)
    falling = sustained_fall(st.rates) * (TREND_POINTS - 1) * interval > floor
    calm = st.last_burst_at is None or now - st.last_burst_at >= stab
    span = st.rates[-1][0] - st.rates[0][0] if st.rates else 0.0
    calm_fall = calm and significant_fall(st.rates) * span > floor
    return falling or calm_fall, calm_fall


def learn_startup(st: ControllerState, ready: int, now: float) -> ControllerState:
    """Measure how long ordered replicas take to become ready (EWMA, clamped)."""
    if st.pending_up is None:
        return st
    since, wanted = st.pending_up
    if ready < wanted:
        return st if now - since < MAX_STARTUP_S else replace(st, pending_up=None)
    sample = min(max(now - since, MIN_STARTUP_S), MAX_STARTUP_S)
    est = sample if st.startup_s is None else 0.5 * st.startup_s + 0.5 * sample
    return replace(st, startup_s=est, pending_up=None)


QUIET_CARRY_WINDOWS = 3.0
"""A quiet spell (traffic below minRequestRate) carries over into the stabilization window
the most replicas the rate asked for over this many windows before it (15 minutes at the
defaults): a lull says nothing of the next burst, so the bursts around it decide. Not the
fleet in force: a fleet the measured quantile ordered at a burst's front (up to 4x the
model, `replicas.max` on a step from idle) was then held for as long as lulls came every
stabilization window or sooner (an idle service with 60 s bursts every 4 minutes that four
replicas hold kept sixteen for the hour). One window or two released fleets between the
shipped trace's bursts and cost it violating windows; three to twelve measured the same."""


def note_recommendation(
    st: ControllerState, need: int, on_rate: bool, now: float, window_s: float
) -> ControllerState:
    """`st` with this decision's recommendation: among the stabilization window's, and, when
    sized `on_rate` (not on the measured quantile), among `needs` for QUIET_CARRY_WINDOWS."""
    recs = (*prune(st.recommendations, now, window_s), (now, need))
    needs = prune(st.needs, now, QUIET_CARRY_WINDOWS * window_s)
    return replace(st, recommendations=recs, needs=(*needs, (now, need)) if on_rate else needs)


def carry_over(st: ControllerState, fleet: int, now: float, window_s: float) -> ControllerState:
    """A quiet spell's decision: it carries over the most replicas the rate asked for in the
    last QUIET_CARRY_WINDOWS windows, at most the `fleet` in force (`carried`, one window
    long); the fleet when the rate asked for nothing in that time."""
    needs = prune(st.needs, now, QUIET_CARRY_WINDOWS * window_s)
    carry = min(fleet, max(n for _, n in needs)) if needs else fleet
    return replace(st, needs=needs, carried=(now, carry))


LULL_SHARE = 0.25
"""A lull: the rate asks for the fewest replicas (`replicas.min`, at least one) and at most a
quarter of the most it asked for over the carry horizon (QUIET_CARRY_WINDOWS windows), after
rising from as little within it: a burst, not the end of a plateau nor a slow fall."""


def lull_carry(
    st: ControllerState, need: int, floor: int, now: float, window_s: float
) -> int | None:
    """The replicas a lull between bursts carries over, as a quiet spell does: the most the
    rate asked for over QUIET_CARRY_WINDOWS windows, when `need` is a lull (LULL_SHARE);
    else None. A trickle between bursts (a few requests a second, above minRequestRate) is
    no better a forecast of the next burst than silence is: released after a stabilization
    window, the fleet met each burst of a cron-like load with one replica."""
    asked = [n for _, n in prune(st.needs, now, QUIET_CARRY_WINDOWS * window_s)]
    if not asked:
        return None
    top = max(asked)
    before = asked[: asked.index(top)]
    if need <= min(floor, LULL_SHARE * top) and before and min(before) <= LULL_SHARE * top:
        return top
    return None


def prune(
    recs: tuple[tuple[float, int], ...], now: float, window_s: float
) -> tuple[tuple[float, int], ...]:
    """The recommendations of the last `window_s` seconds."""
    return tuple((t, n) for t, n in recs if t > now - window_s)


def note_failed_restore(
    spec: LatencySLOSpec,
    st: ControllerState,
    current: RuntimeConfig,
    confirmed: bool,
    cf_fast: float,
    rate: float,
    now: float,
    bursty: bool = False,
) -> ControllerState:
    """A breach confirmed on the preferred variant soon after switching to it (within the
    dwell, or three intervals) is a restore that failed: remember when, at what rate, and the
    observed / predicted ratio (the fast knobs' correction). On `bursty` load not when the
    rate rose by a step since the restore (`rose_since`: the rise explains the breach) nor
    when replicas were added since (the quantile then mixes two fleets)."""
    pol = spec.policy
    soon = max(pol.variant_min_dwell_seconds, 3 * pol.interval_seconds)
    if not confirmed or current.variant != spec.variants.effective_preferred:
        return st
    changed = st.last_variant_change_at
    if changed is None or now - changed > soon or cf_fast <= st.correction:
        return st
    added = st.last_scale_up_at is not None and st.last_scale_up_at > changed
    if bursty and (added or rose_since(st.rates, changed)):
        return st
    return replace(st, failed_restore=(now, rate, cf_fast))


def lesson_of_failed_restore(
    spec: LatencySLOSpec, st: ControllerState, rate: float, now: float
) -> float:
    """The failed restore's ratio, which sizes and restores the preferred variant for one dwell
    and one stabilization window after it, while the load stays within 20 % below the rate it
    failed at or above it (0 otherwise)."""
    if st.failed_restore is None:
        return 0.0
    t, at_rate, ratio = st.failed_restore
    pol = spec.policy
    if now - t > pol.variant_min_dwell_seconds + pol.scale_down_stabilization_seconds:
        return 0.0
    return ratio if rate >= (1.0 - STEADY_RATE_TOLERANCE) * at_rate else 0.0


def tail_requests(obs: Observation, spec: LatencySLOSpec) -> float:
    """Requests of the window beyond the objective's quantile (0 when not counted)."""
    return max(0.0, obs.samples or 0.0) * (1.0 - spec.quantile)


def learn_correction(
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    obs: Observation,
    current: RuntimeConfig,
    st: ControllerState,
    rate: float,
    now: float,
) -> tuple[ControllerState, float]:
    """Update the correction factor on a steady, unchanged configuration near the aim: the
    preferred variant's (`correction`), or, while a cheaper variant serves to save replicas,
    that variant's (`saving_corrections`, from the preferred one's the first time: the
    model's error is not the same for every variant, and a long saving is sized with it).

    It learns from the objective's own quantile, over every request, refused ones included:
    on a steady configuration, what the refusals of brief spikes within the window cost is
    part of what the model misses and the replicas must be sized for (read from the requests
    served alone, `spike-train` went from 17.5 to 31.5 violating windows: docs/policy.md
    section 7, "Refusals read apart"). The fast knobs and the feedback read the served ones.

    Returns the state and the raw (uncorrected) prediction for the configuration in force."""
    assert obs.latency_ms is not None
    ready = max(0, obs.ready_replicas)
    if ready == 0 or current.variant not in profiles.variants:
        return st, math.inf
    raw = predict(
        profiles.variants[current.variant],
        rate,  # the rate sizing uses: the factor must not count burstiness twice
        ready,
        current.batch_window_ms,
        current.max_batch_size,
        spec.quantile,
    ).latency_ms
    since_change = now - (st.last_change_at if st.last_change_at is not None else st.started_at)
    pref = spec.variants.effective_preferred
    saving = st.economy_since is not None and current.variant != pref
    window_rate, recent = obs.request_rate or 0.0, obs.recent_request_rate
    steady = recent is None or abs(recent - window_rate) <= STEADY_RATE_TOLERANCE * window_rate
    if not (
        since_change >= spec.objective.window_seconds
        and ready == current.replicas
        and (saving or current.variant == pref)  # replicas are sized for that variant
        and steady
        and math.isfinite(raw)
        and obs.latency_ms > 0
        and max(raw, obs.latency_ms) >= LEARN_FROM * spec.aim_latency_ms
        and (raw >= LEARN_FROM * spec.aim_latency_ms or tail_requests(obs, spec) >= MIN_TAIL)
    ):
        return st, raw
    ratio = min(max(obs.latency_ms / raw, CORRECTION_MIN), CORRECTION_MAX)
    before = st.correction_for(current.variant, pref)
    log_c = (1 - CORRECTION_GAIN) * math.log(before) + CORRECTION_GAIN * math.log(ratio)
    correction = min(max(math.exp(log_c), CORRECTION_MIN), CORRECTION_MAX)
    if saving:
        learned = {**dict(st.saving_corrections), current.variant: correction}
        return replace(st, saving_corrections=tuple(sorted(learned.items()))), raw
    return replace(st, correction=correction, correction_samples=st.correction_samples + 1), raw


PEAK_MEMORY_S = 3600.0
"""How long the busiest rate sized for is remembered: an hour, the idle release's horizon
(`hold.IDLE_RELEASE_S`) and the default quality budget's window."""


def note_peak(st: ControllerState, rate: float, now: float) -> ControllerState:
    """`st` with the busiest rate sized for: `rate` when it is at least the one remembered or
    that one is more than PEAK_MEMORY_S old (then the rate of this decision takes its place)."""
    at, top = st.peak_at, st.peak_rate
    if at is not None and top is not None and now - at <= PEAK_MEMORY_S and rate < top:
        return st
    return replace(st, peak_at=now, peak_rate=rate)


def note_ceiling(
    st: ControllerState, held: bool, rate: float, now: float, window: float
) -> tuple[ControllerState, float | None]:
    """(state, burst): remember a rate that `replicas.max` replicas of the preferred variant
    could not hold (`held` False), the highest within `window` seconds of the last one; the
    burst to prepare for while that window lasts (infinite when its rate is unknown, as in
    a memory written before rates were kept), else None."""
    active = st.ceiling_at is not None and now - st.ceiling_at < window
    if not held:
        top = max(rate, st.ceiling_rate or 0.0) if active else rate
        return replace(st, ceiling_at=now, ceiling_rate=top), top
    return st, ((st.ceiling_rate or math.inf) if active else None)
