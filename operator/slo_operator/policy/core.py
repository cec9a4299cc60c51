"""The decision core: (spec, observation, configuration, profiles, memory, clock) -> decision.

Pure: no I/O, no clock reads, no randomness. One call per `intervalSeconds`. How it decides
(docs/policy.md has the user-facing version):

1. Trust. Missing, NaN, stale, erroring or low-rate data (below `minRequestRate`) is not
   acted on: the decision holds, except that a trusted request rate alone may add replicas
   (so a Deployment at zero replicas can scale up). Capacity is never removed and the
   variant never switched on missing, stale or failed data. After a start (or restart) and
   after a metrics outage, scale-down and variant switches wait for one stabilization window
   of fresh data (recent and error-free; low traffic counts as fresh). Missing data holds
   the fleet for a window; low traffic what the rate asked for lately, may park the fastest
   allowed variant for the hour's busiest rate where the fleet would not hold it, and after
   an hour of it the fleet returns to `replicas.min` (`hold.py`).
2. Learn. When the configuration has been unchanged for a whole objective window and the
   load is steady, the ratio observed / predicted quantile updates a correction factor
   (EWMA in log space, clamped) that multiplies every prediction of the model.
3. Size replicas for the sustained rate with the preferred variant: the fewest replicas
   (within bounds) whose predicted quantile, at the best window, is at most
   headroom * target, and at most the target at the rate / headroom (`Sizing.meets`: a
   margin in latency and in rate, whichever asks more). Scale up at once (after
   `scaleUpCooldownSeconds`), unless the fleet in force is within 5 % of the aim on smooth,
   stationary load (`sizing.tolerated`); scale down by one replica only when every
   recommendation of the last `scaleDownStabilizationSeconds` was lower, the variant is the
   preferred one, no replica is still starting, and the measured quantile is within the
   aim. On a smooth fall the window shrinks to a minute; on a calm fall (no burst for a
   window, a trend over six decisions) the current recommendation decides, sized for the
   recent rate with a margin of rate rather than of latency; neither shortcut within a
   stabilization window of a scale-up. A fall (or rise) within the Poisson noise of the
   window's rate is none (`history.trend_floor`). A lull between bursts (a trickle after a
   burst that rose from as little) carries over what the burst asked for, as a quiet spell
   does (`history.lull_carry`).
4. Bridge with the fast knobs on the replicas that are ready now: the window that
   minimizes the predicted quantile, then, if the preferred variant still cannot hold the
   target, the best-quality allowed variant that can (within the quality budget; only a
   predicted breach waits for the variant's minimum dwell). Restore the preferred variant
   after the dwell once the ready replicas can hold headroom * target with it (hysteresis:
   degrade above the target, restore below the aim). A restore that breaches is undone at
   once, and what it measured (observed / predicted) sizes and restores the preferred
   variant while the load stays near the rate it failed at, for a dwell and a stabilization
   window (`history.note_failed_restore`): it is not retried blind; on bursty load too,
   unless the rate rose by a step since the restore (the rise explains the breach) or
   replicas were added since (the quantile then mixes two fleets). Nor is the preferred
   variant restored within a stabilization window of a rate that `replicas.max` replicas
   of it could not hold within the target: the next such burst would find no replicas to
   add (a rate they hold within the target, if not within the aim, is left to the breach
   rule: holding a faster variant ahead of it spent the budget the next overflow needed).
5. Feedback. A clear breach (above twice the target) measured on a configuration unchanged
   for the quantile's whole range and one interval more, every replica ready, is one the
   model failed to predict at the rate it sized for: replicas are then sized with the
   observed / predicted ratio (the correction the fast knobs already use), the measured
   quantile acting at once as it does for an HPA on p99, where learning would take many
   windows. A quantile measured partly before the last change, or while replicas start,
   says nothing about the configuration in force and is not fed back; nor is noise just
   above the target, nor an overload the model predicts that the histogram's top censors.
6. Saving (`qualityBudget.costShare` > 0, economy.py): on a smooth rise, a cheaper variant
   may serve on the replicas in force instead of more replicas, sized for itself, until its
   share of the budget is spent or the load turns bursty.
"""

from __future__ import annotations

import math
from dataclasses import replace

from slo_operator.policy.economy import (
    bridge_reserve,
    budget_seconds,
    can_bridge,
    fits,
    saving_decision,
    saving_in_force,
    smooth,
    start_saving,
)
from slo_operator.policy.explain import actions, ceiling_note, explain, settings_note
from slo_operator.policy.feedback import confirm_breach, feedback_correction, feedback_refuted
from slo_operator.policy.history import (
    ASSUMED_STARTUP_S,
    FALL_POINTS,
    TREND_MIN,
    at_burst_front,
    falling_load,
    learn_correction,
    learn_startup,
    lesson_of_failed_restore,
    lull_carry,
    note_ceiling,
    note_failed_restore,
    note_peak,
    note_recommendation,
    rate_stepped,
    risen,
    sustained_rise,
)
from slo_operator.policy.hold import hold
from slo_operator.policy.params import ControllerParams
from slo_operator.policy.sizing import (
    BRIDGE_SURGE,
    UP_TOLERANCE,
    Sizing,
    bridge_variant,
    deepen_bridge,
    restore_variant,
    sizing_rate,
    tolerated,
    windows,
)
from slo_operator.policy.state import ControllerState
from slo_operator.policy.trust import Trust, assess, served_nothing
from slo_operator.spec import Action, LatencySLOSpec, Mode
from slo_operator.types import Decision, Observation, ProfileSet, RuntimeConfig

FALL_WINDOW_S = 60.0
"""On a smooth, sustained fall the stabilization window shrinks to this (Knative's stable
window): the falling rate itself shows the busier past is over, and noise does not fall
three times in a row on smooth load."""


def _since(now: float, t: float | None) -> float:
    return math.inf if t is None else now - t


def _account(
    params: ControllerParams,
    state: ControllerState,
    current: RuntimeConfig,
    now: float,
    observation: Observation,
    trust: Trust,
) -> ControllerState:
    """Book the time since the last decision into the quality budget, unless fresh data shows
    that no request completed in it (a variant that serves nobody degrades nobody); detect
    gaps."""
    spec = params.spec
    budget_s = spec.variants.quality_budget.window_minutes * 60.0
    pref = spec.variants.effective_preferred
    st = state
    if st.last_decision_at is not None and now > st.last_decision_at:
        served = st.variant_in_force or current.variant
        idle = trust.fresh and served_nothing(params, observation, now - st.last_decision_at)
        if served != pref and not idle:
            st = st.with_degraded_span(st.last_decision_at, now, budget_s)
        else:
            st = st.with_degraded_span(now, now, budget_s)  # prune only
        if now - st.last_decision_at > params.gap_s:
            st = replace(st, fresh_since=None)
    return st


def _finish(
    spec: LatencySLOSpec,
    st: ControllerState,
    current: RuntimeConfig,
    target: RuntimeConfig,
    reason: str,
    predicted: float | None,
    now: float,
) -> tuple[Decision, ControllerState]:
    order = spec.variants.ladder
    acts = actions(current, target, order)
    note = settings_note(current, target)  # what the spec sets the workers do not have yet
    enforce = spec.policy.mode is Mode.ENFORCE
    apply = enforce and bool(acts or note)
    st = replace(st, last_decision_at=now, variant_in_force=current.variant)
    reason = f"{reason}; {note}" if note else reason
    if (acts or note) and not enforce:
        reason = f"{reason} (Recommend mode: not applied)"
    decision = Decision(
        action=acts[0] if acts else Action.HOLD,
        target=target if acts or note else current,
        reason=reason,
        predicted_latency_ms=predicted if predicted is None or math.isfinite(predicted) else None,
        actions=tuple(acts),
        apply=apply,
    )
    return decision, st


def record_applied(
    state: ControllerState,
    current: RuntimeConfig,
    target: RuntimeConfig,
    now: float,
    *,
    replicas: bool,
    config: bool,
) -> ControllerState:
    """`state` after the knobs that were written (`replicas`: the scale; `config`: window,
    batch size, queue wait limit and variant) moved from `current` to `target` at `now`. A
    knob whose write failed is not counted: no cooldown starts, no dwell, no learning pause."""
    st = state
    scaled = replicas and target.replicas != current.replicas
    configured = config and target.config_differs(current)
    if scaled and target.replicas > current.replicas:
        st = replace(st, last_scale_up_at=now, pending_up=(now, target.replicas))
    if scaled and target.replicas < current.replicas:
        st = replace(st, last_scale_down_at=now)
    if configured and target.variant != current.variant:
        st = replace(st, last_variant_change_at=now, variant_in_force=target.variant)
    if scaled or configured:
        st = replace(st, last_change_at=now)
    return st


def decide(
    spec: LatencySLOSpec,
    observation: Observation,
    current: RuntimeConfig,
    profiles: ProfileSet,
    state: ControllerState,
    now: float,
) -> tuple[Decision, ControllerState]:
    """One decision with the spec's default parameters, every change counted as done (the
    form the policy's own tests use; the operator, the simulator and the demo hold a
    `slo_operator.policy.Controller`)."""
    decision, st = propose(ControllerParams.build(spec), observation, current, profiles, state, now)
    if decision.apply:
        st = record_applied(st, current, decision.target, now, replicas=True, config=True)
    return decision, st


def propose(
    params: ControllerParams,
    observation: Observation,
    current: RuntimeConfig,
    profiles: ProfileSet,
    state: ControllerState,
    now: float,
) -> tuple[Decision, ControllerState]:
    """One decision of the controller (see the module docstring), and the state it leaves
    before anything is applied (`record_applied` books what was)."""
    spec = params.spec
    trust = assess(params, observation)
    st = _account(params, state, current, now, observation, trust)
    if spec.policy.mode is Mode.PAUSED:
        st = replace(st, last_decision_at=now, variant_in_force=current.variant)
        reason = "paused: policy.mode is Paused, nothing is changed"
        return Decision(Action.HOLD, current, reason, actions=(), apply=False), st

    pref = spec.variants.effective_preferred
    conformed = params.bounded(current)
    lat_ok, rate_ok, why = trust.latency, trust.rate, trust.why
    if pref not in profiles.variants:
        # without a profile of the preferred variant nothing can be predicted: never guess
        lat_ok, rate_ok = False, False
        why = f"no performance profile for the preferred variant {pref!r}"
    ranges = observation.ranges or params.ranges
    rate = sizing_rate(observation, ranges) if rate_ok else 0.0
    ctx = Sizing(
        spec=spec,
        profiles=profiles,
        rate=rate,
        max_batch=spec.batching.max_batch_size,
        windows=windows(spec, conformed.batch_window_ms),
    )
    # 1. the restart guard counts fresh data (recent, no error; low traffic included)
    if not trust.fresh:
        st = replace(st, fresh_since=None)
    elif st.fresh_since is None:
        st = replace(st, fresh_since=now)
    stab = float(spec.policy.scale_down_stabilization_seconds)
    settled = st.fresh_since is not None and now - st.fresh_since >= stab
    if not lat_ok:
        quiet = trust.quiet and pref in profiles.variants  # no profile, no guess: it holds
        empty = quiet and served_nothing(params, observation, spec.policy.interval_seconds)
        st, target, reason, predicted = hold(
            spec, ctx, st, current, conformed, now, why=why, rate_ok=rate_ok, quiet=quiet,
            settled=settled, no_requests=empty,
        )  # fmt: skip
        return _finish(spec, st, current, target, reason, predicted, now)

    assert observation.latency_ms is not None
    p_obs = observation.latency_ms
    ready = max(0, observation.ready_replicas)
    # 2. learn
    st, raw_now = learn_correction(spec, profiles, observation, current, st, rate, now)
    st, sizing = _anticipate(spec, ctx, st, ready, now)
    front = at_burst_front(observation.recent_request_rate, observation.request_rate)
    st, confirmed, cf_fast = confirm_breach(spec, st, observation, raw_now, front)
    is_smooth = smooth(observation, ranges)
    st = note_failed_restore(spec, st, current, confirmed, cf_fast, rate, now, bursty=not is_smooth)
    if not is_smooth:
        st = replace(st, last_burst_at=now)
    lesson = lesson_of_failed_restore(spec, st, rate, now)
    # 3. replicas for the sustained rate, preferred variant (5. the quantile fed back)
    unbridged = is_smooth and not can_bridge(spec, st, conformed.variant, now)
    cf_replicas = feedback_correction(
        params, observation, current, st, confirmed, cf_fast, raw_now, now, unbridged
    )
    if cf_replicas > st.correction:
        st = replace(st, feedback_at=now)
    cf_replicas = max(cf_replicas, lesson)
    st, account, sized_for = saving_in_force(spec, profiles, st, conformed.variant, is_smooth, now)
    # a saving is sized with its own variant's error where learned
    cf_sized = max(cf_replicas, st.correction_for(sized_for, pref))
    need, feasible = sizing.replicas_needed(sized_for, cf_sized)
    tolerant = need > conformed.replicas > 0 and tolerated(
        sizing, st.rates, conformed.replicas, sized_for, cf_sized, is_smooth, p_obs,
        float(ranges.window_s),
    )  # fmt: skip
    need = conformed.replicas if tolerant else need
    falling, calm_fall = falling_load(
        st, is_smooth, rate, spec.policy.interval_seconds, stab, now, float(ranges.window_s)
    )
    need_down = sizing.down_need(
        sized_for, cf_sized, calm_fall, observation.recent_request_rate, rate
    )
    st = note_recommendation(st, need_down, cf_replicas == st.correction, now, stab)
    over = p_obs > spec.target_latency_ms
    start = start_saving(spec, sizing, st, conformed, account, need, is_smooth, ready, cf_fast,
                         settled, over, now)  # fmt: skip
    if start is not None:
        st, target, reason, predicted = saving_decision(
            spec, ctx, st, current, conformed, start, p_obs, now
        )
        return _finish(spec, st, current, target, reason, predicted, now)
    sized_up = dict(st.rates).get(st.last_scale_up_at or -1.0)  # the rate the last one saw
    outgrew = risen(rate, sized_up)
    refuted = feedback_refuted(params, st, ranges, is_smooth, p_obs, ready, conformed, now)
    new_replicas, notes = _replicas(
        spec, st, current, conformed, need, ready, settled, p_obs > spec.aim_latency_ms, now,
        falling, outgrew, calm_fall, refuted,
    )  # fmt: skip
    if account is not None and st.economy_since is not None and sized_for == pref:
        why = "the cost share is spent" if is_smooth else "the load turned bursty"
        notes.append(f"{why}: replicas ordered for {pref}")
    if tolerant:
        notes.append(f"within {UP_TOLERANCE:.0%} of the aim on stationary load: no replica added")
    if cf_replicas != st.correction:
        notes.append(f"replicas sized on the measured quantile ({cf_replicas:.2f}x the model)")
    # 4. fast knobs on the replicas that serve now
    serving = min(ready, new_replicas)
    # a breach that comes with a step in the rate, replicas ordered for it: bridged at once
    rate_step = rate_stepped(st.rates)
    stepped = p_obs > spec.target_latency_ms and rate_step and new_replicas > ready
    held = sizing.holds(pref, spec.replicas.max, st.correction, spec.target_latency_ms)
    st, ceiling = note_ceiling(st, held, sizing.rate, now, stab)
    fallen = ctx.fallen_to(observation.recent_request_rate, observation.request_rate)
    variant, more = _variant(
        spec, ctx, st, conformed.variant, serving, cf_fast, confirmed or stepped, p_obs,
        settled, now, fallen, lesson, ceiling, is_smooth and not rate_step,
    )  # fmt: skip
    window, _ = ctx.best_window(variant, max(serving, 1), cf_fast, keep=conformed.batch_window_ms)
    target = conformed.with_(replicas=new_replicas, batch_window_ms=window, variant=variant)
    predicted = ctx.p99(variant, new_replicas, window, st.correction)
    reason = explain(
        spec, current, target, p_obs, rate, need, feasible, serving, predicted, st.correction,
        [*notes, *more], served=observation.model_latency_ms,
    )  # fmt: skip
    return _finish(spec, st, current, target, reason, predicted, now)


def _anticipate(
    spec: LatencySLOSpec, ctx: Sizing, st: ControllerState, ready: int, now: float
) -> tuple[ControllerState, Sizing]:
    """On a sustained rise, size for the rate one start-up (learned) and one interval ahead:
    replicas ordered now serve only then. The rate joins the trends' and the hour's peak."""
    st = learn_startup(st, ready, now)
    st = replace(st, rates=(*st.rates, (now, ctx.rate))[-FALL_POINTS:])
    st = note_peak(st, ctx.rate, now)
    startup = st.startup_s if st.startup_s is not None else ASSUMED_STARTUP_S
    rise = sustained_rise(st.rates) * (startup + spec.policy.interval_seconds)
    return st, (ctx.at_rate(ctx.rate + rise) if rise > TREND_MIN * ctx.rate else ctx)


def _replicas(
    spec: LatencySLOSpec,
    st: ControllerState,
    current: RuntimeConfig,
    conformed: RuntimeConfig,
    need: int,
    ready: int,
    settled: bool,
    above_aim: bool,
    now: float,
    falling: bool = False,
    outgrew: bool = False,
    calm_fall: bool = False,
    refuted: bool = False,
) -> tuple[int, list[str]]:
    """Scale up after the cooldown (at once if the rate `outgrew` the last scale-up's); down
    one replica after the stabilization, never while the measured quantile is `above_aim`
    (the aim the replicas are sized for: one fewer can only serve slower, whatever the
    model says; a model wrong beyond learning's clamp would otherwise remove the replica
    the quantile feedback added, breach, and add it again). On a fall the window shrinks to
    FALL_WINDOW_S; on a calm fall the current recommendation alone decides: the trend over
    FALL_POINTS decisions stands for the window, and the recommendation's rate margin is
    many times the noise of the recent rate. Neither within a stabilization window of a
    scale-up: a fall that soon undoes the rise that added a replica is that rise's noise
    (at a tight target, the sized rate's wander added a replica and the "fall" released it
    a minute later), and the full window decides."""
    desired = conformed.replicas
    if need > desired:
        if _since(now, st.last_scale_up_at) >= spec.policy.scale_up_cooldown_seconds:
            return need, []
        if outgrew:  # new evidence, not the same breach seen again
            return need, ["the rate outgrew the last scale-up within its cooldown"]
        return desired, ["scale-up waits for its cooldown"]
    if need == desired:
        return desired, []
    if above_aim:
        return desired, ["no scale-down while the measured quantile is over the aim"]
    if not settled:
        return desired, ["scale-down waits for a stabilization window of fresh data"]
    stab = float(spec.policy.scale_down_stabilization_seconds)
    if _since(now, st.last_scale_up_at) < stab:  # a fall that undoes the rise: its noise
        falling = calm_fall = False
    horizon = now - min(FALL_WINDOW_S, stab) if falling else -math.inf
    since = st.economy_since
    saving = since is not None and current.variant != spec.variants.effective_preferred
    if since is not None and saving:  # only the recommendations for the variant in force
        horizon = max(horizon, since)
    if refuted and st.feedback_at is not None:  # the replicas it ordered are not held
        horizon = max(horizon, st.feedback_at)
    carried = (st.carried,) if st.carried is not None else ()  # first: a calm fall reads the last
    recs = [n for t, n in (*carried, *st.recommendations) if t > max(horizon, now - stab)]
    lull = lull_carry(st, need, max(spec.replicas.min, 1), now, stab)
    if lull is not None:  # last: a calm fall reads it too
        recs.append(min(desired, lull))
    if calm_fall:
        recs = recs[-1:]
    if lull is not None and lull >= desired:
        return desired, [f"a lull between bursts: the {lull} replicas a burst asked for are kept"]
    if max(recs, default=0) >= desired:
        return desired, ["scale-down waits for the stabilization window"]
    if current.variant != spec.variants.effective_preferred and not saving:
        return desired, ["scale-down waits for the preferred variant"]
    if ready < desired:
        return desired, ["scale-down waits for starting replicas"]
    if refuted and recs:  # at most half the replicas in force at a time
        down = max(max(recs), spec.replicas.min, desired - desired // 2)
        return down, ["the replicas ordered on the measured quantile are not needed on this load"]
    if calm_fall:
        return desired - 1, ["on a calm fall the current recommendation decides"]
    if falling:
        return desired - 1, ["the load falls: every recommendation of the last minute was lower"]
    return desired - 1, ["every recommendation of the stabilization window was lower"]


def _variant(
    spec: LatencySLOSpec,
    ctx: Sizing,
    st: ControllerState,
    variant: str,
    serving: int,
    cf_fast: float,
    confirmed: bool,
    p_obs: float,
    settled: bool,
    now: float,
    fallen: float | None = None,
    lesson: float = 0.0,
    ceiling: float | None = None,
    steady_load: bool = False,
) -> tuple[str, list[str]]:
    """Degrade to bridge a breach the ready replicas cannot hold; restore when they can.
    With the load `fallen` to a recent rate the preferred variant holds on the ready
    replicas (learned correction), the breach the window still shows is the past's: no
    degrade. Within a stabilization window of a burst (`ceiling`, req/s) that `replicas.max`
    of the preferred variant did not hold, the best variant that holds it serves instead;
    on `steady_load` (smooth, no step since the previous decision) only where the preferred
    one would miss the target at that rate: the rate it "did not hold" is then the load's
    own noise at its edge, no burst to prepare for."""
    pol, pref = spec.policy, spec.variants.effective_preferred
    order = spec.variants.ladder
    target_ms, aim = spec.target_latency_ms, spec.aim_latency_ms
    budget = spec.variants.quality_budget
    budget_s = budget_seconds(spec)
    dwell_ok = _since(now, st.last_variant_change_at) >= pol.variant_min_dwell_seconds
    reserve = bridge_reserve(spec)
    kept = fits(spec, st, now, reserve)
    if variant == pref:
        if budget.max_degraded_fraction <= 0:
            return variant, []
        p_pref = ctx.best_window(pref, serving, cf_fast)[1] if serving > 0 else math.inf
        if not (p_pref > target_ms or confirmed):
            if ceiling is None or not (math.isfinite(ceiling) and settled and dwell_ok and kept):
                return variant, []
            burst = ctx.at_rate(ceiling)
            if steady_load and burst.holds(pref, serving, st.correction, target_ms):
                return variant, []  # the load's own noise: degrade above the target only
            ahead = bridge_variant(burst, order, serving, st.correction, aim)
            why = f"{ahead} ahead of the next burst: {ceiling_note(spec, ceiling)}"
            return ahead, [] if ahead == pref else [why]
        # a breach already visible: a surge margin (a backlog drains, the rate trails a step)
        surge = ctx.at_rate(ctx.rate * BRIDGE_SURGE) if confirmed else ctx
        candidate = bridge_variant(surge, order, serving, cf_fast, aim)
        if candidate == pref:
            return variant, []
        if fallen is not None and ctx.at_rate(fallen).holds(pref, serving, st.correction, aim):
            return variant, [f"the load has fallen to {fallen:.0f} req/s, which {pref} holds"]
        if not settled:
            return variant, ["degrading waits for fresh data"]
        if not (dwell_ok or confirmed):  # a measured breach is bridged at once
            return variant, ["degrading on a prediction waits for the variant's minimum dwell"]
        if not kept:
            if budget_s < reserve:  # not spent: too short for one interval
                short = f"the quality budget ({budget_s:g} s) is shorter than one interval"
                return variant, [f"{short}: not degrading"]
            return variant, ["quality budget spent: not degrading"]
        return candidate, []
    if settled and not fits(spec, st, now, pol.interval_seconds):
        return pref, ["quality budget spent"]  # the budget is a limit, not a target
    if confirmed and settled and kept:  # an overload the variant in force cannot hold
        deeper = deepen_bridge(ctx, order, variant, serving, cf_fast, p_obs, aim, target_ms, fallen)
        if deeper != variant:
            return deeper, [f"{variant} does not hold the breach: {deeper} bridges"]
    if settled and dwell_ok and p_obs <= target_ms:
        cf = max(st.correction, lesson)  # a restore that failed here is not retried blind
        restored = restore_variant(ctx, order, variant, serving, cf, aim)
        if lesson > st.correction and restored != pref:
            return restored, [f"{pref} breached when restored at this load ({lesson:.2f}x)"]
        if ceiling is not None and restored == pref:
            # the best variant that holds the burst, if better than the one in force
            held = restore_variant(ctx.at_rate(ceiling), order, variant, serving, cf, aim)
            return held, [f"{pref} waits: {ceiling_note(spec, ceiling)}"]
        return restored, []
    return variant, []
