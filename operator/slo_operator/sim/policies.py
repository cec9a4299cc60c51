"""The controllers compared in the simulator: latencyslo and the baselines.

Every baseline runs its documented default algorithm; only the figures a user must choose
(the metric target) are set, and they are set from a simulated load test of ONE replica of
the same model (`Calibration`): its capacity, the request rate it sustains with its p99 at
the target, as a careful user would measure before configuring an autoscaler, with each
tool's usual utilization margin on top.

- `hpa`:    Kubernetes HPA on CPU utilization, target 80 % (`kubectl autoscale`'s default):
            desired = ceil(current * metric / target), tolerance 0.1, sync every 15 s,
            not-ready pods counted at 0 % on scale-up; the rule of an HPA without
            `behavior` (what `kubectl autoscale` and KEDA create): desired = the largest
            recommendation of the last 300 s, at most max(2 x current, 4). The "CPU" is the
            share of time the replica's model is busy.
- `keda`:   KEDA Prometheus scaler on `sum(rate(requests[1m]))`, AverageValue threshold =
            80 % of the measured capacity (the HPA's utilization convention). The HPA asks
            KEDA's metrics server at every sync (15 s) and KEDA queries Prometheus live
            (`useCachedMetrics: false`; `pollingInterval` only drives activation), on top of
            the same HPA rules.
- `kpa`:    Knative's KPA on its default metric, concurrency (requests in flight averaged
            over time, as the queue-proxy reports it): target = the concurrency of one
            replica at capacity (Little's law), with the KPA's default 70 % target
            utilization, 60 s stable and 6 s panic windows, panic at 200 %; in panic it
            takes max(stable, panic, the most it asked in this panic) (never scales down),
            tick 2 s, max scale-up rate 1000, max scale-down rate 2.
- `kpa-rps`: the same KPA on its other documented metric, requests per second, target =
            the measured capacity (70 % utilization on top).
- `aimd`:   Clipper's AIMD on the max batch size (+2 while the slowest batch of the last
            second is under the target, x0.9 otherwise), window 0, fixed replicas.
- `static`: replicas for the peak 10-second rate of the run at capacity, fixed.
- `oracle`: knows the future arrivals: for every 15-second window the fewest replicas
            whose capacity covers the window's peak 5-second rate, ordered `startup_s`
            ahead (paying the same start-up delay) and released at once; preferred variant.
            The plan is then simulated and every window that still misses the target gets
            one more replica, up to ORACLE_PASSES times (`runner`), so that the oracle is
            the cheapest plan found that meets the SLO, not just a rule of thumb.

Baselines run the worker's default runtime configuration (preferred variant, window 0, max
batch `batching.maxBatchSize`); only latencyslo moves the variant. (With the worker's batcher
the smallest window also gives the lowest p99: a batch leaves as soon as the model is free
and its oldest request has waited the window, so waiting only adds latency.)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slo_operator.model.queueing import max_throughput_rps
from slo_operator.policy import (
    Controller,
    ControllerParams,
    ControllerState,
    OperatorLimits,
    initial_state,
)
from slo_operator.sim.engine import SimSettings, Simulation, SimView
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ApplyResult, ProfileSet, RuntimeConfig, VariantProfile

POLICIES = ("latencyslo", "hpa", "keda", "kpa", "kpa-rps", "aimd", "static", "oracle")
ORACLE_PASSES = 3
BASELINE_WINDOW_MS = 0
"""The worker's default batch window; baselines never change the runtime configuration."""


# --------------------------------------------------------------------------- calibration
class _Hold:
    name = "hold"

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        return None


def load_test(
    profile: VariantProfile,
    rate_rps: float,
    window_ms: int,
    max_batch: int,
    target_ms: float,
    settings: SimSettings,
    seconds: int = 90,
    seed: int = 12345,
) -> tuple[float, float]:
    """(share of requests within target_ms, mean in-flight) of ONE replica at rate_rps."""
    rng = np.random.default_rng(seed)
    n = int(rate_rps * seconds * 1.1) + 50
    arrivals = np.cumsum(rng.exponential(1.0 / rate_rps, n))
    profiles = ProfileSet(variants={"v": profile})
    sim = Simulation(
        arrivals,
        rng.random(n),
        seconds,
        profiles,
        RuntimeConfig(1, window_ms, max_batch, "v"),
        target_ms,
        settings.unbounded(),
        seed=seed,
    )
    trace = sim.run(_Hold())
    warm = 10
    den = trace.completed[warm:].sum() + trace.unserved
    share = float(trace.ok[warm:].sum() / den) if den else 1.0
    return share, float(trace.inflight[warm:].mean())


@dataclass(frozen=True)
class Calibration:
    """What a user would measure on one replica before configuring an autoscaler."""

    window_ms: int
    """The batch window the baselines run (the worker's default, 0)."""
    capacity_rps: float
    """Requests per second one replica sustains with its p99 at the target."""
    inflight_at_capacity: float
    """Mean requests in flight at capacity_rps (Little's law; the KPA's concurrency)."""


_CAL_CACHE: dict[tuple[object, ...], Calibration] = {}
CAPACITY_BISECTIONS = 12


def bisect_capacity(hi: float, holds: Callable[[float], bool]) -> float:
    """The highest rate in (0, `hi`) at which `holds` (a load test of one replica) is true,
    to CAPACITY_BISECTIONS halvings; 0 when it holds at none tried."""
    lo = 0.0
    for _ in range(CAPACITY_BISECTIONS):
        mid = (lo + hi) / 2
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo


class InfeasibleTarget(ValueError):
    """One replica of the variant misses the objective at every rate: nothing to size."""


def infeasible(
    spec: LatencySLOSpec, variant: str, lowest_rps: float, plant: str
) -> InfeasibleTarget:
    """The error for a load test that found no rate one replica holds."""
    return InfeasibleTarget(
        f"one replica of {variant} misses p{spec.objective.percentile:g} <= "
        f"{spec.target_latency_ms:g} ms at every rate tried (down to {lowest_rps:.2g} req/s) "
        f"on {plant}: the target is below the variant's own batch time; raise "
        f"objective.latencyMs or prefer a faster variant"
    )


def _capacity(
    profile: VariantProfile,
    window_ms: int,
    max_batch: int,
    p99_ms: float,
    quantile: float,
    settings: SimSettings,
) -> float:
    """The highest rate one replica holds within `p99_ms` (bisection; 0 when none does)."""
    return bisect_capacity(
        max_throughput_rps(profile, max_batch),
        lambda rate: (
            load_test(profile, rate, window_ms, max_batch, p99_ms, settings)[0] >= quantile
        ),
    )


def calibrate(spec: LatencySLOSpec, profiles: ProfileSet, settings: SimSettings) -> Calibration:
    """Load-test one replica of the preferred variant with the worker's default runtime
    configuration (window 0, max batch `batching.maxBatchSize`); cached."""
    prof = profiles.variants[spec.variants.effective_preferred]
    window = max(BASELINE_WINDOW_MS, spec.batching.min_window_ms)
    batch = spec.batching.max_batch_size
    key = (prof, window, batch, spec.target_latency_ms, spec.quantile, settings)
    hit = _CAL_CACHE.get(key)
    if hit is not None:
        return hit
    rate = _capacity(prof, window, batch, spec.target_latency_ms, spec.quantile, settings)
    if rate <= 0:
        lowest = max_throughput_rps(prof, batch) / 2**CAPACITY_BISECTIONS
        raise infeasible(spec, spec.variants.effective_preferred, lowest, "the model plant")
    _, inflight = load_test(prof, rate, window, batch, spec.target_latency_ms, settings)
    cal = Calibration(window, rate, inflight)
    _CAL_CACHE[key] = cal
    return cal


# ------------------------------------------------------------------------------- ours
class LatencySLOPolicy:
    """The product's controller: the very `slo_operator.policy.Controller` the operator's
    control loop holds, observed through the simulated Prometheus over the controller's own
    ranges (`ControllerParams.ranges`, for this simulation's scrape interval), every change
    applied in full; between steps it looks at the metrics every `look_s` and steps at once
    when `Controller.urgent` says so, as the operator does."""

    name = "latencyslo"

    def __init__(
        self,
        spec: LatencySLOSpec,
        profiles: ProfileSet,
        state: ControllerState | None = None,
        limits: OperatorLimits | None = None,
    ) -> None:
        self.spec = spec
        self.profiles = profiles
        self.limits = limits
        self.controller: Controller | None = None
        self._initial = state
        self._early: int | None = None
        """The last step a look brought forward."""
        self.decisions: list[tuple[int, object]] = []

    def _looks_at(self, t: int) -> bool:
        """A look between steps at `t` (the operator's `--look-interval`, from the first
        step on: `ControllerParams.look_s`)."""
        look = self.controller.params.look_s if self.controller is not None else None
        return look is not None and t % max(1, round(look)) == 0

    def controller_for(self, t: int, view: SimView) -> Controller:
        """Built at the first step, as the operator builds it (a fresh state starts then)."""
        if self.controller is None:
            limits = self.limits or OperatorLimits(scrape_interval_s=view.scrape_interval_s)
            params = ControllerParams.build(self.spec, limits)
            state = self._initial or initial_state(float(t))
            self.controller = Controller(params, self.profiles, state)
        return self.controller

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        if t == 0:
            return None
        interval = self.spec.policy.interval_seconds
        # as the operator's daemon: a step at least half an interval after an early one
        due = t % interval == 0 and (self._early is None or t - self._early >= interval / 2)
        if not due and not self._looks_at(t):
            return None
        controller = self.controller_for(t, view)
        r = controller.params.ranges
        obs = view.observe(
            r.window_s, self.spec.quantile, r.recent_s, peak_s=r.peak_s, peak_step_s=r.peak_step_s
        )
        if not due:
            if not controller.urgent(obs, view.config, float(t)):
                return None
            self._early = t
        decision = controller.step(obs, view.config, float(t))
        self.decisions.append((t, decision))
        if not decision.apply:
            return None
        controller.applied(ApplyResult(replicas_set=True, config_written=True))
        return decision.target


# -------------------------------------------------------------------------- baselines
class HPAPolicy:
    """Kubernetes HorizontalPodAutoscaler (autoscaling/v2 default behavior)."""

    name = "hpa"
    sync_s = 15
    tolerance = 0.1
    down_window_s = 300

    def __init__(self, spec: LatencySLOSpec, base: RuntimeConfig, target: float = 0.8) -> None:
        self.spec = spec
        self.base = base
        self.target = target
        self.recs: deque[tuple[int, int]] = deque()

    def replica_base(self, view: SimView) -> int:
        """The replicas the usage ratio multiplies (current pods; ready pods for Value)."""
        return view.config.replicas

    def metric_ratio(self, t: int, view: SimView) -> float | None:
        """usage / target; on a scale-up, not-ready pods count at 0 %, and if that reverses
        the direction or lands within the tolerance, no action (ratio 1)."""
        ready = view.ready_replicas
        if ready == 0:
            return None
        util = view.busy_share(self.sync_s)
        ratio = util / self.target
        starting = view.starting_replicas
        if ratio > 1.0 and starting:
            ratio = util * ready / (ready + starting) / self.target
            if ratio <= 1.0 + self.tolerance:
                return 1.0
        return ratio

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        if t == 0 or t % self.sync_s:
            return None
        current = view.config.replicas
        ratio = self.metric_ratio(t, view)
        if ratio is None:
            return None
        base = self.replica_base(view)
        rec = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(ratio * base)
        rec = min(max(rec, self.spec.replicas.min), self.spec.replicas.max)
        self.recs.append((t, rec))
        while self.recs and self.recs[0][0] <= t - self.down_window_s:
            self.recs.popleft()
        # an HPA without `behavior`: the largest recommendation of the stabilization window,
        # at most max(2 x current, 4) (scaleUpLimitFactor, scaleUpLimitMinimum)
        desired = min(max(n for _, n in self.recs), max(2 * current, 4))
        desired = min(max(desired, self.spec.replicas.min), self.spec.replicas.max)
        if desired == current:
            return None
        return view.config.with_(replicas=desired)


class KEDAPolicy(HPAPolicy):
    """KEDA Prometheus scaler (request rate, AverageValue) on top of the HPA rules.

    The HPA asks KEDA's metrics server at every sync and KEDA runs the query then (its
    default, `useCachedMetrics: false`), so the metric is as fresh as the last scrape."""

    name = "keda"
    utilization = 0.8
    query_window_s = 60

    def __init__(
        self,
        spec: LatencySLOSpec,
        base: RuntimeConfig,
        capacity_rps: float,
        threshold_rps: float | None = None,
    ) -> None:
        super().__init__(spec, base)
        self.threshold = (
            threshold_rps if threshold_rps is not None else capacity_rps * self.utilization
        )

    def query(self, view: SimView) -> float | None:
        """`sum(rate(inference_requests_total[1m]))` at the last scrape."""
        return view.observe(self.query_window_s, self.spec.quantile).request_rate

    def metric_ratio(self, t: int, view: SimView) -> float | None:
        metric = self.query(view)
        if metric is None:
            return None
        return metric / (max(self.threshold, 1e-9) * max(view.config.replicas, 1))


class KPAPolicy:
    """Knative Pod Autoscaler, default stable/panic windows; metric concurrency or rps."""

    name = "kpa"
    tick_s = 2
    stable_s = 60
    panic_s = 6
    panic_threshold = 2.0
    utilization = 0.7
    max_down_rate = 2.0
    max_up_rate = 1000.0

    def __init__(
        self, spec: LatencySLOSpec, base: RuntimeConfig, target: float, metric: str = "concurrency"
    ) -> None:
        if metric not in ("concurrency", "rps"):
            raise ValueError(f"unknown KPA metric {metric!r}")
        self.spec = spec
        self.target = max(target, 1e-6)
        self.metric = metric
        self.name = "kpa" if metric == "concurrency" else "kpa-rps"
        self.panic_time: int | None = None
        self.max_panic_pods = 0

    def _observed(self, view: SimView, span: int) -> float:
        if self.metric == "rps":
            return view.request_rate(span)
        return view.concurrency(span)

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        """Knative's `autoscaler.Scale` (pkg/autoscaler/scaling/autoscaler.go)."""
        if t == 0 or t % self.tick_s:
            return None
        per_pod = self.target * self.utilization
        ready = max(view.ready_replicas, 1)
        max_up = math.ceil(self.max_up_rate * ready)
        max_down = math.floor(ready / self.max_down_rate)
        dspc = math.ceil(self._observed(view, self.stable_s) / per_pod)
        dppc = math.ceil(self._observed(view, self.panic_s) / per_pod)
        stable = min(max(dspc, max_down), max_up)
        panic = min(max(dppc, max_down), max_up)
        over = dppc / ready >= self.panic_threshold
        if over:  # start, or extend, the panic
            self.panic_time = t
        elif self.panic_time is not None and self.panic_time + self.stable_s < t:
            self.panic_time, self.max_panic_pods = None, 0
        desired = stable
        if self.panic_time is not None:
            # provision for the larger of the two, and never scale down in panic
            desired = max(desired, panic)
            if desired > self.max_panic_pods:
                self.max_panic_pods = desired
            else:
                desired = self.max_panic_pods
        current = view.config.replicas
        desired = min(max(desired, self.spec.replicas.min), self.spec.replicas.max)
        if desired == current:
            return None
        return view.config.with_(replicas=desired)


class AIMDPolicy:
    """Clipper-style AIMD on the max batch size, fixed replicas."""

    name = "aimd"
    step = 2
    backoff = 0.9
    limit = 1024

    def __init__(self, spec: LatencySLOSpec, base: RuntimeConfig) -> None:
        self.spec = spec

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        if t == 0:
            return view.config.with_(batch_window_ms=0)
        cfg = view.config
        slowest = view.max_batch_ms(1)
        if slowest <= 0:
            return None
        if slowest <= self.spec.target_latency_ms:
            b = min(self.limit, cfg.max_batch_size + self.step)
        else:
            b = max(1, math.floor(cfg.max_batch_size * self.backoff))
        return None if b == cfg.max_batch_size else cfg.with_(max_batch_size=b)


class StaticPolicy:
    """Fixed replicas, provisioned for the peak."""

    name = "static"

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        return None


class OraclePolicy:
    """Per-window best configuration with perfect knowledge of the arrivals."""

    name = "oracle"
    window_s = 15
    peak_s = 5

    def __init__(
        self,
        spec: LatencySLOSpec,
        arrivals_per_s: np.ndarray,
        rate_per_replica: float,
        startup_s: int,
        extra: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.plan = oracle_plan(spec, arrivals_per_s, rate_per_replica, startup_s, extra)

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        want = int(self.plan[min(t, len(self.plan) - 1)])
        if want == view.config.replicas:
            return None
        return view.config.with_(replicas=want)


def oracle_plan(
    spec: LatencySLOSpec,
    arrivals_per_s: np.ndarray,
    rate_per_replica: float,
    startup_s: int,
    extra: np.ndarray | None = None,
) -> np.ndarray:
    """Replicas to have (ready or starting) each second, looking startup_s ahead.

    `extra` adds replicas per window (the refinement passes of `refine_oracle`)."""
    d = len(arrivals_per_s)
    w, p = OraclePolicy.window_s, OraclePolicy.peak_s
    n_win = math.ceil(d / w)
    padded = np.zeros(n_win * w)
    padded[:d] = arrivals_per_s
    # peak p-second rate within each window (sliding p-second sums inside the window)
    cum = np.concatenate(([0.0], np.cumsum(padded)))
    sums = (cum[p:] - cum[:-p]) / p
    peaks = np.array([sums[k * w : (k + 1) * w - p + 1].max() for k in range(n_win)])
    need_win = np.ceil(peaks / max(rate_per_replica, 1e-9)).astype(int)
    if extra is not None:
        need_win = need_win + extra[:n_win]
    need_win = np.clip(need_win, max(spec.replicas.min, 1), spec.replicas.max)
    need = np.repeat(need_win, w)[:d]
    # order replicas startup_s ahead: at t, have the max need over [t, t + startup_s]
    plan = np.empty(d, dtype=int)
    q: deque[int] = deque()
    for t in range(d - 1, -1, -1):
        while q and need[q[-1]] <= need[t]:
            q.pop()
        q.append(t)
        while q[0] > t + startup_s:
            q.popleft()
        plan[t] = need[q[0]]
    return plan


def static_replicas(
    spec: LatencySLOSpec, arrivals_per_s: np.ndarray, rate_per_replica: float
) -> int:
    """Replicas for the peak 10-second rate of the run."""
    span = min(10, len(arrivals_per_s))
    cum = np.concatenate(([0.0], np.cumsum(arrivals_per_s)))
    peak = float(((cum[span:] - cum[:-span]) / span).max()) if span else 0.0
    n = math.ceil(peak / max(rate_per_replica, 1e-9))
    return min(max(n, spec.replicas.min, 1), spec.replicas.max)
