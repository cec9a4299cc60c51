"""Refusals read apart, on a REAL worker scraped by a REAL Prometheus.

One inference worker (the tiny fixture family, 40 ms a forward pass, batches of one) refuses
the requests that waited over 100 ms for their batch (`--max-queue-wait-ms`). Bursts of 20
requests every second make it refuse about half of them. The Prometheus source then reads
the p99 of every request at the histogram's top edge, the refused ones being in `+Inf`
only, and the p99 of the requests not refused (`outcome!="refused"`) at what the served ones
took. The controller's reason names both.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_local.promserver import PrometheusServer
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.metrics.promql import build_queries
from slo_operator.policy import decide
from slo_operator.policy.state import initial_state
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig, VariantProfile
from tests.integration.operator.conftest import NAMESPACE, slo_spec

worker_support = pytest.importorskip("tests.support.worker", reason="needs the worker's stack")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

FORWARD_DELAY_MS = 40.0
MAX_QUEUE_WAIT_MS = 100.0
BURST = 20


async def _bursts(url: str, seconds: int) -> Counter[int]:
    """One burst of BURST requests a second, for `seconds` seconds: their status codes."""
    codes: Counter[int] = Counter()
    for _ in range(seconds):
        started = time.monotonic()
        codes.update(r.status_code for r in await worker_support.burst(url, BURST, "a fine movie"))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return codes


def test_the_served_requests_are_read_apart_from_the_refused(tmp_path: Path) -> None:
    model = worker_support.build_fixture_family(tmp_path / "model", delay_ms=FORWARD_DELAY_MS)
    args = ["--max-batch-size", "1", "--max-queue-wait-ms", str(MAX_QUEUE_WAIT_MS)]
    with (
        worker_support.run_worker(model, args, workdir=tmp_path) as worker,
        PrometheusServer(scrape_interval_s=1.0, workdir=tmp_path / "prom") as prom,
    ):
        prom.set_targets([([f"127.0.0.1:{worker.port}"], {"namespace": NAMESPACE})])
        spec = LatencySLOSpec.model_validate(slo_spec())  # p99 within 150 ms over 15 s
        queries = build_queries(spec, NAMESPACE)
        prom.wait_for("up == 1", 30)
        codes = asyncio.run(_bursts(worker.url, 8))
        assert set(codes) <= {200, 503}
        assert codes[503] >= BURST  # well over 1 % refused: the p99 of every request is +Inf
        assert codes[200] >= 8
        time.sleep(3.0)  # two scrapes after the last burst
        source = PrometheusSource(prom.url, timeout_s=5.0)
        obs = asyncio.run(source.observe(spec, NAMESPACE, 1, now=time.time()))
        source.close()
        everything = prom.query(queries.latency)
    assert obs.error is None, obs.error
    assert obs.latency_ms == pytest.approx(LATENCY_BUCKETS_MS[-1])  # the histogram's top edge
    assert float(everything[0]["value"][1]) * 1000.0 == pytest.approx(obs.latency_ms)
    served = obs.served_latency_ms
    assert served is not None
    # served within the window plus the limit and one forward pass (HTTP on top)
    assert FORWARD_DELAY_MS <= served <= 3 * (MAX_QUEUE_WAIT_MS + FORWARD_DELAY_MS)
    assert obs.model_latency_ms == served

    profiles = ProfileSet(
        variants={"full": VariantProfile(alpha_ms=FORWARD_DELAY_MS, beta_ms=1.0, accuracy=0.9)}
    )
    decision, _ = decide(
        spec, obs, RuntimeConfig(1, 0, 1, "full"), profiles, initial_state(0.0), time.time()
    )
    assert "p99 2000ms > 150ms target" in decision.reason
    assert f"(p99 {served:.0f}ms of the requests not refused)" in decision.reason
