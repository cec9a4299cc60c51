"""The autoscalers people deploy instead, as they deploy them, each with its target swept.

Every baseline runs its documented defaults; the one number a user must choose, the target,
is swept from a loose to a tight value around what a load test of ONE replica of the served
variant gives (`FleetCalibration`: the request rate one replica sustains with its p99 at the
SLO, and its mean concurrency there). Each can serve any variant, fixed: a fleet of `full`,
of `quantized` or of `distilled` (the worker's default runtime configuration otherwise:
window 0, max batch `batching.maxBatchSize`).

- `hpa`: CPU utilization (`kubectl autoscale --cpu-percent`); swept 90 % ... 50 %.
- `hpa-p99`: the objective's quantile (`histogram_quantile(0.99, ...[1m])`) as an external
  metric of `type: Value` (prometheus-adapter, or KEDA `metricType: Value`); swept 1.0 ...
  0.4 x the SLO.
- `keda`: `sum(rate(requests[1m]))`, KEDA Prometheus scaler, `AverageValue`; swept 1.0 ...
  0.5 x the capacity of one replica.
- `keda-peak`: the peak 10-second rate within the objective's window (the query latencyslo
  reads), `AverageValue`; swept like `keda`.
- `kpa`: Knative KPA on concurrency (time-averaged), 70 % target utilization on top; swept
  1.5 ... 0.35 x the concurrency of one replica at capacity.
- `kpa-rps`: Knative KPA on requests per second, 70 % on top; swept 1.5 ... 0.35 x capacity.

Defaults, from the projects' documentation:

- HPA (`kube-controller-manager`): sync every 15 s (`--horizontal-pod-autoscaler-sync-period`),
  tolerance 0.1, scale-down stabilization 300 s; without `behavior` (what `kubectl
  autoscale` and KEDA create) a scale-up goes at most to max(2 x current, 4); resource
  metrics count not-ready pods at 0 % on a scale-up; a `Value` external metric sets
  desired = ceil(ready pods x value / target), an `AverageValue` one ceil(value / target).
- KEDA: the HPA queries KEDA's metrics server at every sync and KEDA evaluates the scaler
  then (`useCachedMetrics: false`); `pollingInterval` (30 s) only drives activation.
- Knative KPA: stable window 60 s, panic window 10 % of it (6 s), panic threshold 200 %,
  target utilization 70 %, max scale-up rate 1000, max scale-down rate 2, tick 2 s; in
  panic max(stable, panic, the most asked in the panic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slo_operator.model.queueing import max_throughput_rps
from slo_operator.sim.engine import SimSettings, Simulation, SimView
from slo_operator.sim.plant import Plant
from slo_operator.sim.policies import (
    BASELINE_WINDOW_MS,
    CAPACITY_BISECTIONS,
    HPAPolicy,
    KEDAPolicy,
    KPAPolicy,
    _Hold,
    bisect_capacity,
    infeasible,
)
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig

BASELINES = ("hpa", "hpa-p99", "keda", "keda-peak", "kpa", "kpa-rps")
SWEEPS: dict[str, tuple[float, ...]] = {
    "hpa": (0.9, 0.8, 0.7, 0.6, 0.5),
    "hpa-p99": (1.0, 0.8, 0.6, 0.5, 0.4),
    "keda": (1.0, 0.9, 0.8, 0.65, 0.5),
    "keda-peak": (1.0, 0.9, 0.8, 0.65, 0.5),
    "kpa": (1.5, 1.0, 0.7, 0.5, 0.35),
    "kpa-rps": (1.5, 1.0, 0.7, 0.5, 0.35),
}
"""Per baseline, the swept setting, loose to tight (see `target_value` for its unit)."""
DEFAULT_SETTING = {"hpa": 0.8, "hpa-p99": 1.0, "keda": 0.8, "keda-peak": 0.8,
                   "kpa": 1.0, "kpa-rps": 1.0}  # fmt: skip
"""What a user sets without a sweep (the previous comparison's choices)."""


@dataclass(frozen=True)
class FleetCalibration:
    """A load test of one replica of one variant, on the simulated worker."""

    variant: str
    capacity_rps: float
    """Requests per second one replica sustains with its p99 at the target."""
    inflight_at_capacity: float
    """Mean requests in flight at capacity_rps (Little's law; the KPA's concurrency)."""


def _load_test(
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    variant: str,
    rate_rps: float,
    settings: SimSettings,
    plant: Plant | None,
    seconds: int = 90,
    seed: int = 12345,
) -> tuple[float, float]:
    """(share of requests within the target, mean concurrency) of one replica at rate_rps."""
    rng = np.random.default_rng(seed)
    n = int(rate_rps * seconds * 1.1) + 50
    arrivals = np.cumsum(rng.exponential(1.0 / rate_rps, n))
    window = max(BASELINE_WINDOW_MS, spec.batching.min_window_ms)
    sim = Simulation(
        arrivals, rng.random(n), seconds, profiles,
        RuntimeConfig(1, window, spec.batching.max_batch_size, variant),
        spec.target_latency_ms, settings.unbounded(), seed=seed, plant=plant,
    )  # fmt: skip
    trace = sim.run(_Hold())
    warm = 10
    den = trace.completed[warm:].sum() + trace.unserved
    share = float(trace.ok[warm:].sum() / den) if den else 1.0
    return share, float(SimView(sim).concurrency(seconds - warm))


_CACHE: dict[tuple[object, ...], FleetCalibration] = {}


def calibrate_fleet(
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    variant: str,
    settings: SimSettings,
    plant: Plant | None,
) -> FleetCalibration:
    """Bisect the rate one replica of `variant` holds at the objective (cached);
    `InfeasibleTarget` when it holds none."""
    key = (spec.target_latency_ms, spec.quantile, spec.batching.max_batch_size,
           spec.batching.min_window_ms, profiles.variants[variant], variant, settings,
           id(plant))  # fmt: skip
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    prof = profiles.variants[variant]
    hi = 2.0 * max_throughput_rps(prof, spec.batching.max_batch_size)
    lowest = hi / 2**CAPACITY_BISECTIONS
    lo = bisect_capacity(
        hi,
        lambda rate: _load_test(spec, profiles, variant, rate, settings, plant)[0] >= spec.quantile,
    )
    if lo <= 0:
        raise infeasible(
            spec, variant, lowest, "the measured plant" if plant else "the model plant"
        )
    _, conc = _load_test(spec, profiles, variant, lo, settings, plant)
    cal = FleetCalibration(variant, lo, conc)
    _CACHE[key] = cal
    return cal


class HPAQuantilePolicy(HPAPolicy):
    """HPA on the measured quantile: an external (or object) metric of `type: Value`."""

    name = "hpa-p99"

    def __init__(self, spec: LatencySLOSpec, base: RuntimeConfig, target_ms: float) -> None:
        super().__init__(spec, base)
        self.target_ms = target_ms

    def replica_base(self, view: SimView) -> int:
        return max(view.ready_replicas, 1)

    def metric_ratio(self, t: int, view: SimView) -> float | None:
        p = view.observe(self.spec.objective.window_seconds, self.spec.quantile).latency_ms
        return None if p is None else p / self.target_ms


class KEDAPeakPolicy(KEDAPolicy):
    """KEDA on the peak 10-second rate within the objective's window (latencyslo's query)."""

    name = "keda-peak"

    def query(self, view: SimView) -> float | None:
        obs = view.observe(
            self.spec.objective.window_seconds,
            self.spec.quantile,
            self.spec.policy.interval_seconds,
        )
        return obs.peak_request_rate


def target_value(name: str, setting: float, spec: LatencySLOSpec, cal: FleetCalibration) -> float:
    """The number the user writes into the baseline's manifest for a swept setting."""
    if name == "hpa":
        return setting  # utilization share
    if name == "hpa-p99":
        return setting * spec.target_latency_ms  # ms
    if name in ("keda", "keda-peak", "kpa-rps"):
        return setting * cal.capacity_rps  # req/s per replica
    if name == "kpa":
        return setting * cal.inflight_at_capacity  # requests in flight per replica
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")


def make_baseline(
    name: str, spec: LatencySLOSpec, start: RuntimeConfig, target: float
) -> HPAPolicy | KPAPolicy:
    """A fresh baseline controller with `target` in the unit of `target_value`."""
    if name == "hpa":
        hpa = HPAPolicy(spec, start, target=target)
        return hpa
    if name == "hpa-p99":
        return HPAQuantilePolicy(spec, start, target)
    if name == "keda":
        return KEDAPolicy(spec, start, target, threshold_rps=target)
    if name == "keda-peak":
        return KEDAPeakPolicy(spec, start, target, threshold_rps=target)
    if name == "kpa":
        return KPAPolicy(spec, start, target)
    if name == "kpa-rps":
        return KPAPolicy(spec, start, target, metric="rps")
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")


def fleet_start(
    spec: LatencySLOSpec, cal: FleetCalibration, first_minute_rps: float, utilization: float
) -> RuntimeConfig:
    """A fleet of `cal.variant` with replicas for the first minute's rate."""
    n = math.ceil(first_minute_rps / (utilization * max(cal.capacity_rps, 1e-9)))
    n = min(max(n, spec.replicas.min, 1), spec.replicas.max)
    window = max(BASELINE_WINDOW_MS, spec.batching.min_window_ms)
    return RuntimeConfig(n, window, spec.batching.max_batch_size, cal.variant)
