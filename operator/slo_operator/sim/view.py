"""What a controller can see of a running simulation (`SimView`): a Prometheus-style
observation (a histogram with the worker's bucket edges, scraped every `scrape_s`, read over
the objective's window and interpolated like `histogram_quantile`), request rates, CPU busy
time, requests in flight, batch service times (per variant, with the mean batch size: the
profile factors the operator measures). The view reads the simulation's per-second
records through `Recording`, the part of `engine.Simulation` it needs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.model.histogram import histogram_quantile
from slo_operator.sim.trace import SimSettings
from slo_operator.types import BatchMeasurement, Observation, Ranges, RuntimeConfig

PEAK_RANGE_S = 10
"""Default range of the short rates whose maximum over the window is the peak rate (a
controller passes its own, `slo_operator.policy.ControllerParams.ranges`)."""


class Recording(Protocol):
    """The running simulation as the view reads it (per-second arrays indexed by second)."""

    t: int
    config: RuntimeConfig
    settings: SimSettings
    hist: np.ndarray
    rejected: np.ndarray
    arrivals_per_s: np.ndarray
    busy: np.ndarray
    inflight: np.ndarray
    max_batch_s: np.ndarray
    conc_a: np.ndarray
    conc_ap: np.ndarray
    conc_d: np.ndarray
    conc_dp: np.ndarray
    batch_n: np.ndarray
    batch_size_sum: np.ndarray
    batch_s_by_variant: Mapping[str, tuple[np.ndarray, np.ndarray]]

    def ready_count(self) -> int: ...

    def starting_count(self) -> int: ...


class SimView:
    """What a controller can see of the running simulation at time t."""

    def __init__(self, sim: Recording) -> None:
        self._sim = sim

    @property
    def now(self) -> int:
        return self._sim.t

    @property
    def config(self) -> RuntimeConfig:
        return self._sim.config

    @property
    def ready_replicas(self) -> int:
        return self._sim.ready_count()

    @property
    def starting_replicas(self) -> int:
        return self._sim.starting_count()

    @property
    def scrape_interval_s(self) -> int:
        return self._sim.settings.scrape_s

    def last_scrape(self) -> int:
        s = self._sim.settings.scrape_s
        return (self._sim.t // s) * s

    def observe(
        self,
        window_s: int,
        quantile: float,
        recent_s: int | None = None,
        *,
        peak_s: int = PEAK_RANGE_S,
        peak_step_s: int | None = None,
    ) -> Observation:
        """The objective's quantile and request rate over the window, as Prometheus shows it
        (and the quantile over the requests not refused, NaN when none was served);
        the recent rate over `recent_s`, the peak over `peak_s` rates every `peak_step_s`
        (default: every scrape)."""
        sim, end = self._sim, self.last_scrape()
        start = max(0, end - window_s)
        counts = sim.hist[start:end].sum(axis=0)
        completed = float(counts.sum())
        span = end - start
        rate = float(sim.arrivals_per_s[start:end].sum()) / span if span > 0 else None
        p = histogram_quantile(quantile, LATENCY_BUCKETS_MS, counts.tolist())
        # the refused ones are in the +Inf bucket only, as the worker counts them
        served = counts.copy()
        served[-1] -= float(sim.rejected[start:end].sum())
        p_served = histogram_quantile(quantile, LATENCY_BUCKETS_MS, served.tolist())
        recent = None
        if recent_s and end > 0:
            rs = max(0, end - recent_s)
            recent = float(sim.arrivals_per_s[rs:end].sum()) / (end - rs)
        peak = None
        if span >= peak_s:
            # max_over_time(rate(count[peak_s])[window:step]): short rates at each step
            step = peak_step_s or self._sim.settings.scrape_s
            cum = np.concatenate(([0.0], np.cumsum(sim.arrivals_per_s[start:end])))
            ends = np.arange(span, peak_s - 1, -step)
            peak = float(((cum[ends] - cum[ends - peak_s]) / peak_s).max())
        return Observation(
            at=float(sim.t),
            latency_ms=None if math.isnan(p) else p,
            request_rate=rate,
            samples=completed,
            age_seconds=float(sim.t - end) if span > 0 else None,
            ready_replicas=sim.ready_count(),
            recent_request_rate=recent,
            peak_request_rate=peak,
            served_latency_ms=p_served,
            batch=self.batches(start, end),
            ranges=Ranges(
                window_s=window_s,
                recent_s=recent_s or window_s,
                peak_s=peak_s,
                peak_step_s=peak_step_s or self._sim.settings.scrape_s,
            ),
        )

    def batches(self, start: int, end: int) -> BatchMeasurement | None:
        """Mean batch time per variant that served in [start, end) and the mean batch size,
        as the workers' batch metrics give them (`rate(sum) / rate(count)`)."""
        sim = self._sim
        n = float(sim.batch_n[start:end].sum())
        if n <= 0:
            return None
        by_variant: dict[str, float] = {}
        for name, (times, counts) in sim.batch_s_by_variant.items():
            k = float(counts[start:end].sum())
            if k > 0:
                by_variant[name] = 1000.0 * float(times[start:end].sum()) / k
        return BatchMeasurement(by_variant, float(sim.batch_size_sum[start:end].sum()) / n)

    def request_rate(self, span_s: int, lag_s: int = 0) -> float:
        """Arrivals per second over the last span_s seconds, lag_s seconds ago."""
        end = max(0, self._sim.t - lag_s)
        start = max(0, end - span_s)
        return float(self._sim.arrivals_per_s[start:end].sum()) / max(1, end - start)

    def busy_share(self, span_s: int) -> float:
        """Mean share of time the ready replicas' models were busy (the CPU a HPA sees)."""
        t = self._sim.t
        seg = self._sim.busy[max(0, t - span_s) : t]
        return float(seg.mean()) if len(seg) else 0.0

    def inflight(self, span_s: int) -> float:
        """Mean requests in flight (queued or in service) over the last span_s seconds."""
        t = self._sim.t
        seg = self._sim.inflight[max(0, t - span_s) : t]
        return float(seg.mean()) if len(seg) else 0.0

    def concurrency(self, span_s: int) -> float:
        """Time-averaged requests in flight (queued or in service) over the last span_s
        seconds: the integral of the in-flight count, as Knative's queue-proxy reports it."""
        t = self._sim.t
        if t <= 0:
            return 0.0
        sim = self._sim
        net = np.cumsum(sim.conc_a[:t] - sim.conc_d[:t])
        before = np.concatenate(([0.0], net[:-1]))  # in flight at the start of each second
        per_s = before + sim.conc_ap[:t] - sim.conc_dp[:t]
        seg = per_s[max(0, t - span_s) :]
        return float(max(seg.mean(), 0.0)) if len(seg) else 0.0

    def max_batch_ms(self, span_s: int) -> float:
        """Longest batch service time over the last span_s seconds (ms), 0 without batches."""
        t = self._sim.t
        seg = self._sim.max_batch_s[max(0, t - span_s) : t]
        return float(seg.max()) * 1000.0 if len(seg) else 0.0
