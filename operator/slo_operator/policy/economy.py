"""Spending part of the quality budget to save replicas (`qualityBudget.costShare`; pure).

When the load rises and the preferred variant would need more replicas, a cheaper allowed
variant that holds the aim on the replicas in force may serve instead, for as long as the
cost share of the budget lasts. One start-up and two intervals before that share is spent,
replicas are ordered for the preferred variant again, and the usual restore brings it back
once they are ready. The rest of the budget (1 - costShare) stays for bridging bursts: a
saving starts only while the budget left exceeds that reserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from slo_operator.policy.explain import explain
from slo_operator.policy.history import (
    ASSUMED_STARTUP_S,
    STEADY_RATE_TOLERANCE,
    rate_stepped,
    sustained_rise,
)
from slo_operator.policy.sizing import BRIDGE_SURGE, PEAK_Z, Sizing
from slo_operator.policy.state import ControllerState
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, ProfileSet, Ranges, RuntimeConfig


@dataclass(frozen=True, slots=True)
class Saving:
    """What the cost share allows at one decision."""

    left_s: float
    """Seconds of the cost share still unspent (the budget left above the bridging reserve)."""
    lead_s: float
    """Seconds before the share is spent at which replicas are ordered for the preferred
    variant again (one start-up and two intervals)."""

    @property
    def lasts(self) -> bool:
        """Whether the variant in force may go on saving replicas."""
        return self.left_s > self.lead_s


def budget_seconds(spec: LatencySLOSpec) -> float:
    """The quality budget in seconds: `maxDegradedFraction` of its window."""
    budget = spec.variants.quality_budget
    return budget.max_degraded_fraction * budget.window_minutes * 60.0


def budget_left(
    spec: LatencySLOSpec, st: ControllerState, now: float, ahead: float = 0.0
) -> tuple[float, float]:
    """(the quality budget in seconds, the seconds of it left) over its sliding window, as
    the window will stand `ahead` seconds from now: time spent in its first `ahead` seconds
    has left it by then."""
    budget_s = budget_seconds(spec)
    window_s = spec.variants.quality_budget.window_minutes * 60.0
    return budget_s, budget_s - st.degraded_seconds(now, max(0.0, window_s - ahead))


def fits(spec: LatencySLOSpec, st: ControllerState, now: float, span: float) -> bool:
    """Whether `span` more seconds off the preferred variant, from now, keep the sliding
    window within the budget at every instant: the time booked so far that stays in the
    window until then, plus the span. (At `maxDegradedFraction: 1` it always fits.)"""
    return budget_left(spec, st, now, span)[1] >= span


def bridge_reserve(spec: LatencySLOSpec) -> float:
    """The span a bridge must fit in the quality budget (`fits`) before a degrade: one
    interval, and a dwell, so that the budget cannot end a bridge before the dwell would let
    it end. Not the dwell where the whole budget is shorter than one (`windowMinutes: 5` at
    the default 20 %: 60 s against 120 s): every bridge then ends when the budget is spent,
    and asking for a dwell of it refused every bridge."""
    pol = spec.policy
    dwell = pol.variant_min_dwell_seconds
    dwell = dwell if dwell <= budget_seconds(spec) else 0
    return float(max(dwell, pol.interval_seconds))


def can_bridge(spec: LatencySLOSpec, st: ControllerState, variant: str, now: float) -> bool:
    """Whether a variant below `variant` on the ladder (the degrade order from the preferred
    one) could still bridge a breach: there is one, and a bridge of `bridge_reserve` fits
    the quality budget, as `_variant` asks before it degrades."""
    ladder = spec.variants.ladder
    if variant not in ladder or variant == ladder[-1]:
        return False
    return fits(spec, st, now, bridge_reserve(spec))


def saving(
    spec: LatencySLOSpec, st: ControllerState, startup_s: float, now: float
) -> Saving | None:
    """The cost share's account at `now`, or None when the spec spends nothing on cost."""
    budget = spec.variants.quality_budget
    if budget.cost_share <= 0 or budget.max_degraded_fraction <= 0:
        return None
    budget_s, remaining = budget_left(spec, st, now)
    reserve = (1.0 - budget.cost_share) * budget_s
    lead = startup_s + 2.0 * spec.policy.interval_seconds
    return Saving(left_s=remaining - reserve, lead_s=lead)


def cheaper_variant(
    spec: LatencySLOSpec, ctx: Sizing, replicas: int, correction: float
) -> str | None:
    """The best-quality allowed variant below the preferred one that holds the aim on
    `replicas` at the rate sized for, else None."""
    order = list(spec.variants.allowed)
    pref = spec.variants.effective_preferred
    below = order[order.index(pref) + 1 :] if pref in order else []
    aim = spec.aim_latency_ms
    return next((v for v in below if ctx.holds(v, replicas, correction, aim)), None)


@dataclass(frozen=True, slots=True)
class SavingStart:
    """A saving that starts now: the variant, and what it is sized with."""

    variant: str
    serving: int
    """Ready replicas it serves on."""
    correction: float
    left_s: float
    need: int
    """Replicas of the preferred variant it saves ordering."""


def saving_in_force(
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    st: ControllerState,
    variant: str,
    is_smooth: bool,
    now: float,
) -> tuple[ControllerState, Saving | None, str]:
    """(state, the cost share's account, the variant replicas are sized for): `variant` (the
    one in force) while it saves replicas, the share lasts and the load stays smooth, else
    the preferred one (replicas are ordered for it, and the usual restore follows)."""
    pref = spec.variants.effective_preferred
    if st.economy_since is not None and variant == pref:
        st = replace(st, economy_since=None)  # the saving is over, or was never applied
    startup = st.startup_s if st.startup_s is not None else ASSUMED_STARTUP_S
    account = saving(spec, st, startup, now)
    if (
        account is not None
        and account.lasts
        and is_smooth
        and st.economy_since is not None
        and variant in profiles.variants
    ):
        return st, account, variant
    return st, account, pref


def smooth(obs: Observation, ranges: Ranges) -> bool:
    """Whether the load is smooth: the recent and the peak short-range rates within 20 % of
    the window's rate, or within the Poisson noise of a rate over their range (`PEAK_Z`
    standard deviations) where that is wider (low rates). On bursty load the replicas a
    burst orders are held for a stabilization window and outlast any saving, and a breach
    after a restore is the burst's, not the variant's."""
    base = obs.request_rate or 0.0
    if not (base > 0 and math.isfinite(base)):
        return False
    for extra, span_s in (
        (obs.recent_request_rate, float(ranges.recent_s)),
        (obs.peak_request_rate, float(ranges.peak_s)),
    ):
        if extra is None:
            continue
        allowed = max(STEADY_RATE_TOLERANCE * base, PEAK_Z * math.sqrt(base / span_s))
        if not (math.isfinite(extra) and abs(extra - base) <= allowed):
            return False
    return True


def start_saving(
    spec: LatencySLOSpec,
    ctx: Sizing,
    st: ControllerState,
    current: RuntimeConfig,
    account: Saving | None,
    need: int,
    is_smooth: bool,
    ready: int,
    correction: float,
    settled: bool,
    over: bool,
    now: float,
) -> SavingStart | None:
    """A saving to start now, or None: on the preferred variant, with a rise (the rate sized
    for rose three times in a row, or stepped) that needs more replicas of it (`need`), on
    load smooth for a stabilization window, a variant switch allowed (fresh data, and the
    dwell over or the target breached), enough of the cost share left for the dwell and the
    lead, and a cheaper variant that holds the aim on the ready replicas at the rate of `ctx`
    (with a surge margin during a breach, as a bridge)."""
    pol, pref = spec.policy, spec.variants.effective_preferred
    if account is None or current.variant != pref or need <= current.replicas:
        return None
    calm = (
        st.last_burst_at is None or now - st.last_burst_at >= pol.scale_down_stabilization_seconds
    )
    rising = sustained_rise(st.rates) > 0 or rate_stepped(st.rates)
    last_switch = st.last_variant_change_at
    dwelt = last_switch is None or now - last_switch >= pol.variant_min_dwell_seconds
    if not (is_smooth and calm and rising and settled and (over or dwelt)):
        return None
    if account.left_s < account.lead_s + pol.variant_min_dwell_seconds:
        return None
    serving = min(ready, current.replicas)
    gauge = ctx.at_rate(ctx.rate * BRIDGE_SURGE) if over else ctx
    cheaper = cheaper_variant(spec, gauge, serving, correction)
    if cheaper is None:
        return None
    return SavingStart(cheaper, serving, correction, account.left_s, need)


def saving_decision(
    spec: LatencySLOSpec,
    ctx: Sizing,
    st: ControllerState,
    current: RuntimeConfig,
    conformed: RuntimeConfig,
    start: SavingStart,
    p_obs: float,
    now: float,
) -> tuple[ControllerState, RuntimeConfig, str, float]:
    """(state, target, reason, predicted quantile) of the decision that starts `start`."""
    cheaper = start.variant
    st = replace(st, economy_since=now)
    serving = max(start.serving, 1)
    window, _ = ctx.best_window(cheaper, serving, start.correction, keep=conformed.batch_window_ms)
    target = conformed.with_(batch_window_ms=window, variant=cheaper)
    predicted = ctx.p99(cheaper, conformed.replicas, window, st.correction)
    note = f"{start.left_s:.0f}s of the quality budget's cost share left"
    reason = explain(
        spec, current, target, p_obs, ctx.rate, start.need, True, start.serving, predicted,
        st.correction, [note], saving=True,
    )  # fmt: skip
    return st, target, reason, predicted
