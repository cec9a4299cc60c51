"""A simulator baseline (`slo_operator.sim.baselines`) driving the real workers.

`latencyslo demo --policy NAME[:VARIANT]` runs the same scenario, the same arrivals and the
same worker processes as the default run, with the baseline's own algorithm (HPA on CPU, HPA
on the p99, KEDA on the request rate, Knative's KPA) deciding the replicas through the
`LocalActuator` instead of latencyslo's controller. The baseline objects are the simulator's
very classes: they act on a view of the run (`RealView`) with the `SimView` methods they
read, filled from the real run:

- `busy_share` (the HPA's CPU utilization): the share of wall time each ready worker's model
  was busy (`inference_batch_duration_seconds_sum` rate over the span), averaged over the
  ready replicas: the simulator's definition of the HPA's "CPU", and what a one-thread
  worker with a guaranteed core would use. (Its `process_cpu_seconds_total` would read low
  on a machine busy with other work, where the worker gets less than a core: an HPA on it
  never scaled in such a run, which says more about the machine than about the HPA.)
- `observe` (the p99 and request rates a Prometheus query gives), `request_rate` (KPA rps)
  and `concurrency` (KPA, time-averaged requests in flight): from what the clients
  recorded, up to the last whole second (no scrape delay: if anything, in the baseline's
  favour);
- `config`, `ready_replicas`, `starting_replicas`: the actuator's replica set.

The baseline's one setting (its target) is the simulator's default (`DEFAULT_SETTING`),
converted by a simulated load test of one replica of the served variant on the profile as
measured on this machine (`calibrate_fleet`): a careful user's load test before configuring
an autoscaler. `NAME:VARIANT` serves a fixed variant (a fleet of `quantized`, say); the
default serves the preferred one. Baselines never move the batch window or the variant.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_local.actuator import LocalActuator, State
from slo_local.demo.probe import WorkerCounters, read_all
from slo_local.loadgen import LoadGenerator
from slo_operator.model.histogram import histogram_quantile
from slo_operator.sim.baselines import (
    BASELINES,
    DEFAULT_SETTING,
    FleetCalibration,
    calibrate_fleet,
    make_baseline,
    target_value,
)
from slo_operator.sim.engine import PEAK_RANGE_S, SimSettings
from slo_operator.sim.policies import BASELINE_WINDOW_MS
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, ProfileSet, Ranges, RuntimeConfig

OURS = "latencyslo"


class PolicyError(ValueError):
    """A `--policy` / `--compare` value that names no baseline (the message says which)."""


@dataclass(frozen=True)
class BaselineChoice:
    name: str
    variant: str | None = None
    """A fixed variant (None: the preferred one)."""

    @property
    def label(self) -> str:
        return self.name if self.variant is None else f"{self.name}:{self.variant}"


def parse_policy(text: str, spec: LatencySLOSpec) -> BaselineChoice:
    """`NAME` or `NAME:VARIANT`, NAME one of the simulator's baselines."""
    name, _, variant = text.partition(":")
    if name not in BASELINES:
        raise PolicyError(
            f"--policy {text!r}: one of {', '.join(BASELINES)} (optionally NAME:VARIANT)"
        )
    if variant and variant not in spec.variants.allowed:
        raise PolicyError(
            f"--policy {text!r}: variant {variant!r} is not one of the SLO's "
            f"{', '.join(spec.variants.allowed)}"
        )
    return BaselineChoice(name, variant or None)


@dataclass(frozen=True)
class Baseline:
    """One baseline, configured for this SLO and this machine."""

    choice: BaselineChoice
    target: float
    """In `target_value`'s unit (utilization, ms, req/s or requests in flight)."""
    calibration: FleetCalibration
    start: RuntimeConfig

    def fresh(self, spec: LatencySLOSpec) -> Any:
        """A new policy object (the real run and the simulation each get their own)."""
        return make_baseline(self.choice.name, spec, self.start, self.target)

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.choice.label,
            "setting": DEFAULT_SETTING[self.choice.name],
            "target": round(self.target, 4),
            "one_replica_capacity_rps": round(self.calibration.capacity_rps, 2),
            "inflight_at_capacity": round(self.calibration.inflight_at_capacity, 3),
            "variant": self.start.variant,
        }


def configure(
    choice: BaselineChoice,
    spec: LatencySLOSpec,
    profiles: ProfileSet,
    initial: RuntimeConfig,
    settings: SimSettings,
) -> Baseline:
    """The baseline's target from a simulated load test of one replica (`profiles`: the
    profile as measured on this machine)."""
    variant = choice.variant or spec.variants.effective_preferred
    cal = calibrate_fleet(spec, profiles, variant, settings, None)
    target = target_value(choice.name, DEFAULT_SETTING[choice.name], spec, cal)
    window = max(BASELINE_WINDOW_MS, spec.batching.min_window_ms)
    start = initial.with_(variant=variant, batch_window_ms=window)
    return Baseline(choice, target, cal, start)


class RealView:
    """The `SimView` methods the baselines read, from the real run (see module docs)."""

    SAMPLE_S = 0.25

    def __init__(self, actuator: LocalActuator, loadgen: LoadGenerator, t0: float) -> None:
        self.actuator = actuator
        self.loadgen = loadgen
        self.t0 = t0
        self._inflight: deque[tuple[float, int]] = deque(maxlen=4 * 600)
        self._cpu: dict[str, deque[tuple[float, float]]] = {}

    # ------------------------------------------------------------------ sampling

    def _t(self) -> float:
        return time.monotonic() - self.t0

    def sample_inflight(self) -> None:
        self._inflight.append((self._t(), self.loadgen.in_flight))

    async def sample_cpu(self) -> None:
        """Read every running worker's model-busy counter (for `busy_share`)."""
        urls = {r.url: r for r in self.actuator.running()}
        got: dict[str, WorkerCounters] = await read_all(urls)
        now = self._t()
        for url, counters in got.items():
            busy = sum(counters.batch_s.values())
            self._cpu.setdefault(url, deque(maxlen=700)).append((now, busy))
        for url in list(self._cpu):
            if url not in urls:
                del self._cpu[url]

    # ------------------------------------------------------------------ SimView

    @property
    def now(self) -> int:
        return int(self._t())

    @property
    def config(self) -> RuntimeConfig:
        return self.actuator.desired

    @property
    def ready_replicas(self) -> int:
        return self.actuator.snapshot().ready

    @property
    def starting_replicas(self) -> int:
        return self.actuator.snapshot().starting

    @property
    def scrape_interval_s(self) -> int:
        return 1

    def last_scrape(self) -> int:
        return self.now

    def _completions(self, start: float, end: float) -> list[float]:
        """Latencies (s) of the requests completed in [start, end); failures as inf."""
        out = []
        for r in reversed(self.loadgen.records):
            if r.due < start - 60.0:
                break
            if start <= r.done < end:
                out.append(r.latency if r.ok else math.inf)
        return out

    def _arrivals(self, start: float, end: float) -> int:
        sent = self.loadgen.arrivals[: self.loadgen.sent]
        return int(np.searchsorted(sent, end) - np.searchsorted(sent, start))

    def request_rate(self, span_s: int, lag_s: int = 0) -> float:
        end = max(0, self.now - lag_s)
        start = max(0, end - span_s)
        return self._arrivals(start, end) / max(1, end - start)

    def observe(
        self,
        window_s: int,
        quantile: float,
        recent_s: int | None = None,
        *,
        peak_s: int = PEAK_RANGE_S,
        peak_step_s: int | None = None,
    ) -> Observation:
        end = self.now
        start = max(0, end - window_s)
        span = end - start
        lat_ms = np.asarray(self._completions(start, end)) * 1000.0
        edges = list(LATENCY_BUCKETS_MS)
        counts = np.bincount(
            np.searchsorted(np.asarray(edges), lat_ms, side="left"), minlength=len(edges) + 1
        )
        p = histogram_quantile(quantile, edges, counts.tolist()) if len(lat_ms) else math.nan
        rate = self._arrivals(start, end) / span if span > 0 else None
        recent = None
        if recent_s and end > 0:
            rs = max(0, end - recent_s)
            recent = self._arrivals(rs, end) / (end - rs)
        peak = None
        if span >= peak_s:
            step = peak_step_s or 1
            ends = range(end, start + peak_s - 1, -step)
            peak = max(self._arrivals(e - peak_s, e) / peak_s for e in ends)
        return Observation(
            at=float(end),
            latency_ms=None if math.isnan(p) else float(p),
            request_rate=rate,
            samples=float(len(lat_ms)),
            age_seconds=0.0 if span > 0 else None,
            ready_replicas=self.ready_replicas,
            recent_request_rate=recent,
            peak_request_rate=peak,
            ranges=Ranges(
                window_s=window_s,
                recent_s=recent_s or window_s,
                peak_s=peak_s,
                peak_step_s=peak_step_s or 1,
            ),
        )

    def busy_share(self, span_s: int) -> float:
        """Mean share of time the ready workers' models were busy over the last `span_s`."""
        ready = [r.url for r in self.actuator.running() if r.state is State.READY]
        now = self._t()
        shares = []
        for url in ready:
            hist = self._cpu.get(url)
            if not hist or len(hist) < 2:
                continue
            t_end, c_end = hist[-1]
            first = next(((t, c) for t, c in hist if t >= now - span_s - 0.5), hist[0])
            if t_end - first[0] > 0.5:
                shares.append((c_end - first[1]) / (t_end - first[0]))
        return sum(shares) / len(shares) if shares else 0.0

    def concurrency(self, span_s: int) -> float:
        now = self._t()
        seg = [n for t, n in self._inflight if t >= now - span_s]
        return float(sum(seg) / len(seg)) if seg else 0.0

    def inflight(self, span_s: int) -> float:
        return self.concurrency(span_s)
