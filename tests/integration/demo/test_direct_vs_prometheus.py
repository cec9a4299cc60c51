"""DirectScrape and a real Prometheus agree on the same traffic.

Two real workers (the slow fixture family, one request per batch: queues form and the
latencies spread over several buckets) serve Poisson load of a rising rate; Prometheus and
DirectScrape scrape them every second, and both answer the objective's queries at the same
instants.

Tolerance, and why: both evaluate the same `rate` extrapolation and the same
`histogram_quantile`, but on samples taken at different instants (each scrapes on its own
one-second phase). A 15 s window seen through two scrape phases differs by at most one
second of traffic at each end (< 15 % of its requests, ~5 % on average), which moves the
rate by about as much and can move the 99th-percentile rank across at most the bucket it
falls in. So the rates must agree within 10 %, and the quantiles within the width of the
bucket holding Prometheus' value (interpolation stays inside one bucket) or 10 %,
whichever is larger; the median difference over all instants must be under 5 %.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from slo_operator.actuate.local import LocalActuator
from slo_operator.buckets import LATENCY_BUCKETS_MS
from slo_operator.loadgen import LoadGenerator, Router
from slo_operator.metrics.direct import DirectScrape, ScrapeTarget
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.promserver import PrometheusServer
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import RuntimeConfig
from tests.integration.demo.conftest import WORKER_ENV

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

SPEC = LatencySLOSpec.model_validate(
    {
        "targetRef": {"name": "w"},
        "objective": {"latencyMs": 100, "windowSeconds": 15},
        "policy": {"intervalSeconds": 5},
    }
)
NAMESPACE = "agree"


def bucket_width_ms(value_ms: float) -> float:
    edges = [0.0, *LATENCY_BUCKETS_MS]
    for lower, upper in pairwise(edges):
        if value_ms <= upper:
            return upper - lower
    return edges[-1] - edges[-2]


async def test_direct_scrape_agrees_with_prometheus(slow_model: Path, tmp_path: Path) -> None:
    router = Router()
    labels = {"namespace": NAMESPACE}
    with PrometheusServer(scrape_interval_s=1.0) as prom:

        def publish(act: LocalActuator) -> None:
            prom.set_targets([([r.target for r in act.running()], labels)])

        act = LocalActuator(
            model_dir=slow_model,
            workdir=tmp_path,
            initial=RuntimeConfig(2, 0, 1, "full"),  # one request per batch: queues form
            router=router,
            env=WORKER_ENV,
            on_change=publish,
        )
        direct = DirectScrape(lambda: [ScrapeTarget(r.target, labels) for r in act.running()])
        source = PrometheusSource(prom.url, timeout_s=3.0)
        try:
            await act.start()
            await act.wait_warm()
            await direct.start()
            # Poisson arrivals at a rate rising from 40 to 170 req/s over 45 s on two replicas
            # of an ~9 ms model (utilisation ~0.2 -> ~0.8): the p99 moves across buckets
            rng = np.random.default_rng(7)
            grid = np.linspace(0.0, 45.0, 4501)
            cumulative = 40.0 * grid + (130.0 / 90.0) * grid**2
            points = np.sort(rng.uniform(0.0, cumulative[-1], rng.poisson(cumulative[-1])))
            arrivals = np.interp(points, cumulative, grid)
            gen = LoadGenerator(arrivals, router, ["good food", "bad service"])
            load = asyncio.create_task(gen.run())
            await asyncio.sleep(20.0)
            pairs = []
            for _ in range(8):
                now = time.time()
                p_obs, d_obs = await asyncio.gather(
                    source.observe(SPEC, NAMESPACE, 2, now), direct.observe(SPEC, NAMESPACE, 2, now)
                )
                pairs.append((p_obs, d_obs))
                await asyncio.sleep(2.5)
            records = await load
            await gen.aclose()
        finally:
            await direct.aclose()
            source.close()
            await act.close()

    assert all(r.ok for r in records)
    rel_p99: list[float] = []
    for p_obs, d_obs in pairs:
        assert p_obs.error is None, p_obs.error
        assert d_obs.error is None, d_obs.error
        assert p_obs.p99_ms is not None
        assert d_obs.p99_ms is not None
        assert p_obs.request_rate is not None
        assert d_obs.request_rate is not None
        allowed = max(bucket_width_ms(p_obs.p99_ms), 0.1 * p_obs.p99_ms)
        assert abs(d_obs.p99_ms - p_obs.p99_ms) <= allowed, (p_obs, d_obs)
        assert d_obs.request_rate == pytest.approx(p_obs.request_rate, rel=0.10)
        assert d_obs.samples == pytest.approx(p_obs.samples, rel=0.10)
        assert d_obs.recent_request_rate == pytest.approx(p_obs.recent_request_rate, rel=0.10)
        assert d_obs.peak_request_rate == pytest.approx(p_obs.peak_request_rate, rel=0.10)
        rel_p99.append(abs(d_obs.p99_ms - p_obs.p99_ms) / p_obs.p99_ms)
    print(
        "p99 prometheus vs direct:",
        [(round(p.p99_ms or 0, 1), round(d.p99_ms or 0, 1)) for p, d in pairs],
        f"median relative difference {statistics.median(rel_p99):.1%}",
    )
    assert statistics.median(rel_p99) < 0.05
