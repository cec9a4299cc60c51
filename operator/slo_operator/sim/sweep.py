"""One scenario's arrivals prepared once, then any number of controllers run on them.

What `bench/pareto.py` builds its frontiers with: the same arrivals and routing draws for
every run, the same warm-up, the same plant, the same scoring as `latencyslo simulate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slo_operator.sim.baselines import (
    FleetCalibration,
    calibrate_fleet,
    fleet_start,
    make_baseline,
    target_value,
)
from slo_operator.sim.engine import Controller, SimSettings, Simulation, Trace, slice_trace
from slo_operator.sim.metrics import summarize
from slo_operator.sim.oracle import OraclePlan, OracleResult, VariantOracle, cheapest
from slo_operator.sim.plant import Plant
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.runner import (
    BASE_LOAD,
    DEFAULT_WARMUP_S,
    INITIAL_UTILIZATION,
    TRACE_LOAD,
    with_warmup,
)
from slo_operator.sim.workloads import Workload, make_workload
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet


@dataclass
class Prepared:
    """A scenario's arrivals (with the warm-up) and everything every run shares."""

    name: str
    workload: Workload
    spec: LatencySLOSpec
    profiles: ProfileSet
    settings: SimSettings
    plant: Plant | None
    seed: int
    arrivals: np.ndarray
    route: np.ndarray
    duration: int
    per_s: np.ndarray
    warmup_s: int

    @property
    def first_minute_rps(self) -> float:
        return float(self.per_s[:60].mean()) if len(self.per_s) else 0.0

    def calibration(self, variant: str) -> FleetCalibration:
        return calibrate_fleet(self.spec, self.profiles, variant, self.settings, self.plant)

    def simulate(self, controller: Controller, initial: Any) -> Trace:
        """The whole run (warm-up included)."""
        return Simulation(
            self.arrivals, self.route, self.duration, self.profiles, initial,
            self.spec.target_latency_ms, self.settings, self.seed,
            variant_order=self.spec.variants.allowed, plant=self.plant,
        ).run(controller)  # fmt: skip

    def score(self, trace: Trace) -> dict[str, Any]:
        """The figures of the scored part (after the warm-up)."""
        spec = self.spec
        return summarize(
            slice_trace(trace, self.warmup_s),
            spec.quantile,
            spec.objective.window_seconds,
            spec.policy.interval_seconds,
            spec.variants.effective_preferred,
        )


def prepare(
    name: str,
    *,
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    settings: SimSettings,
    plant: Plant | None,
    seed: int = 0,
    trace_file: str | Path | None = None,
    warmup_s: int = DEFAULT_WARMUP_S,
    duration_s: float | None = None,
    trace_load: float | None = None,
) -> Prepared:
    """The scenario at the simulator's usual load: built-in workloads start at twice one
    replica's capacity, the shipped trace is rescaled to a mean of one replica's capacity
    (capacity: one replica of the preferred variant on this plant); a given trace file is
    replayed as it is. With `trace_load`, either trace is rescaled to a mean of that many
    replicas' capacity."""
    cap = calibrate_fleet(
        spec, profiles, spec.variants.effective_preferred, settings, plant
    ).capacity_rps
    target_mean = None
    if trace_load is not None:
        if name != "trace":
            raise ValueError(f"trace_load applies to the 'trace' workload, not {name!r}")
        if not trace_load > 0:
            raise ValueError(f"trace_load must be > 0, got {trace_load}")
        target_mean = trace_load * cap
    elif name == "trace" and trace_file is None:
        target_mean = TRACE_LOAD * cap
    workload = make_workload(
        name,
        base_rps=BASE_LOAD * cap,
        duration_s=duration_s,
        seed=seed,
        trace_file=trace_file,
        target_mean_rps=target_mean,
    )
    arrivals = with_warmup(workload, warmup_s)
    route = workload.routing_draws(len(arrivals))
    duration = math.ceil(workload.duration_s) + warmup_s
    per_s = np.bincount(arrivals.astype(np.int64), minlength=duration)[:duration].astype(float)
    return Prepared(name, workload, spec, profiles, settings, plant, seed, arrivals, route,
                    duration, per_s, warmup_s)  # fmt: skip


def run_ours(prep: Prepared) -> dict[str, Any]:
    cal = prep.calibration(prep.spec.variants.effective_preferred)
    start = fleet_start(prep.spec, cal, prep.first_minute_rps, INITIAL_UTILIZATION)
    return prep.score(prep.simulate(LatencySLOPolicy(prep.spec, prep.profiles), start))


def run_baseline(prep: Prepared, name: str, variant: str, setting: float) -> dict[str, Any]:
    """One baseline, serving `variant`, at a swept setting; the figures plus its target."""
    cal = prep.calibration(variant)
    target = target_value(name, setting, prep.spec, cal)
    start = fleet_start(prep.spec, cal, prep.first_minute_rps, INITIAL_UTILIZATION)
    metrics = prep.score(prep.simulate(make_baseline(name, prep.spec, start, target), start))
    metrics["target"] = target
    metrics["setting"] = setting
    return metrics


def run_oracle(
    prep: Prepared, on_try: Callable[[float, float, int], None] | None = None
) -> tuple[dict[str, Any], OracleResult]:
    """The cheapest oracle plan found that meets the SLO on this scenario."""
    spec = prep.spec
    capacity = {v: prep.calibration(v).capacity_rps for v in spec.variants.allowed
                if v in prep.profiles.variants}  # fmt: skip
    window = max(0, spec.batching.min_window_ms)

    def simulate(p: OraclePlan) -> Trace:
        start = fleet_start(spec, prep.calibration(p.variant[0]), 0.0, 1.0)
        start = start.with_(replicas=int(p.replicas[0]), variant=p.variant[0],
                            batch_window_ms=window)  # fmt: skip
        return prep.simulate(VariantOracle(p), start)

    def score(trace: Trace) -> tuple[float, int]:
        m = prep.score(trace)
        if on_try is not None:
            on_try(0.0, m["replica_seconds"], m["violating_windows"])
        return float(m["replica_seconds"]), int(m["violating_windows"])

    result = cheapest(
        spec, prep.per_s, capacity, prep.settings.startup_s, prep.settings.switch_s,
        simulate, score, scored_from=prep.warmup_s,
    )  # fmt: skip
    metrics = prep.score(result.trace)
    metrics["target"] = result.plan.factor
    metrics["met"] = result.met
    metrics["tried"] = result.tried
    return metrics, result
