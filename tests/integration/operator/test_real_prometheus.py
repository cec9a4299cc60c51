"""The operator with a REAL Prometheus scraping REAL worker processes.

Two inference workers (the tiny fixture family, with a slow forward pass so that real queueing
breaches a 150 ms p99) serve a steady load; Prometheus scrapes their /metrics every second,
labelling them with the namespace as a Kubernetes scrape would. The Deployment's pods in the
Kubernetes emulator point at the workers' real admin ports. The operator reads the real p99
from Prometheus and acts: the change lands in the emulator (scale subresource, ConfigMap) and
in the real workers (admin API push, checked with GET /admin/config).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from slo_local.promserver import PrometheusServer
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.metrics.promql import build_queries
from slo_operator.spec import LatencySLOSpec
from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
    condition,
    operator_settings,
    running_operator,
    slo_spec,
    status_of,
)
from tests.support import kube as kb

worker_support = pytest.importorskip("tests.support.worker", reason="needs the worker's stack")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

NAME = "sentiment"
FORWARD_DELAY_MS = 120.0  # every batch takes at least this long: p99 well above 150 ms
LOAD_RPS = 30.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return worker_support.build_fixture_family(
        tmp_path_factory.mktemp("model"), delay_ms=FORWARD_DELAY_MS
    )


@pytest.fixture
def workers(model_dir: Path, tmp_path: Path) -> Iterator[list]:
    dirs = [tmp_path / f"w{i}" for i in range(2)]
    for d in dirs:
        d.mkdir()
    started = [worker_support.start_worker(model_dir, workdir=d) for d in dirs]
    try:
        for w in started:
            w.wait_ready(120)
        yield started
    finally:
        for w in started:
            w.terminate()
        for w in started:
            with contextlib.suppress(Exception):
                w.wait(20)


@contextlib.asynccontextmanager
async def steady_load(urls: list[str], rps: float) -> AsyncIterator[list[int]]:
    """Open-loop load: `rps` requests per second spread over the workers."""
    answered: list[int] = []
    stop = asyncio.Event()

    async def one(client: httpx.AsyncClient, url: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            r = await client.post(url + "/v1/predict", json={"inputs": ["a fine movie"]})
            answered.append(r.status_code)

    async def run() -> None:
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(timeout=10) as client:
            i = 0
            next_at = time.monotonic()
            while not stop.is_set():
                task = asyncio.create_task(one(client, urls[i % len(urls)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
                next_at += 1.0 / rps
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*tasks, return_exceptions=True)

    runner = asyncio.create_task(run())
    try:
        yield answered
    finally:
        stop.set()
        await runner


async def test_operator_reads_the_real_p99_and_acts(
    workers, kube, profiles_file, tmp_path: Path
) -> None:
    with PrometheusServer(scrape_interval_s=1.0, workdir=tmp_path / "prom") as prom:
        prom.set_targets(
            [
                (
                    [f"127.0.0.1:{w.port}"],
                    # `deployment` as the chart's PodMonitor attaches it
                    {"namespace": NAMESPACE, "deployment": DEPLOYMENT, "pod": f"{DEPLOYMENT}-{i}"},
                )
                for i, w in enumerate(workers)
            ]
            # A busy service in another namespace must never be read.
            + [([f"127.0.0.1:{workers[0].port}"], {"namespace": "elsewhere", "pod": "other"})]
        )
        labels = {"app": DEPLOYMENT}
        await kube.create(kb.DEPLOYMENTS, kb.deployment(NAMESPACE, DEPLOYMENT, replicas=2))
        for i, w in enumerate(workers):
            await kube.create(
                kb.PODS,
                kb.pod(NAMESPACE, f"{DEPLOYMENT}-{i}", labels=labels, admin_port=w.admin_port),
            )
        await kube.create(
            kb.SECRETS,
            kb.secret(NAMESPACE, "latencyslo-admin-token", worker_support.FIXTURE_TOKEN),
        )
        raw_spec = slo_spec()
        raw_spec["objective"]["minRequestRate"] = 1
        spec = LatencySLOSpec.model_validate(raw_spec)
        queries = build_queries(spec, NAMESPACE)

        async with steady_load([w.url for w in workers], LOAD_RPS) as answered:
            # Real series: wait until Prometheus has most of a window of the load.
            await asyncio.to_thread(prom.wait_for, queries.latency, 60)
            await kb.wait_for(
                lambda: float(prom.query(queries.request_rate)[0]["value"][1]) > LOAD_RPS / 2,
                within=60,
                interval=1.0,
                what="a window of load in Prometheus",
            )

            # The Prometheus source reads what Prometheus says (same expression, same moment).
            source = PrometheusSource(prom.url, timeout_s=5.0)
            obs = await source.observe(spec, NAMESPACE, 2, now=time.time())
            direct = float(prom.query(queries.latency)[0]["value"][1]) * 1000.0
            source.close()
            assert obs.error is None, obs.error
            assert obs.latency_ms == pytest.approx(direct, rel=0.25)
            assert obs.latency_ms > 150.0  # the slow model breaches the target for real
            assert obs.request_rate == pytest.approx(LOAD_RPS, rel=0.5)
            # Worker 0 is also scraped as if it lived in another namespace: not counted.
            everywhere = prom.query("sum(rate(inference_request_duration_seconds_count[15s]))")[0][
                "value"
            ][1]
            assert float(everywhere) > obs.request_rate * 1.2

            settings = operator_settings(prom.url, profiles_file, query_timeout_s=5.0)
            async with running_operator(kube, settings, interval_s=1.0):
                await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, raw_spec))
                await kb.wait_for(
                    lambda: any(h["applied"] for h in status_of(kube).get("history", [])),
                    within=60,
                    what="an applied decision",
                )
                status = status_of(kube)
                await kb.wait_for(lambda: kb.events_for(kube, NAMESPACE, NAME), what="the Events")
            assert sum(code == 200 for code in answered) > 0

    change = next(h for h in status["history"] if h["applied"])
    print(json.dumps({"observed": status["observed"], "decision": change}, indent=2))
    assert status["observed"]["latencyMs"] > 150.0
    assert condition(status, "SLOMet")["status"] == "False"
    assert condition(status, "MetricsAvailable")["status"] == "True"
    assert "> 150ms target" in change["reason"]

    deployment = kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)
    assert deployment["spec"]["replicas"] == status["current"]["replicas"]
    cm = kube.get(kb.CONFIGMAPS, NAMESPACE, f"{DEPLOYMENT}-latencyslo")
    if change["to"]["replicas"] != change["from"]["replicas"]:
        assert deployment["spec"]["replicas"] == change["to"]["replicas"]
    assert cm is not None
    config = json.loads(cm["data"]["config.json"])
    # The real workers took the pushed configuration.
    async with httpx.AsyncClient(timeout=5) as client:
        answers = [
            (await client.get(w.admin_url + "/admin/config", headers=w.admin_headers)).json()
            for w in workers
        ]
    for got in answers:
        for key, value in config.items():
            assert got[key] == value, (key, got)
