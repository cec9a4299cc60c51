"""An oracle that knows the arrivals and may switch variant within the quality budget.

Plan (per 15-second window): the window's peak 5-second rate over the assumed capacity of
one replica of a variant gives the replicas that variant needs; replicas are ordered
`startup_s` ahead (the same start-up as everyone) and released at once. Windows are served
by a cheaper variant where that saves the most replicas, as long as the time off the
preferred variant fits the quality budget (`maxDegradedFraction` x `windowMinutes`, the
same budget latencyslo spends); the switch is ordered `switch_s` ahead.

The assumed capacity is the measured one times a factor, swept: every plan is simulated on
the plant, the windows that still missed get one more replica (up to `REFINE_PASSES`
times), and the factor goes up while the plan still meets the SLO (no violating objective
window) and down while it does not. The result is the lowest cost found that meets the SLO
in simulation, not a proven minimum. The factor moves from 1.0 in steps of 0.1, 0.2, 0.4...
until meeting the SLO flips, then bisects between the last factor that met it and the first
that did not.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from slo_operator.sim.engine import Trace
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import RuntimeConfig

WINDOW_S = 15
PEAK_S = 5
REFINE_PASSES = 3
FACTOR_STEP = 0.1
"""First step of the capacity sweep from 1.0; it doubles until the SLO flips."""
MAX_EXPANSIONS = 6
BISECTIONS = 2


def window_peaks(per_s: np.ndarray, window_s: int = WINDOW_S, peak_s: int = PEAK_S) -> np.ndarray:
    """The peak `peak_s`-second rate within each `window_s` window."""
    d = len(per_s)
    n_win = math.ceil(d / window_s)
    padded = np.zeros(n_win * window_s)
    padded[:d] = per_s
    cum = np.concatenate(([0.0], np.cumsum(padded)))
    sums = (cum[peak_s:] - cum[:-peak_s]) / peak_s
    return np.array(
        [sums[k * window_s : (k + 1) * window_s - peak_s + 1].max() for k in range(n_win)]
    )


@dataclass(frozen=True)
class OraclePlan:
    replicas: np.ndarray
    """Replicas to have (ready or starting) each second."""
    variant: list[str]
    """The variant to have ordered each second."""
    factor: float
    degraded_s: int


def plan(
    spec: LatencySLOSpec,
    per_s: np.ndarray,
    capacity: Mapping[str, float],
    startup_s: int,
    switch_s: int,
    factor: float = 1.0,
    extra: np.ndarray | None = None,
    scored_from: int = 0,
    budget_s: float | None = None,
) -> OraclePlan:
    """Replicas and variant per second for assumed capacities `capacity[v] * factor`.

    `extra` adds replicas per window; windows before `scored_from` keep the preferred
    variant; `budget_s` defaults to the spec's quality budget in seconds."""
    pref = spec.variants.effective_preferred
    allowed = [v for v in spec.variants.allowed if v in capacity]
    if pref not in capacity:
        raise ValueError(f"no capacity for the preferred variant {pref!r}")
    qb = spec.variants.quality_budget
    if budget_s is None:
        budget_s = qb.max_degraded_fraction * qb.window_minutes * 60.0
    peaks = window_peaks(per_s)
    n_win = len(peaks)
    lo, hi = max(spec.replicas.min, 1), spec.replicas.max

    def need(v: str) -> np.ndarray:
        n = np.ceil(peaks / max(capacity[v] * factor, 1e-9)).astype(int)
        if extra is not None:
            n = n + extra[:n_win]
        return np.clip(n, lo, hi)

    needs = {v: need(v) for v in allowed}
    choice = [pref] * n_win
    count = np.array(needs[pref])
    # windows by the replicas a cheaper variant saves, largest first (ties: earlier first)
    gains: list[tuple[int, int, str]] = []
    for k in range(math.ceil(scored_from / WINDOW_S), n_win):
        best, saved = pref, 0
        for v in allowed:  # best quality first: a tie keeps the better variant
            s = int(needs[pref][k] - needs[v][k])
            if s > saved:
                best, saved = v, s
        if saved > 0:
            gains.append((-saved, k, best))
    gains.sort()
    max_windows = int(budget_s // WINDOW_S)
    for _, k, v in gains[:max_windows]:
        choice[k] = v
        count[k] = needs[v][k]
    d = len(per_s)
    need_s = np.repeat(count, WINDOW_S)[:d]
    replicas = np.empty(d, dtype=int)
    q: deque[int] = deque()
    for t in range(d - 1, -1, -1):  # max need over [t, t + startup_s]
        while q and need_s[q[-1]] <= need_s[t]:
            q.pop()
        q.append(t)
        while q[0] > t + startup_s:
            q.popleft()
        replicas[t] = need_s[q[0]]
    # the variant a window serves is ordered switch_s before it starts
    variant = [choice[min((t + switch_s) // WINDOW_S, n_win - 1)] for t in range(d)]
    degraded = sum(WINDOW_S for c in choice if c != pref)
    return OraclePlan(replicas, variant, factor, degraded)


class VariantOracle:
    """Plays an `OraclePlan`."""

    name = "oracle"

    def __init__(self, oracle_plan: OraclePlan) -> None:
        self.plan = oracle_plan

    def act(self, t: int, view: object) -> RuntimeConfig | None:
        cfg: RuntimeConfig = view.config  # type: ignore[attr-defined]
        i = min(t, len(self.plan.replicas) - 1)
        want = cfg.with_(replicas=int(self.plan.replicas[i]), variant=self.plan.variant[i])
        return None if want == cfg else want


def missed_windows(trace: Trace, quantile: float) -> np.ndarray:
    """Per oracle window: did fewer than `quantile` of its requests meet the target?"""
    d = len(trace.ok) // WINDOW_S * WINDOW_S
    ok = trace.ok[:d].reshape(-1, WINDOW_S).sum(1)
    den = (trace.completed[:d] + trace.rejected[:d]).reshape(-1, WINDOW_S).sum(1)
    return (den > 0) & (ok < quantile * den)


@dataclass
class OracleResult:
    plan: OraclePlan
    trace: Trace
    cost: float
    violating: int
    met: bool
    tried: list[tuple[float, float, int]]
    """(factor, replica-seconds, violating windows) of every plan simulated."""


def cheapest(
    spec: LatencySLOSpec,
    per_s: np.ndarray,
    capacity: Mapping[str, float],
    startup_s: int,
    switch_s: int,
    simulate: Callable[[OraclePlan], Trace],
    score: Callable[[Trace], tuple[float, int]],
    scored_from: int = 0,
    factors: Sequence[float] | None = None,
) -> OracleResult:
    """Sweep the assumed capacity; the cheapest plan whose simulation meets the SLO.

    `simulate` runs a plan on the plant and returns its trace; `score` gives
    (replica-seconds, violating windows) of a trace (both over the scored part)."""
    tried: list[tuple[float, float, int]] = []
    seen: dict[bytes, tuple[Trace, float, int]] = {}
    best: OracleResult | None = None
    fallback: OracleResult | None = None

    def attempt(factor: float) -> OracleResult:
        nonlocal best, fallback
        n_win = math.ceil(len(per_s) / WINDOW_S) + 1
        extra = np.zeros(n_win, dtype=int)
        for passes in range(REFINE_PASSES + 1):
            p = plan(spec, per_s, capacity, startup_s, switch_s, factor, extra, scored_from)
            key = p.replicas.tobytes() + "|".join(p.variant).encode()
            if key in seen:  # the same plan as a factor tried before
                trace, cost, bad = seen[key]
            else:
                trace = simulate(p)
                cost, bad = score(trace)
                seen[key] = (trace, cost, bad)
                tried.append((factor, cost, bad))
            res = OracleResult(p, trace, cost, bad, bad == 0, tried)
            if bad == 0 or passes == REFINE_PASSES:
                break
            missed = missed_windows(trace, spec.quantile)
            if not missed.any():
                break
            extra[: len(missed)] += missed
        if res.met and (best is None or res.cost < best.cost):
            best = res
        if fallback is None or (res.violating, res.cost) < (fallback.violating, fallback.cost):
            fallback = res
        return res

    if factors is not None:
        for f in factors:
            attempt(f)
    else:
        f = 1.0
        met_f: float | None = f if attempt(f).met else None
        miss_f: float | None = None if met_f is not None else f
        step = FACTOR_STEP
        for _ in range(MAX_EXPANSIONS):  # bracket: step out until the verdict flips
            if met_f is not None:
                f = round(met_f + step, 6)
                if attempt(f).met:
                    met_f = f
                else:
                    miss_f = f
                    break
            else:
                assert miss_f is not None
                f = round(miss_f - step, 6)
                if f <= 0:
                    break
                if attempt(f).met:
                    met_f = f
                    break
                miss_f = f
            step *= 2
        if met_f is not None and miss_f is not None:
            for _ in range(BISECTIONS):
                f = round((met_f + miss_f) / 2, 6)
                if attempt(f).met:
                    met_f = f
                else:
                    miss_f = f
    out = best or fallback
    assert out is not None
    out.tried = tried
    return out
