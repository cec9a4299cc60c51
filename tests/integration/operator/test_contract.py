"""The contract between the simulator and the operator: one scenario, driven through the
simulator's `LatencySLOPolicy` and through the operator's `ControlLoop` (actuator and metrics
adapters fed from the same simulated plant, the status and memory through a store), yields the
very same decisions, step by step. The metrics come either straight from the plant through the
`MetricsSource` port, or through the operator's real `PrometheusSource` and PromQL against a
Prometheus API that evaluates each query, over the ranges written in it, on the plant.

Every performance figure of the project comes from the simulator; this test is what makes
them figures of the operator's controller."""

from __future__ import annotations

import asyncio
import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from slo_local.promserver import free_port
from slo_operator.look import look
from slo_operator.loop import ControlLoop
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.policy import OperatorLimits
from slo_operator.ports import MetricsSource
from slo_operator.sim.engine import SimSettings, Simulation, SimView
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import (
    ApplyResult,
    Decision,
    Observation,
    ProfileSet,
    Ranges,
    RuntimeConfig,
    VariantProfile,
)

PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(alpha_ms=6.0, beta_ms=1.5, accuracy=0.90),
        "quantized": VariantProfile(alpha_ms=3.5, beta_ms=0.9, accuracy=0.88),
        "distilled": VariantProfile(alpha_ms=2.0, beta_ms=0.6, accuracy=0.87),
    }
)
SPEC = LatencySLOSpec.model_validate(
    {
        "targetRef": {"name": "sentiment-worker"},
        "objective": {"latencyMs": 100, "windowSeconds": 30},
        "replicas": {"min": 1, "max": 8},
        "variants": {"allowed": ["full", "quantized", "distilled"]},
        "policy": {"intervalSeconds": 10, "scaleDownStabilizationSeconds": 60},
    }
)
START = RuntimeConfig(2, 0, 32, "full")
DURATION_S = 600


def arrivals(seed: int) -> np.ndarray:
    """A step (150 -> 600 req/s at 120 s) and a fall (to 100 req/s at 360 s), Poisson."""
    rng = np.random.default_rng(seed)
    parts = []
    for start, end, rate in ((0, 120, 150.0), (120, 360, 600.0), (360, DURATION_S, 100.0)):
        n = rng.poisson(rate * (end - start))
        parts.append(rng.uniform(start, end, n))
    return np.sort(np.concatenate(parts))


def simulation(seed: int) -> Simulation:
    arr = arrivals(seed)
    route = np.random.default_rng(seed + 1).random(len(arr))
    return Simulation(
        arr, route, DURATION_S, PROFILES, START, SPEC.target_latency_ms,
        SimSettings(), seed, variant_order=SPEC.variants.allowed,
    )  # fmt: skip


@dataclass
class PlantMetrics:
    """The `MetricsSource` port read from the simulated plant (what Prometheus would see)."""

    view: SimView | None = None
    ranges_asked: list[Ranges | None] = field(default_factory=list)

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        assert self.view is not None
        assert ranges is not None  # the loop always passes the controller's ranges
        self.ranges_asked.append(ranges)
        return self.view.observe(
            ranges.window_s,
            spec.quantile,
            ranges.recent_s,
            peak_s=ranges.peak_s,
            peak_step_s=ranges.peak_step_s,
        )


class PlantPrometheus:
    """The Prometheus HTTP API answering the operator's PromQL from the simulated plant: each
    query's ranges are read from the query itself, so the operator's real `PrometheusSource`
    (and its PromQL builder) is what is checked."""

    LATENCY = re.compile(r"^histogram_quantile\(([\d.]+), .*_bucket\{[^}]*\}\[(\d+)s\]\)\)\)$")
    RATE = re.compile(r"^sum\(rate\(\w+_count\{[^}]*\}\[(\d+)s\]\)\)$")
    PEAK = re.compile(
        r"^max_over_time\(sum\(rate\(\w+_count\{[^}]*\}\[(\d+)s\]\)\)\[(\d+)s:(\d+)s\]\)$"
    )
    SAMPLES = re.compile(r"^sum\(increase\(\w+_count\{[^}]*\}\[(\d+)s\]\)\)$")
    AGE = re.compile(r"^time\(\) - max\(timestamp\(")

    def __init__(self) -> None:
        self.view: SimView | None = None
        self.port = free_port()
        self.unknown: list[str] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def value(self, expr: str, at: float) -> float | None:
        view = self.view
        assert view is not None
        assert at == view.now  # every query is evaluated at the step's instant
        window = SPEC.objective.window_seconds
        if m := self.LATENCY.match(expr):
            obs = view.observe(int(m[2]), float(m[1]))
            return None if obs.latency_ms is None else obs.latency_ms / 1000.0
        if m := self.RATE.match(expr):
            span = int(m[1])
            obs = view.observe(window, SPEC.quantile, span)
            return obs.request_rate if span == window else obs.recent_request_rate
        if m := self.PEAK.match(expr):
            peak, inner, step = int(m[1]), int(m[2]), int(m[3])
            return view.observe(
                inner, SPEC.quantile, peak_s=peak, peak_step_s=step
            ).peak_request_rate
        if m := self.SAMPLES.match(expr):
            return view.observe(int(m[1]), SPEC.quantile).samples
        if self.AGE.match(expr):
            return view.observe(window, SPEC.quantile).age_seconds
        self.unknown.append(expr)
        return None

    BATCH = re.compile(r"^sum by \(variant\) \(rate\(inference_batch_duration_seconds_sum")
    SIZE = re.compile(r"^sum\(rate\(inference_batch_size_sum")

    def samples(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """The answer's series: the batch-time queries (by variant, and the mean batch size
        over the objective's window, as the workers export them), else one unlabelled
        value."""
        view = self.view
        assert view is not None
        if self.BATCH.match(expr) or self.SIZE.match(expr):
            batch = view.observe(SPEC.objective.window_seconds, SPEC.quantile).batch
            if batch is None:
                return []
            if self.SIZE.match(expr):
                size = batch.mean_batch_size
                return [] if size is None else [({}, size)]
            return [({"variant": v}, ms / 1000.0) for v, ms in batch.batch_ms_by_variant.items()]
        value = self.value(expr, at)
        return [] if value is None else [({}, value)]

    async def _query(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        at = float(params["time"])
        result = [
            {"metric": labels, "value": [at, "NaN" if math.isnan(v) else repr(float(v))]}
            for labels, v in self.samples(str(params["query"]), at)
        ]
        return web.json_response({"status": "success", "data": {"result": result}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class PlantActuator:
    """The `Actuator` port on the simulated plant: reads its configuration, hands a target
    back to the simulator to apply (as the Deployment and the workers would)."""

    view: SimView | None = None
    target: RuntimeConfig | None = None

    async def read(self) -> tuple[RuntimeConfig, int]:
        assert self.view is not None
        return self.view.config, self.view.ready_replicas

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        self.target = target
        return ApplyResult(replicas_set=True, config_written=True)


@dataclass
class ObjectStore:
    """The LatencySLO object: status and memory as last written."""

    status: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    async def save(self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None):
        if memory is not None:
            self.memory = copy.deepcopy(dict(memory))
        if status is not None:
            self.status = copy.deepcopy(dict(status))


class OperatorDriven:
    """A simulator controller that runs the operator's control loop as its daemon does: a step
    every interval, and between steps a look every `look_s` (`slo_operator.look.look`) that
    steps at once when it finds a clear breach, the next step half an interval later at
    least."""

    name = "operator-loop"

    def __init__(self, through_promql: bool = False) -> None:
        self.plant_metrics = PlantMetrics()
        self.prometheus = PlantPrometheus() if through_promql else None
        self.metrics: MetricsSource = self.plant_metrics
        self.actuator = PlantActuator()
        self.store = ObjectStore()
        self.loop: ControlLoop | None = None
        self.events = asyncio.new_event_loop()
        self.decisions: list[tuple[int, Decision]] = []
        self.early: int | None = None
        self.looks = 0
        if self.prometheus is not None:
            self.events.run_until_complete(self.prometheus.start())
            self.source = PrometheusSource(self.prometheus.url, timeout_s=5.0, max_age_s=60.0)
            self.metrics = self.source

    def close(self) -> None:
        if self.prometheus is not None:
            self.source.close()
            self.events.run_until_complete(self.prometheus.stop())
        self.events.close()

    def _new_loop(self, view: SimView) -> ControlLoop:
        loop = ControlLoop(
            name="sentiment",
            namespace="ml",
            metrics=self.metrics,
            actuator=self.actuator,
            profiles=PROFILES,
            store=self.store,
            limits=OperatorLimits(scrape_interval_s=view.scrape_interval_s),
        )
        loop.restore(self.store.status, self.store.memory)
        return loop

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        if t == 0:
            return None
        interval = SPEC.policy.interval_seconds
        due = t % interval == 0 and (self.early is None or t - self.early >= interval / 2)
        controller = self.loop.controller if self.loop is not None else None
        look_s = controller.params.look_s if controller is not None else None
        if not due and (look_s is None or t % round(look_s)):
            return None
        self.plant_metrics.view = self.actuator.view = view
        if self.prometheus is not None:
            self.prometheus.view = view
        if self.loop is None:
            self.loop = self._new_loop(view)
        if not due:
            self.looks += 1
            if not self.events.run_until_complete(look(self.loop, now=float(t))):
                return None
            self.early = t
        self.actuator.target = None
        result = self.events.run_until_complete(self.loop.step(SPEC, now=float(t)))
        if result.decision is not None:
            self.decisions.append((t, result.decision))
        return self.actuator.target


def sequence(decisions: list[tuple[int, Decision]]) -> list[tuple[Any, ...]]:
    """The decisions as compared: everything, the prediction to 1 ns (the PromQL path turns
    the quantile into seconds and back)."""
    return [
        (t, d.action.value, d.actions, d.target, d.apply, d.reason,
         None if d.predicted_latency_ms is None else round(d.predicted_latency_ms, 6))
        for t, d in decisions
    ]  # fmt: skip


@pytest.mark.parametrize("through_promql", [False, True], ids=["ports", "promql"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_simulator_and_the_operator_loop_decide_alike(seed: int, through_promql: bool) -> None:
    simulated = LatencySLOPolicy(SPEC, PROFILES)
    sim_trace = simulation(seed).run(simulated)
    operated = OperatorDriven(through_promql)
    try:
        loop_trace = simulation(seed).run(operated)
    finally:
        operated.close()
    if operated.prometheus is not None:
        assert operated.prometheus.unknown == []  # every query the operator sent was answered

    ours, theirs = sequence(simulated.decisions), sequence(operated.decisions)  # type: ignore[arg-type]
    interval = SPEC.policy.interval_seconds
    assert operated.looks > 0  # the loop looked between steps (10 s steps, a 5 s scrape)
    early = [step for step in ours if step[0] % interval]
    if seed == 1:  # on these arrivals a look answers the step at 120 s, in both
        assert early
    assert len(ours) >= DURATION_S // interval - 1
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"step {step} differs"
    # the scenario moves every knob the loop books: up, down, a bridge and its restore
    moved = {str(a) for step in ours if step[4] for a in step[2]}
    assert {"ScaleUp", "ScaleDown", "DegradeVariant", "RestoreVariant"} <= moved
    # ... and so the plant lived the same run: same replicas, variants and latencies
    assert np.array_equal(sim_trace.desired, loop_trace.desired)
    assert np.array_equal(sim_trace.variant, loop_trace.variant)
    assert np.array_equal(sim_trace.hist, loop_trace.hist)
    # the loop measured over the controller's own ranges, the simulator's scrape interval
    if not through_promql:
        assert operated.plant_metrics.ranges_asked[0] == Ranges(30, 10, 10, 5)
