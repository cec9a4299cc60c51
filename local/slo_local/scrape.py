"""`DirectScrape`: the `MetricsSource` port without a Prometheus server.

The local demo uses it when the `prometheus` binary is not on PATH. It scrapes every worker's
`/metrics` itself (every `interval_s`, parsed with prometheus_client's own text parser),
keeps the samples in memory, and answers the very queries `PrometheusSource` sends
(`slo_operator.metrics.promql.build_queries`) the way Prometheus evaluates them:

- `rate(x[R])` / `increase(x[R])` per series over the samples in `[now - R, now]`, with
  Prometheus's extrapolation to the range boundaries, counter-reset handling and the
  "zero point" limit for a series that starts inside the range (`extrapolated_rate`, a
  transcription of `extrapolatedRate` in promql/functions.go);
- `sum by (le)` over the series that match the objective's labels, then `histogram_quantile`
  with PromQL's interpolation (`slo_operator.model.histogram`, after PromQL's monotonicity
  fix of the cumulative counts);
- the peak rate: `max_over_time` of the short-range rate over the window, evaluated as a
  PromQL subquery (at the step's multiples in epoch time);
- the age of the data: seconds since the newest sample (at or before the instant, within
  Prometheus's 5-minute look-back) of the request counter of a target that is still
  scraped successfully.

Each target carries labels (the demo gives every worker `namespace`, as Prometheus' file_sd
does), so the objective's namespace and extra label matchers select the same series as the
PromQL. Missing, stale or NaN data and scrape failures become "no data" observations, never
exceptions (the same messages as `PrometheusSource`, via `parse_observation`). Each
observation carries the measured batch times (`BatchMeasurement`) as `PrometheusSource`'s do;
the controller turns them into its profile factors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

import httpx
from prometheus_client.parser import text_string_to_metric_families

from slo_operator.errors import QueryError
from slo_operator.metrics.prometheus import Sample, parse_observation
from slo_operator.metrics.promql import BATCH_DURATION, BATCH_SIZE
from slo_operator.model.histogram import histogram_quantile
from slo_operator.policy.params import default_ranges
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import BatchMeasurement, Fault, Observation, Ranges

log = logging.getLogger(__name__)

Labels = frozenset[tuple[str, str]]
KEPT_SUFFIXES = ("_bucket", "_count", "_sum", "_total")
"""Only counters and histogram parts are kept (nothing here reads gauges)."""
SeriesKey = tuple[str, Labels]
LOOKBACK_S = 300.0
"""Prometheus's default query look-back: an instant selector sees samples this old at most."""


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One `/metrics` endpoint and the labels attached to all of its series."""

    instance: str
    """`host:port`, also the `instance` label."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.instance}/metrics"


def extrapolated_rate(
    points: list[tuple[float, float]], start: float, end: float, *, is_rate: bool
) -> float | None:
    """Prometheus's `rate` (is_rate) or `increase` of a counter over `[start, end]`.

    `points` are the (time s, value) samples inside the range, oldest first; None when there
    are fewer than two (Prometheus drops the series).
    """
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    previous = first_v
    for _, value in points[1:]:
        if value < previous:  # counter reset
            result += previous
        previous = value
    to_start = first_t - start
    to_end = end - last_t
    sampled = last_t - first_t
    if sampled <= 0:
        return None
    average = sampled / (len(points) - 1)
    if result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    factor = interval / sampled
    if is_rate:
        factor /= end - start
    return result * factor


def _subquery_times(at: float, range_s: float, step_s: int) -> list[float]:
    """Evaluation times of a PromQL subquery `[range:step]` at `at`: the multiples of the
    step (in epoch milliseconds) from `at - range` to `at`, both included."""
    step_ms = step_s * 1000
    end_ms = int(at * 1000)
    start_ms = end_ms - int(range_s * 1000)
    first = step_ms * (start_ms // step_ms)
    if first < start_ms:
        first += step_ms
    return [t / 1000.0 for t in range(first, end_ms + 1, step_ms)]


def quantile_from_buckets(q: float, buckets: Mapping[float, float]) -> float:
    """PromQL `histogram_quantile(q, ...)` of one set of cumulative buckets keyed by `le`."""
    if not buckets or not math.isinf(max(buckets)):
        return math.nan
    bounds = sorted(buckets)
    cumulative: list[float] = []
    running = 0.0
    for le in bounds:  # PromQL's ensureMonotonic
        running = max(running, buckets[le])
        cumulative.append(running)
    if len(bounds) < 2:
        return math.nan
    counts = [cumulative[0]] + [b - a for a, b in pairwise(cumulative)]
    return histogram_quantile(q, bounds[:-1], counts)


class _Series:
    """The samples of one series, oldest first."""

    __slots__ = ("target", "times", "values")

    def __init__(self, target: str) -> None:
        self.target = target
        self.times: list[float] = []
        self.values: list[float] = []

    def between(self, start: float, end: float) -> list[tuple[float, float]]:
        lo, hi = bisect_left(self.times, start), bisect_right(self.times, end)
        return [
            (t, v)
            for t, v in zip(self.times[lo:hi], self.values[lo:hi], strict=True)
            if math.isfinite(v)
        ]

    def newest(self, at: float, lookback_s: float) -> float | None:
        """Time of the newest sample at or before `at` and at most `lookback_s` older (whatever
        its value, as PromQL's `timestamp()`: only staleness markers hide a sample, and a
        scrape stores none here), or None."""
        i = bisect_right(self.times, at) - 1
        return self.times[i] if i >= 0 and self.times[i] >= at - lookback_s else None

    def drop_before(self, horizon: float) -> None:
        cut = bisect_left(self.times, horizon)
        if cut:
            del self.times[:cut], self.values[:cut]


class DirectScrape:
    """Scrape the workers' `/metrics` and evaluate the operator's queries (see module docs)."""

    def __init__(
        self,
        targets: Callable[[], Iterable[ScrapeTarget]],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 1.0,
        max_age_s: float = 60.0,
        retention_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        deployment: str | None = None,
    ) -> None:
        self.targets = targets
        self.deployment = deployment
        """The `deployment` label given to targets that have none (as the chart's PodMonitor
        attaches it to every worker series)."""
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.retention_s = retention_s
        self.clock = clock
        self._series: dict[SeriesKey, _Series] = {}
        self._last_ok: dict[str, float] = {}
        """instance -> time of its last successful scrape."""
        self._live: set[str] = set()
        """Instances that are targets now and answered their last scrape."""
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.scrapes = 0
        self.errors = 0

    # ------------------------------------------------------------------ scraping

    async def start(self) -> DirectScrape:
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
        self._task = asyncio.create_task(self._loop(), name="direct-scrape")
        return self

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.scrape_once()
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def scrape_once(self) -> None:
        """Scrape every current target once, concurrently."""
        own = self._http is None
        if own:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
        try:
            targets = list(self.targets())
            at = self.clock()
            await asyncio.gather(*(self._scrape(t, at) for t in targets))
            self._live &= {t.instance for t in targets}
            self._prune(at)
        finally:
            if own:
                assert self._http is not None
                await self._http.aclose()
                self._http = None

    async def _scrape(self, target: ScrapeTarget, at: float) -> None:
        assert self._http is not None
        self.scrapes += 1
        try:
            resp = await self._http.get(target.url)
            resp.raise_for_status()
            self.ingest(target, resp.text, at)
        except (httpx.HTTPError, ValueError) as exc:
            self.errors += 1
            self._live.discard(target.instance)
            log.debug("scraping %s failed: %s", target.instance, exc)

    def ingest(self, target: ScrapeTarget, text: str, at: float) -> None:
        """Store one scrape of `target` (Prometheus text format) taken at `at`."""
        families = list(text_string_to_metric_families(text))  # ValueError if malformed
        extra = {
            **({"deployment": self.deployment} if self.deployment else {}),
            **target.labels,
            "instance": target.instance,
        }
        for family in families:
            for sample in family.samples:
                if not sample.name.endswith(KEPT_SUFFIXES):
                    continue
                labels: Labels = frozenset({**sample.labels, **extra}.items())
                key = (sample.name, labels)
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series(target.instance)
                series.times.append(at)
                series.values.append(float(sample.value))
        self._last_ok[target.instance] = at
        self._live.add(target.instance)

    def forget(self, instance: str) -> None:
        """`instance` is no longer a target (its samples stay for the ranges that hold them)."""
        self._live.discard(instance)

    def _prune(self, now: float) -> None:
        horizon = now - self.retention_s
        for key in list(self._series):
            series = self._series[key]
            if series.times and series.times[0] < horizon:
                series.drop_before(horizon)
            if not series.times:
                del self._series[key]

    # ------------------------------------------------------------------ evaluation

    def _select(
        self, name: str, namespace: str, matchers: Mapping[str, str]
    ) -> Iterable[tuple[Labels, _Series]]:
        want = {"namespace": namespace, **matchers}
        for (metric, labels), series in self._series.items():
            if metric != name:
                continue
            have = dict(labels)
            if all(have.get(k) == v for k, v in want.items()):
                yield labels, series

    def rates(
        self,
        name: str,
        namespace: str,
        matchers: Mapping[str, str],
        range_s: float,
        at: float,
        *,
        is_rate: bool = True,
    ) -> list[tuple[dict[str, str], float]]:
        """`rate(name{namespace=..,matchers}[range_s])` (or increase) at `at`, per series."""
        start = at - range_s
        out: list[tuple[dict[str, str], float]] = []
        for labels, series in self._select(name, namespace, matchers):
            value = extrapolated_rate(series.between(start, at), start, at, is_rate=is_rate)
            if value is not None:
                out.append((dict(labels), value))
        return out

    @staticmethod
    def _sum(rows: Iterable[tuple[dict[str, str], float]]) -> list[Sample]:
        rows = list(rows)
        return [Sample({}, sum(v for _, v in rows))] if rows else []

    @staticmethod
    def _sum_by(label: str, rows: Iterable[tuple[dict[str, str], float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, value in rows:
            if label in labels:
                out[labels[label]] = out.get(labels[label], 0.0) + value
        return out

    def _age(self, name: str, namespace: str, matchers: Mapping[str, str], at: float) -> float:
        """`time() - max(timestamp(name{...}))` at `at`: each series' newest sample at or
        before `at` and within Prometheus's look-back, of targets still scraped."""
        newest = [
            t
            for _, series in self._select(name, namespace, matchers)
            if series.target in self._live and (t := series.newest(at, LOOKBACK_S)) is not None
        ]
        return at - max(newest) if newest else math.nan

    def evaluate(
        self, spec: LatencySLOSpec, namespace: str, at: float, ranges: Ranges | None = None
    ) -> dict[str, list[Sample]]:
        """The instant-query results PrometheusSource reads, evaluated on scraped samples."""
        r = ranges or default_ranges(spec)
        hist = spec.metrics.histogram
        labels = dict(spec.metrics.labels or {})
        if "namespace" in labels:
            raise QueryError("metrics.labels must not set 'namespace'")
        window = float(spec.objective.window_seconds)
        self.retention_s = max(self.retention_s, window + 60.0)
        buckets = self._sum_by("le", self.rates(f"{hist}_bucket", namespace, labels, window, at))
        by_le = {float(le): v for le, v in buckets.items()}
        latency = [Sample({}, quantile_from_buckets(spec.quantile, by_le))] if by_le else []
        count = f"{hist}_count"
        age = self._age(count, namespace, labels, at)
        recent = float(r.recent_s)
        peaks = [
            sum(v for _, v in rows)
            for ts in _subquery_times(at, window, r.peak_step_s)
            if (rows := self.rates(count, namespace, labels, float(r.peak_s), ts))
        ]
        return {
            "latency": latency,
            "rate": self._sum(self.rates(count, namespace, labels, window, at)),
            "recent": self._sum(self.rates(count, namespace, labels, recent, at)),
            "samples": self._sum(self.rates(count, namespace, labels, window, at, is_rate=False)),
            "age": [Sample({}, age)] if math.isfinite(age) else [],
            "peak": [Sample({}, max(peaks))] if peaks else [],
        }

    # ------------------------------------------------------------------ the port

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        try:
            results = self.evaluate(spec, namespace, now, ranges)
        except QueryError as exc:
            why = f"cannot evaluate the query: {exc}"
            return Observation.failed(now, ready_replicas, why, Fault.QUERY_FAILED, ranges)
        return parse_observation(
            now=now,
            ready_replicas=ready_replicas,
            latency=results["latency"],
            rate=results["rate"],
            samples=results["samples"],
            age=results["age"],
            recent_rate=results["recent"],
            peak_rate=results["peak"],
            batch=self.batch_measurement(spec, namespace, now),
            ranges=ranges,
            max_age_s=self.max_age_s,
            where=f"for {spec.metrics.histogram} in namespace {namespace} (direct scrape)",
        )

    def batch_measurement(
        self, spec: LatencySLOSpec, namespace: str, at: float
    ) -> BatchMeasurement:
        """Mean batch time per variant and mean batch size over the window, at `at`."""
        window = float(spec.objective.window_seconds)
        labels = dict(spec.metrics.labels or {})
        seconds = self._sum_by(
            "variant", self.rates(f"{BATCH_DURATION}_sum", namespace, labels, window, at)
        )
        batches = self._sum_by(
            "variant", self.rates(f"{BATCH_DURATION}_count", namespace, labels, window, at)
        )
        measured = {
            v: seconds[v] / n * 1000.0 for v, n in batches.items() if n > 0 and v in seconds
        }
        size_sum = self._sum(self.rates(f"{BATCH_SIZE}_sum", namespace, labels, window, at))
        size_count = self._sum(self.rates(f"{BATCH_SIZE}_count", namespace, labels, window, at))
        mean_size = None
        if size_sum and size_count and size_count[0].value > 0:
            mean_size = size_sum[0].value / size_count[0].value
        return BatchMeasurement(measured, mean_size)
