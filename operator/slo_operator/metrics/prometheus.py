"""`PrometheusSource`: the `MetricsSource` port read from a Prometheus server.

Queries go through `PrometheusClient` (asynchronous httpx, no thread): each has an overall
deadline that starts when it gets a slot (queueing does not count), a size cap on the answer,
a fair share of bounded concurrency, and no retries: a slow or dead Prometheus costs at most
one deadline per query, never a hidden back-off that overruns the control interval. The
queries of one observation run concurrently, all evaluated at the observation's instant
(the API's `time` parameter), so its figures are one snapshot whatever
the order in which Prometheus answers them.

Every failure becomes data, never an exception: an unreachable server, an HTTP error, an empty
result (no series), NaN (no requests in the window) and a stale newest sample all give an
`Observation` with `latency_ms=None` and `error` saying why. A request rate below the objective's
`minRequestRate` is reported as measured (the policy and the status decide not to trust it).
The recent rate (about two intervals) and the peak rate (the highest 30 s rate within the
window) are optional refinements: when their queries fail they are None, nothing more.

Batch times: each observation also carries the workers' mean batch service time per variant
(`inference_batch_duration_seconds`) and the mean batch size (`inference_batch_size`) over the
window (`BatchMeasurement`); the controller turns them into its per-variant profile factors
(`slo_operator.policy.profiles`). When those two queries fail the observation has no batch
measurement, nothing more.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from slo_operator.errors import QueryError
from slo_operator.metrics.client import PrometheusClient
from slo_operator.metrics.promql import Queries, build_queries, target_labels
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import BatchMeasurement, Fault, Observation, Ranges

__all__ = ["PrometheusSource", "QueryError", "Sample", "parse_observation", "parse_vector"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant-vector result: its labels and value."""

    labels: Mapping[str, str]
    value: float


def parse_vector(result: Any) -> list[Sample]:
    """The `data.result` list of an instant query as samples; raises QueryError on bad shape."""
    if not isinstance(result, list):
        raise QueryError(f"unexpected query result {result!r:.200}")
    samples: list[Sample] = []
    for item in result:
        try:
            labels = dict(item.get("metric", {}))
            value = float(item["value"][1])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise QueryError(f"unexpected series in query result: {item!r:.200}") from exc
        samples.append(Sample(labels, value))
    return samples


def single_value(samples: list[Sample]) -> float | None:
    """The value of a one-series result; None for an empty result."""
    if not samples:
        return None
    return samples[0].value


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def parse_observation(
    *,
    now: float,
    ready_replicas: int,
    latency: list[Sample] | QueryError,
    rate: list[Sample] | QueryError,
    samples: list[Sample] | QueryError,
    age: list[Sample] | QueryError,
    max_age_s: float,
    recent_rate: list[Sample] | QueryError | None = None,
    peak_rate: list[Sample] | QueryError | None = None,
    batch: BatchMeasurement | None = None,
    ranges: Ranges | None = None,
    where: str = "",
    served_latency: list[Sample] | QueryError | None = None,
) -> Observation:
    """Turn the query outcomes into an Observation (pure; the unit tests' subject). The
    four first are required; the others are refinements, None when they failed."""
    errors = [r for r in (latency, rate, samples, age) if isinstance(r, QueryError)]
    if errors:
        return Observation.failed(
            now, ready_replicas, f"Prometheus query failed: {errors[0]}", Fault.QUERY_FAILED, ranges
        )
    assert not isinstance(latency, QueryError)
    assert not isinstance(rate, QueryError)
    assert not isinstance(samples, QueryError)
    assert not isinstance(age, QueryError)

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    rate_v = single_value(rate)
    samples_v = single_value(samples)
    age_v = finite(single_value(age))
    p_seconds = single_value(latency)
    rate_f = finite(rate_v)
    samples_f = finite(samples_v)
    base = {
        "at": now,
        "request_rate": rate_f,
        "samples": samples_f,
        "age_seconds": age_v,
        "ready_replicas": ready_replicas,
        "recent_request_rate": (
            finite(single_value(recent_rate)) if isinstance(recent_rate, list) else None
        ),
        "peak_request_rate": (
            finite(single_value(peak_rate)) if isinstance(peak_rate, list) else None
        ),
        "ranges": ranges,
        "batch": batch,
        "served_latency_ms": served_ms(served_latency),
    }
    suffix = f" {where}" if where else ""
    if p_seconds is None:
        return Observation(
            latency_ms=None,
            error=f"no data: no latency series{suffix} in Prometheus",
            fault=Fault.NO_DATA,
            **base,
        )
    if math.isnan(p_seconds):
        return Observation(
            latency_ms=None,
            error=f"no data: no requests in the window{suffix} (the quantile is NaN)",
            fault=Fault.NO_DATA,
            **base,
        )
    if not math.isfinite(p_seconds) or p_seconds < 0:
        return Observation(
            latency_ms=None,
            error=f"no data: the quantile is {p_seconds}{suffix}",
            fault=Fault.NO_DATA,
            **base,
        )
    if age_v is None:
        return Observation(
            latency_ms=None,
            error=f"no data: cannot tell the age of the samples{suffix}",
            fault=Fault.NO_DATA,
            **base,
        )
    if age_v > max_age_s:
        return Observation(
            latency_ms=None,
            error=f"stale: the newest sample{suffix} is {_fmt(age_v)}s old (> {_fmt(max_age_s)}s)",
            fault=Fault.STALE,
            **base,
        )
    return Observation(latency_ms=p_seconds * 1000.0, **base)


def served_ms(outcome: list[Sample] | QueryError | None) -> float | None:
    """The served quantile in ms: None when unknown (the query failed, or was not asked);
    NaN when nothing but refusals is in the window (an empty result: no other series, or a
    NaN quantile: none of them counted a request)."""
    if outcome is None or isinstance(outcome, QueryError):
        return None
    value = single_value(outcome)
    if value is None or math.isnan(value):
        return math.nan
    return value * 1000.0 if math.isfinite(value) and value >= 0 else None


def batch_measurement(
    by_variant: list[Sample] | QueryError, size: list[Sample] | QueryError
) -> BatchMeasurement | None:
    """The batch-time query results as a measurement (None when either query failed)."""
    if isinstance(by_variant, QueryError) or isinstance(size, QueryError):
        return None
    measured = {
        s.labels["variant"]: s.value * 1000.0
        for s in by_variant
        if "variant" in s.labels and math.isfinite(s.value)
    }
    return BatchMeasurement(measured, single_value(size))


class PrometheusSource:
    """Observations and measured profiles from Prometheus, one LatencySLO at a time (the local
    demo and the tests; the operator batches, `slo_operator.metrics.batch`)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_age_s: float = 60.0,
        on_error: Callable[[str], None] | None = None,
        client: PrometheusClient | None = None,
        target: tuple[str, str] | None = None,
    ) -> None:
        """`target` = (label, value): also select `label="value"` (the target Deployment's
        series) unless the spec's `metrics.labels` sets that label."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        """Newest sample older than this -> stale (the operator passes `--max-data-age`, the
        same value its controller's `stale_after_s` holds)."""
        self.on_error = on_error
        self.target = target
        self._own_client = client is None
        self.client = client or PrometheusClient(
            self.url, timeout_s=timeout_s, concurrency=len(fields(Queries))
        )  # one observation's queries at once

    def close(self) -> None:
        """Close the client when called inside a running event loop (else `aclose`)."""
        if not self._own_client:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.client.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def query(self, expr: str, at: float | None = None, key: str = "") -> list[Sample]:
        """One instant query evaluated at `at` (epoch seconds; Prometheus' own clock when
        None), under the client's deadline, size cap and fair share (`key`); raises
        QueryError on any failure."""
        return parse_vector(await self.client.query(expr, at, key=key))

    async def _outcome(self, expr: str, at: float, key: str) -> list[Sample] | QueryError:
        try:
            return await self.query(expr, at, key)
        except QueryError as exc:
            return exc

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        try:
            labels = target_labels(spec, self.target[1], self.target[0]) if self.target else None
            queries = build_queries(spec, namespace, ranges=ranges, labels=labels)
        except ValueError as exc:
            why = f"cannot build the query: {exc}"
            return Observation.failed(now, ready_replicas, why, Fault.NO_DATA, ranges)
        # all at the same instant `now`: one observation is one snapshot, whatever the
        # order in which Prometheus answers the queries
        latency, rate, samples, age, recent, peak, by_variant, size, served = await asyncio.gather(
            *(self._outcome(expr, now, namespace) for expr in _in_order(queries))
        )
        observation = parse_observation(
            now=now,
            ready_replicas=ready_replicas,
            latency=latency,
            rate=rate,
            samples=samples,
            age=age,
            recent_rate=recent,
            peak_rate=peak,
            batch=batch_measurement(by_variant, size),
            ranges=ranges,
            max_age_s=self.max_age_s,
            where=f"for {spec.metrics.histogram} in namespace {namespace}",
            served_latency=served,
        )
        if self.on_error is not None and any(
            isinstance(r, QueryError) for r in (latency, rate, samples, age)
        ):
            self.on_error(observation.error or "query failed")
        return observation


_CLOSING: set[asyncio.Task[None]] = set()


def _in_order(queries: Queries) -> tuple[str, ...]:
    """The queries in the order `parse_observation` takes their outcomes."""
    return (
        queries.latency,
        queries.request_rate,
        queries.samples,
        queries.data_age,
        queries.recent_request_rate,
        queries.peak_request_rate,
        queries.batch_seconds_by_variant,
        queries.mean_batch_size,
        queries.served_latency,
    )
