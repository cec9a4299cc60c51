"""What the warm replica really does on this machine, now: read from its own `/metrics`.

The demo sizes its load from the machine as it is (not from a shipped profile alone, which
was timed on another day, on an idle core): before the warm-up it sends a short open-loop
probe to the one warm replica and reads the worker's own counters before and after:

- `inference_batch_duration_seconds` (sum and count, per variant) and `inference_batch_size`
  (sum and count): the mean batch time at the mean batch size, over the profile's
  prediction at that size, is the machine's factor right now (`factor`, the controller's own
  definition, `slo_operator.policy.profiles.measured_factors`, without its clamp);
- `process_cpu_seconds_total` minus the batch time, per request: the worker's CPU per
  request outside the model (HTTP, JSON, routing into the batcher), which the batch times
  do not contain but which takes the same core (`overhead_ms`).

The same counters read at the start of the load give the simulator the per-request
overhead the run really had.

Batch times at the probe's small batches do not say how far batching carries one replica, so
before that probe the demo also drives the replica flat out from the client, two seconds at
each of 8, 16 and 32 requests in flight (`saturation_rps`): the most requests per second it
answered, HTTP and the client included, is its saturation. The demo's load step is sized over
that figure.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from slo_operator.policy.profiles import measured_factors
from slo_operator.types import BatchMeasurement, ProfileSet


@dataclass(frozen=True)
class WorkerCounters:
    """One worker's cumulative counters at one instant."""

    cpu_s: float
    batch_s: dict[str, float] = field(default_factory=dict)
    """Model time of all batches, seconds, per variant."""
    batches: dict[str, float] = field(default_factory=dict)
    batch_size_sum: float = 0.0
    batch_size_count: float = 0.0
    requests: float = 0.0
    """Predict requests answered (any code)."""


def parse_counters(text: str) -> WorkerCounters:
    """The counters of one `/metrics` page (missing series count as zero)."""
    cpu = 0.0
    batch_s: dict[str, float] = {}
    batches: dict[str, float] = {}
    size_sum = size_count = requests = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "process_cpu_seconds_total":
                cpu = float(s.value)
            elif s.name == "inference_batch_duration_seconds_sum":
                v = s.labels.get("variant", "")
                batch_s[v] = batch_s.get(v, 0.0) + float(s.value)
            elif s.name == "inference_batch_duration_seconds_count":
                v = s.labels.get("variant", "")
                batches[v] = batches.get(v, 0.0) + float(s.value)
            elif s.name == "inference_batch_size_sum":
                size_sum += float(s.value)
            elif s.name == "inference_batch_size_count":
                size_count += float(s.value)
            elif s.name == "inference_requests_total":
                requests += float(s.value)
    return WorkerCounters(cpu, batch_s, batches, size_sum, size_count, requests)


async def read_counters(client: httpx.AsyncClient, url: str) -> WorkerCounters | None:
    """`url`'s `/metrics` as counters; None when it does not answer."""
    try:
        resp = await client.get(url.rstrip("/") + "/metrics", timeout=5.0)
        resp.raise_for_status()
        return parse_counters(resp.text)
    except (httpx.HTTPError, ValueError):
        return None


async def read_all(urls: Iterable[str]) -> dict[str, WorkerCounters]:
    """Counters of every worker that answers, by URL."""
    urls = list(urls)
    async with httpx.AsyncClient() as client:
        got = await asyncio.gather(*(read_counters(client, u) for u in urls))
    return {u: c for u, c in zip(urls, got, strict=True) if c is not None}


@dataclass(frozen=True)
class Measurement:
    """What one worker did between two readings."""

    variant: str
    """The variant that served the most batches."""
    batch_ms: float
    mean_batch_size: float
    factor: float | None
    """Measured over predicted batch time at `mean_batch_size` (None: no profile for it)."""
    overhead_ms: float
    """CPU per request outside the model's batches (>= 0)."""
    requests: float
    batches: float

    def describe(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "batch_ms": round(self.batch_ms, 3),
            "mean_batch_size": round(self.mean_batch_size, 3),
            "factor": None if self.factor is None else round(self.factor, 4),
            "overhead_ms_per_request": round(self.overhead_ms, 4),
            "requests": int(self.requests),
            "batches": int(self.batches),
        }


def measure(
    before: WorkerCounters, after: WorkerCounters, profiles: ProfileSet
) -> Measurement | None:
    """The worker's batch time, factor and per-request overhead between two readings; None
    when it served no batch in between."""
    batches = {v: after.batches.get(v, 0.0) - before.batches.get(v, 0.0) for v in after.batches}
    served = {v: n for v, n in batches.items() if n > 0}
    if not served:
        return None
    variant = max(served, key=lambda v: served[v])
    n = served[variant]
    batch_s = after.batch_s.get(variant, 0.0) - before.batch_s.get(variant, 0.0)
    all_batch_s = sum(after.batch_s.values()) - sum(before.batch_s.values())
    size_n = after.batch_size_count - before.batch_size_count
    size = (after.batch_size_sum - before.batch_size_sum) / size_n if size_n > 0 else math.nan
    batch_ms = batch_s / n * 1000.0
    requests = after.requests - before.requests
    # not clamped to the controller's limits: a machine five times slower than the profile
    # (other work on it) is sized as such
    factors = measured_factors(
        profiles, BatchMeasurement({variant: batch_ms}, size), limits=(1e-3, 1e3)
    )
    cpu = after.cpu_s - before.cpu_s
    overhead = max(0.0, (cpu - all_batch_s) / requests * 1000.0) if requests > 0 else 0.0
    return Measurement(
        variant=variant,
        batch_ms=batch_ms,
        mean_batch_size=size,
        factor=factors.get(variant),
        overhead_ms=overhead,
        requests=requests,
        batches=sum(served.values()),
    )


SATURATION_S = 2.0
"""Seconds of each flat-out measurement (`saturation_rps`)."""
SATURATION_LEVELS = (8, 16, 32)
"""Requests kept in flight, one level after the other. One worker of the demo model answered
134, 181, 212, 187 and 154 req/s with 4, 8, 16, 32 and 64 in flight (alone on a core): past
an optimum, whole batches go out and come back together, and the replica idles between them.
An open-loop load below the optimum keeps few requests in flight, so the most any level
answered is what one replica sustains."""
SATURATION_SETTLE_S = 0.5
"""Answers in the first half second of each level are not counted (batches settling)."""


async def answered_rps(
    url: str,
    texts: Sequence[str],
    *,
    seconds: float = SATURATION_S,
    concurrency: int = 16,
    settle_s: float = SATURATION_SETTLE_S,
) -> float | None:
    """Requests per second the worker at `url` answers with `concurrency` in flight,
    measured from the client.

    `concurrency` clients, one keep-alive connection each, send the next request as soon as
    their last is answered, for `seconds`. The answers (HTTP 200) that arrive between
    `settle_s` and `seconds` over that time: model, HTTP and the client's own CPU as they
    share this machine now, which no batch-time measurement contains. None when fewer than
    10 answers arrived in that time.
    """
    if not (seconds > settle_s >= 0 and concurrency >= 1):
        raise ValueError(f"need seconds > settle_s >= 0 and concurrency >= 1, got "
                         f"{seconds}, {settle_s}, {concurrency}")  # fmt: skip
    body = [{"inputs": [texts[i % len(texts)]]} for i in range(max(1, len(texts)))]
    start = time.monotonic()
    end = start + seconds
    answered: list[float] = []
    tls = ssl.create_default_context()  # plain HTTP, but httpx builds one per client (~20 ms)

    async def client(k: int) -> None:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(max(5.0, 2 * seconds)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            verify=tls,
        ) as c:
            i = k
            while time.monotonic() < end:
                try:
                    resp = await c.post(url.rstrip("/") + "/v1/predict", json=body[i % len(body)])
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)  # a refused or reset connection: not counted
                    continue
                if resp.status_code == 200:
                    answered.append(time.monotonic() - start)
                i += concurrency

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    counted = sum(1 for t in answered if settle_s <= t <= seconds)
    return counted / (seconds - settle_s) if counted >= 10 else None


async def saturation_rps(
    url: str,
    texts: Sequence[str],
    *,
    levels: Sequence[int] = SATURATION_LEVELS,
    seconds: float = SATURATION_S,
) -> tuple[float | None, dict[int, float | None]]:
    """The most requests per second the worker at `url` answered at any of `levels` in
    flight (`answered_rps` at each), and the figure per level; None when no level had one."""
    per_level = {n: await answered_rps(url, texts, seconds=seconds, concurrency=n) for n in levels}
    got = [r for r in per_level.values() if r is not None]
    return (max(got) if got else None), per_level
