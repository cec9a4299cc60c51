"""The measured quantile against the model (pure): when a breach is confirmed, the correction
the fast knobs then use, and when a clear breach sizes replicas (docs/policy.md, step 5)."""

from __future__ import annotations

import math
from dataclasses import replace

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.policy.params import ControllerParams
from slo_operator.policy.state import ControllerState
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, Ranges, RuntimeConfig

FAST_CORRECTION_MAX = 4.0
CLEAR_BREACH = 2.0
"""An observed quantile above twice the target is a breach at once; above the target only,
the model not explaining it, it must be seen twice in a row (noise is not a breach), unless
it is measured at a burst's front (`confirm_breach`)."""


def confirm_breach(
    spec: LatencySLOSpec,
    st: ControllerState,
    obs: Observation,
    raw_now: float,
    front: bool = False,
) -> tuple[ControllerState, bool, float]:
    """(state, confirmed breach, correction for the fast knobs). A breach the model does not
    explain counts when seen twice in a row, above CLEAR_BREACH x target, or at a burst's
    `front` (the recent rate well above the quantile window's, `history.at_burst_front`: the
    window still averages the calm seconds before the burst, so what it shows is the least
    of it, and noise does not come with such a rise); then the fast knobs trust the
    observation rather than the model: the quantile of the requests served
    (`Observation.model_latency_ms`), not that of every request, which refusals put at the
    histogram's top edge (an overload the rate sizes, not a model error). `obs` has a
    latency (`Observation.has_latency`)."""
    assert obs.latency_ms is not None
    p_obs, p_model = obs.latency_ms, obs.model_latency_ms
    target = spec.target_latency_ms
    previous = st.last_p99
    st = replace(st, last_p99=p_obs)
    confirmed = p_obs > target and (
        p_obs >= CLEAR_BREACH * target or (previous is not None and previous > target) or front
    )
    cf_fast = st.correction
    if confirmed and p_model is not None and math.isfinite(raw_now) and raw_now > 0:
        cf_fast = min(max(cf_fast, p_model / raw_now), FAST_CORRECTION_MAX)
    return st, confirmed, cf_fast


def feedback_correction(
    params: ControllerParams,
    obs: Observation,
    current: RuntimeConfig,
    st: ControllerState,
    confirmed: bool,
    cf_fast: float,
    raw_now: float,
    now: float,
    unbridged: bool = False,
) -> float:
    """The correction replicas are sized with: the learned one, or the observed / predicted
    ratio of a clear breach (at least CLEAR_BREACH x target) when the quantile measured it on
    the configuration in force (unchanged for the quantile's whole range and one interval
    more, for the switch, the drain of a backlog and the scrape to lag the change; every
    ordered replica ready). A quantile just above the target may be noise: it is not fed
    back (the fast knobs and learning handle it), unless the breach is `unbridged` (smooth
    load, and no faster variant can bridge it: the preferred one is the fastest allowed, or
    the quality budget is spent or zero): then nothing else answers a breach the model does
    not explain (learning stops at CORRECTION_MAX), and a confirmed one is fed back whatever
    its size, as an HPA on the quantile would. The quantile read is the requests served
    (`Observation.model_latency_ms`): refusals are an overload, not the model's error. Nor is
    one at the histogram's top that the model (learned correction) predicts for the
    configuration in force (`raw_now`): an overload's backlog, not a model error; the rate
    sizes it."""
    target = params.spec.target_latency_ms
    if not confirmed or cf_fast <= st.correction:
        return st.correction
    floor = target if unbridged else CLEAR_BREACH * target
    p_model = obs.model_latency_ms  # refusals are the rate's to size, not the model's error
    if p_model is None or p_model < floor:
        return st.correction  # noise around the target is not fed back
    if p_model >= LATENCY_BUCKETS_MS[-1] and raw_now * st.correction > target:
        return st.correction  # censored at the top, and predicted: an overload
    ranges = obs.ranges or params.ranges
    since_change = now - (st.last_change_at if st.last_change_at is not None else st.started_at)
    settle = ranges.window_s + params.spec.policy.interval_seconds
    if since_change < settle or obs.ready_replicas < current.replicas:
        return st.correction
    return cf_fast


def feedback_refuted(
    params: ControllerParams,
    st: ControllerState,
    ranges: Ranges,
    is_smooth: bool,
    p_obs: float,
    ready: int,
    current: RuntimeConfig,
    now: float,
) -> bool:
    """Whether the replicas last sized on the measured quantile (`st.feedback_at`) are shown
    not to be needed: the load smooth and the configuration in force, every replica ready,
    measured within the aim for the quantile's whole range and one interval more since
    then. The clamped ratio of an overload sizes for the burst a step or a trace may still
    hide (a burst's first look sees a fraction of its rate); once the load has settled
    smooth and the fleet holds the aim, the replicas it ordered are released as the rate
    asks, not held for a stabilization window (a x4 step at `replicas.max` 64 held 64
    replicas for five minutes where seven held the target)."""
    if st.feedback_at is None or not is_smooth or ready < current.replicas:
        return False
    if now - st.feedback_at >= params.spec.policy.scale_down_stabilization_seconds:
        return False  # its recommendations have left the window: nothing of it is held
    settle = ranges.window_s + params.spec.policy.interval_seconds
    calm_since = st.last_burst_at if st.last_burst_at is not None else st.feedback_at
    return (
        p_obs <= params.spec.aim_latency_ms
        and now - st.feedback_at >= settle
        and now - calm_since >= settle
    )
