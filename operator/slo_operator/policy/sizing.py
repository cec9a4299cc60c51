"""Sizing: what the profiles predict for a configuration, the window and replicas that meet the
aim, the bridge and restore variants, and the rate to size for (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.model.queueing import max_throughput_rps, predict
from slo_operator.policy.history import (
    STEADY_RATE_TOLERANCE,
    rate_stepped,
    significant_rise,
    trend_floor,
)
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, ProfileSet, Ranges

WINDOW_GRID_MS: tuple[int, ...] = (0, 1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200)
"""Batch windows the controller considers (clipped to the spec's bounds, plus the bounds)."""
RECENT_Z, PEAK_Z = 2.0, 3.0
"""A recent (peak) rate counts when it exceeds the window's rate by more than 2 (3) standard
deviations of a Poisson count over its range; the peak is the max of about ten such rates."""
DOWN_MARGIN = 0.9
"""Scale-down recommendations are sized for 90 % of the aim, on a calm fall for the rate / 0.9
at the aim (a hysteresis band: a replica is removed only when one fewer would still have 10 %
of margin, so noise cannot flip it back; `Sizing.down_need`)."""
BRIDGE_SURGE = 1.25
"""Rate margin for choosing a bridge variant during an observed breach."""
UP_TOLERANCE = 0.05
"""No replica is added for the aim alone while the fleet in force is predicted within 5 % of
it, on smooth load that neither rises nor stepped, the measured quantile within the target
(`tolerated`): where the quantile barely moves with the replicas, a drift of the learned
correction by a few percent changes the replicas the aim asks for, and the replica added
for it was released minutes later (the HPA's 10 % tolerance plays the same role)."""
WINDOW_TIE = 0.02
"""Windows predicted within 2 % of the best count as equally good (the smallest one wins,
the current one is kept)."""


@dataclass(frozen=True, slots=True)
class Sizing:
    """What the profiles predict at one request rate, within the spec's bounds."""

    spec: LatencySLOSpec
    profiles: ProfileSet
    rate: float
    max_batch: int
    windows: tuple[int, ...]

    def at_rate(self, rate: float) -> Sizing:
        return replace(self, rate=rate)

    def p99(self, variant: str, replicas: int, window: int, correction: float) -> float:
        prof = self.profiles.variants.get(variant)
        if prof is None:
            return math.inf
        raw = predict(
            prof, self.rate, replicas, window, self.max_batch, self.spec.quantile
        ).latency_ms
        return raw * correction

    def best_window(
        self, variant: str, replicas: int, correction: float, keep: int | None = None
    ) -> tuple[int, float]:
        """The smallest window whose predicted quantile is within 2 % of the lowest (waiting
        only adds latency unless it clearly pays), keeping `keep` when it is as good."""
        preds = [(w, self.p99(variant, replicas, w, correction)) for w in self.windows]
        best_p = min(p for _, p in preds)
        limit = best_p * (1.0 + WINDOW_TIE)
        chosen = next((w, p) for w, p in preds if p <= limit)
        if keep is not None and keep != chosen[0]:
            p_keep = dict(preds).get(keep, math.inf)
            if p_keep <= limit and p_keep <= self.spec.aim_latency_ms:
                return keep, p_keep
        return chosen

    def throughput(self, variant: str) -> float:
        """Requests per second one replica of `variant` serves in full batches (0 unknown)."""
        prof = self.profiles.variants.get(variant)
        return 0.0 if prof is None else max_throughput_rps(prof, self.max_batch)

    def holds(self, variant: str, replicas: int, correction: float, aim: float) -> bool:
        """Whether `replicas` of `variant` meet `aim` at the best window."""
        return replicas > 0 and self.best_window(variant, replicas, correction)[1] <= aim

    def down_need(
        self, variant: str, correction: float, calm_fall: bool, recent: float | None, rate: float
    ) -> int:
        """The replicas a scale-down recommendation asks for: a margin under the aim, so that
        noise at a boundary cannot order a removed replica back (hysteresis). Unless the load
        falls calmly the margin is in latency (the prediction / DOWN_MARGIN): it also covers
        the model's error when one replica fewer takes each replica's load beyond where the
        correction was learned (the correction grows with the load). On a calm fall the load
        is past its busier rates: the recommendation is sized for the `recent` rate (the
        window's `rate` trails a fall by half the window), with the margin in rate (one
        replica fewer must hold the aim at the rate / DOWN_MARGIN): where the quantile barely
        moves with the replicas, as when the service time dominates it, a latency margin
        holds two to four replicas more than a rate margin."""
        if not calm_fall:
            return self.replicas_needed(variant, correction / DOWN_MARGIN)[0]
        fall_to = recent if recent is not None and recent < rate else self.rate
        return self.at_rate(fall_to / DOWN_MARGIN).replicas_needed(variant, correction)[0]

    def fallen_to(self, recent: float | None, window_rate: float | None) -> float | None:
        """The `recent` rate when the load has clearly fallen below the rate sized for (the
        quantile's window then still holds the busier past), else None. Not while the recent
        rate is above the `window_rate`: a peak higher still is then the burst's front, not
        its past (a rise reaches the peak's short range before the recent one)."""
        if recent is None or not math.isfinite(recent) or self.rate <= 0:
            return None
        if window_rate is not None and recent > window_rate:
            return None
        return recent if recent < (1.0 - STEADY_RATE_TOLERANCE) * self.rate else None

    def meets(self, variant: str, replicas: int, correction: float, slack: float = 0.0) -> bool:
        """Whether `replicas` of `variant` are enough: the aim (headroom * target, raised by
        the fraction `slack`) at the rate, and the target at the rate / headroom. The
        headroom is a margin in latency and in rate, whichever asks more: where a few
        replicas run near their capacity the latency curve is steep, and 15 % of latency is
        only a few percent of rate, less than a rise brings before a new replica is ready
        (one `quantized` replica at 97 % of its capacity met the aim by the model and
        breached by the plant, docs/policy.md section 7, "The headroom in rate"); where many
        replicas share the load the curve is flat and the aim asks more."""
        aim = self.spec.aim_latency_ms * (1.0 + slack)
        if self.best_window(variant, replicas, correction)[1] > aim:
            return False
        surge = self.at_rate(self.rate / self.spec.policy.headroom)
        return surge.best_window(variant, replicas, correction)[1] <= self.spec.target_latency_ms

    def replicas_needed(self, variant: str, correction: float) -> tuple[int, bool]:
        """Fewest replicas in bounds that are enough (`meets`; binary search); (max, False)
        if none."""
        lo, hi = self.spec.replicas.min, self.spec.replicas.max
        if not self.meets(variant, hi, correction):
            return hi, False
        lo = max(lo, 1) if self.rate > 0 else lo
        while lo < hi:
            mid = (lo + hi) // 2
            if self.meets(variant, mid, correction):
                hi = mid
            else:
                lo = mid + 1
        return lo, True


def tolerated(
    sizing: Sizing,
    rates: tuple[tuple[float, float], ...],
    replicas: int,
    variant: str,
    correction: float,
    is_smooth: bool,
    p_obs: float,
    window_s: float,
) -> bool:
    """Whether `replicas` (in force) may stay although the aim asks for more: at the rate
    sized for they hold `variant` within UP_TOLERANCE of the aim and the target at the rate
    / headroom, on smooth load, with no rise over the last decisions (`rates`) beyond its
    scatter and the rate's noise (`trend_floor`), no step since the previous decision, and
    the measured quantile `p_obs` within the target."""
    if not is_smooth or p_obs > sizing.spec.target_latency_ms or rate_stepped(rates):
        return False
    rise = significant_rise(rates)  # infinite while too few decisions rule a rise out
    span = rates[-1][0] - rates[0][0] if rates else 0.0
    if math.isinf(rise) or rise * span > trend_floor(sizing.rate, window_s):
        return False
    return sizing.meets(variant, replicas, correction, slack=UP_TOLERANCE)


def windows(spec: LatencySLOSpec, current: int) -> tuple[int, ...]:
    lo, hi = spec.batching.min_window_ms, spec.batching.max_window_ms
    grid = {w for w in WINDOW_GRID_MS if lo <= w <= hi} | {lo, hi}
    if lo <= current <= hi:
        grid.add(current)
    return tuple(sorted(grid))


def sizing_rate(obs: Observation, ranges: Ranges) -> float:
    """The window's rate, or the recent or peak rate when clearly higher: size for the busiest
    part of the window, and for a step the window still hides. "Clearly": beyond what Poisson
    noise gives a rate measured over that range (the model already accounts for Poisson
    fluctuations; counting them again would buy replicas for noise)."""
    base = obs.request_rate or 0.0
    rate = base
    for extra, span_s, z in (
        (obs.recent_request_rate, float(ranges.recent_s), RECENT_Z),
        (obs.peak_request_rate, float(ranges.peak_s), PEAK_Z),
    ):
        if extra is None or not math.isfinite(extra):
            continue
        noise = z * math.sqrt(base / span_s) if base > 0 else 0.0
        if extra > base + noise and extra > rate:
            rate = extra
    return rate


def bridge_variant(
    ctx: Sizing, order: list[str], replicas: int, correction: float, aim: float
) -> str:
    """The best-quality variant of `order` that meets the aim on `replicas`, else the one
    predicted fastest (where every one is overloaded: the one with the most throughput, which
    drains a backlog soonest)."""
    if replicas <= 0:
        return order[0]
    best: tuple[float, float] = (math.inf, math.inf)
    fastest = order[0]
    for v in order:
        p = ctx.best_window(v, replicas, correction)[1]
        if p <= aim:
            return v
        key = (p, -ctx.throughput(v))
        if key < best:
            fastest, best = v, key
    return fastest


def deepen_bridge(
    ctx: Sizing,
    order: list[str],
    current: str,
    replicas: int,
    correction: float,
    p_obs: float,
    aim: float,
    target: float,
    fallen: float | None = None,
) -> str:
    """The bridge for an overload the variant in force cannot hold: where the measured
    quantile is at the histogram's top edge (requests refused, or served later than it) and
    the model says `current` does not hold the rate on `replicas`, the next bridge is chosen
    as the first was (`bridge_variant`, at the surge rate), from `current` down the ladder;
    else `current`. Below the top edge the breach may be a backlog the bridge drains: a
    deeper one there cost accuracy on `step` and the trace for no SLO. Nor where the load has
    `fallen` to a rate `current` holds (the window's breach is the past's, as for the first
    bridge)."""
    if (
        replicas <= 0
        or current not in order
        or p_obs < LATENCY_BUCKETS_MS[-1]
        or ctx.holds(current, replicas, correction, target)
        or (fallen is not None and ctx.at_rate(fallen).holds(current, replicas, correction, aim))
    ):
        return current
    surge = ctx.at_rate(ctx.rate * BRIDGE_SURGE)
    return bridge_variant(surge, order[order.index(current) :], replicas, correction, aim)


def restore_variant(
    ctx: Sizing, order: list[str], current: str, replicas: int, correction: float, aim: float
) -> str:
    """The best-quality variant better than `current` that meets the aim, else `current`."""
    if replicas <= 0 or current not in order:
        return current
    return next(
        (v for v in order[: order.index(current)] if ctx.holds(v, replicas, correction, aim)),
        current,
    )
