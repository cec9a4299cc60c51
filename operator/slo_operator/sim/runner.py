"""Run scenarios: one workload, the same arrivals, every policy; score each run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from slo_operator.sim.engine import Controller, SimSettings, Simulation, Trace, slice_trace
from slo_operator.sim.metrics import summarize
from slo_operator.sim.plant import Plant
from slo_operator.sim.policies import (
    ORACLE_PASSES,
    POLICIES,
    AIMDPolicy,
    Calibration,
    HPAPolicy,
    KEDAPolicy,
    KPAPolicy,
    LatencySLOPolicy,
    OraclePolicy,
    StaticPolicy,
    calibrate,
    static_replicas,
)
from slo_operator.sim.workloads import Workload, make_workload
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig

DEFAULT_TARGET_MS = 100.0
DEFAULT_MAX_REPLICAS = 16
BASE_LOAD = 2.0
"""Built-in workloads start at this many times one replica's measured capacity (so at two to
three replicas of the preferred variant), whatever the profile."""
TRACE_LOAD = 1.0
"""The shipped trace is rescaled to a mean of this many replicas' capacity (its 10-second
bursts reach about 12 times the mean)."""
INITIAL_UTILIZATION = 0.8
"""Every policy starts with replicas for the first minute's rate at 80 % of capacity."""
DEFAULT_WARMUP_S = 360
"""Unscored seconds at the workload's initial rate before t = 0, so that every controller
starts from its own steady state with a full history (longer than the 300 s stabilization
window)."""


def with_warmup(workload: Workload, warmup_s: int) -> np.ndarray:
    """The workload's arrivals shifted by warmup_s, after Poisson arrivals at its first
    minute's mean rate (seeded like the workload)."""
    arrivals = workload.arrivals()
    if warmup_s <= 0:
        return arrivals
    first = float(np.sum(arrivals < 60.0)) / min(60.0, workload.duration_s)
    rng = np.random.default_rng(workload.seed + 424_242)
    n = rng.poisson(first * warmup_s)
    warm = np.sort(rng.uniform(0.0, warmup_s, size=n))
    return np.concatenate((warm, arrivals + warmup_s))


def default_spec(
    target_ms: float = DEFAULT_TARGET_MS, max_replicas: int = DEFAULT_MAX_REPLICAS
) -> LatencySLOSpec:
    """The LatencySLO the simulator runs when none is given (API defaults otherwise)."""
    return LatencySLOSpec.model_validate(
        {
            "targetRef": {"name": "simulated"},
            "objective": {"latencyMs": target_ms},
            "replicas": {"min": 1, "max": max_replicas},
        }
    )


@dataclass
class RunResult:
    policy: str
    metrics: dict[str, Any]
    trace: Trace
    controller: Controller
    wall_s: float = 0.0


@dataclass
class ScenarioResult:
    name: str
    workload: Workload
    spec: LatencySLOSpec
    calibration: Calibration
    base_rps: float = 0.0
    runs: dict[str, RunResult] = field(default_factory=dict)


def initial_config(
    spec: LatencySLOSpec, cal: Calibration, arrivals_per_s: np.ndarray
) -> RuntimeConfig:
    """What every policy starts from: replicas for the first minute's rate, preferred variant."""
    first = float(arrivals_per_s[:60].mean()) if len(arrivals_per_s) else 0.0
    n = math.ceil(first / (INITIAL_UTILIZATION * cal.capacity_rps))
    n = min(max(n, spec.replicas.min, 1), spec.replicas.max)
    return RuntimeConfig(
        replicas=n,
        batch_window_ms=cal.window_ms,
        max_batch_size=spec.batching.max_batch_size,
        variant=spec.variants.effective_preferred,
        max_queue_wait_ms=spec.batching.max_queue_wait_ms,
    )


def worker_settings(spec: LatencySLOSpec, settings: SimSettings) -> SimSettings:
    """The plant's settings with the spec's queue wait limit where it sets one: the operator
    keeps every worker at it, over the workers' own `--max-queue-wait-ms`. Every policy runs
    on the same workers, so the baselines get it too."""
    wait = spec.batching.max_queue_wait_ms
    return settings if wait is None else replace(settings, queue_wait_ms=float(wait))


def make_controller(
    name: str,
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    settings: SimSettings,
    cal: Calibration,
    arrivals_per_s: np.ndarray,
    start: RuntimeConfig,
) -> tuple[Controller, RuntimeConfig]:
    """A fresh controller of the named policy and the configuration it starts from."""
    if name == "latencyslo":
        return LatencySLOPolicy(spec, profiles), start
    if name == "hpa":
        return HPAPolicy(spec, start), start
    if name == "keda":
        return KEDAPolicy(spec, start, cal.capacity_rps), start
    if name == "kpa":
        return KPAPolicy(spec, start, cal.inflight_at_capacity), start
    if name == "kpa-rps":
        return KPAPolicy(spec, start, cal.capacity_rps, metric="rps"), start
    if name == "aimd":
        return AIMDPolicy(spec, start), start.with_(batch_window_ms=0)
    if name == "static":
        n = static_replicas(spec, arrivals_per_s, cal.capacity_rps)
        return StaticPolicy(), start.with_(replicas=n)
    if name == "oracle":
        oracle = OraclePolicy(spec, arrivals_per_s, cal.capacity_rps, settings.startup_s)
        return oracle, start.with_(replicas=int(oracle.plan[0]))
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")


def _refine_oracle(
    oracle: OraclePolicy,
    trace: Trace,
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    settings: SimSettings,
    cal: Calibration,
    per_s: np.ndarray,
    arrivals: np.ndarray,
    route: np.ndarray,
    seed: int,
    plant: Plant | None = None,
) -> tuple[OraclePolicy, Trace]:
    """Give one more replica to every oracle window that missed the target; rerun."""
    w = OraclePolicy.window_s
    extra = np.zeros(math.ceil(len(per_s) / w) + 1, dtype=int)
    for _ in range(ORACLE_PASSES):
        d = len(trace.ok) // w * w
        ok = trace.ok[:d].reshape(-1, w).sum(1)
        den = (trace.completed[:d] + trace.rejected[:d]).reshape(-1, w).sum(1)
        bad = (den > 0) & (ok < spec.quantile * den)
        if not bad.any():
            break
        extra[: len(bad)] += bad
        oracle = OraclePolicy(spec, per_s, cal.capacity_rps, settings.startup_s, extra)
        start = RuntimeConfig(
            int(oracle.plan[0]), cal.window_ms, spec.batching.max_batch_size,
            spec.variants.effective_preferred,
        )  # fmt: skip
        trace = Simulation(
            arrivals, route, len(per_s), profiles, start, spec.target_latency_ms, settings, seed,
            plant=plant,
        ).run(oracle)  # fmt: skip
    return oracle, trace


def run_scenario(
    name: str,
    *,
    policies: Sequence[str] = POLICIES,
    spec: LatencySLOSpec | None = None,
    profiles: ProfileSet,
    settings: SimSettings | None = None,
    seed: int = 0,
    base_rps: float | None = None,
    duration_s: float | None = None,
    trace_file: str | Path | None = None,
    target_mean_rps: float | None = None,
    warmup_s: int = DEFAULT_WARMUP_S,
    on_tick: Callable[[str, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
    plant: Plant | None = None,
) -> ScenarioResult:
    """Simulate every policy on the same arrivals of one workload (after a warm-up), on
    `plant` (None: batch times from the profile's line with `settings.service_cv` jitter)."""
    import time

    from slo_operator.sim.baselines import calibrate_fleet

    spec = spec or default_spec()
    settings = worker_settings(spec, settings or SimSettings())
    if plant is None:
        cal = calibrate(spec, profiles, settings)
    else:  # the user's load test of one replica runs on the same plant
        fleet = calibrate_fleet(spec, profiles, spec.variants.effective_preferred, settings, plant)
        cal = Calibration(
            max(0, spec.batching.min_window_ms), fleet.capacity_rps, fleet.inflight_at_capacity
        )
    if base_rps is None:
        base_rps = BASE_LOAD * cal.capacity_rps
    if name == "trace" and target_mean_rps is None and trace_file is None:
        target_mean_rps = TRACE_LOAD * cal.capacity_rps
    workload = make_workload(
        name,
        base_rps=base_rps,
        duration_s=duration_s,
        seed=seed,
        trace_file=trace_file,
        target_mean_rps=target_mean_rps,
    )
    arrivals = with_warmup(workload, warmup_s)
    route = workload.routing_draws(len(arrivals))
    duration = math.ceil(workload.duration_s) + warmup_s
    per_s = np.bincount(arrivals.astype(np.int64), minlength=duration)[:duration].astype(float)
    start = initial_config(spec, cal, per_s)
    result = ScenarioResult(
        name=name, workload=workload, spec=spec, calibration=cal, base_rps=base_rps
    )
    for policy in policies:
        controller, initial = make_controller(policy, spec, profiles, settings, cal, per_s, start)
        tick = None if on_tick is None else (lambda t, p=policy: on_tick(p, t))
        t0 = time.perf_counter()
        full = Simulation(
            arrivals, route, duration, profiles, initial, spec.target_latency_ms, settings, seed,
            variant_order=spec.variants.allowed, plant=plant,
        ).run(controller, tick)  # fmt: skip
        if isinstance(controller, OraclePolicy):
            controller, full = _refine_oracle(
                controller, full, spec, profiles, settings, cal, per_s, arrivals, route, seed,
                plant,
            )  # fmt: skip
        trace = slice_trace(full, warmup_s)
        wall = time.perf_counter() - t0
        metrics = summarize(
            trace,
            spec.quantile,
            spec.objective.window_seconds,
            spec.policy.interval_seconds,
            spec.variants.effective_preferred,
        )
        result.runs[policy] = RunResult(policy, metrics, trace, controller, wall)
        if progress is not None:
            progress(policy)
    return result
