"""BatchedPrometheus against a stand-in Prometheus: slices by namespace and Deployment, one
evaluation per group and cell, a bad spec fails alone, and the new settings."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web

from slo_local.promserver import free_port
from slo_operator.metrics.batch import FIGURES, BatchedPrometheus
from slo_operator.metrics.client import PrometheusClient
from slo_operator.settings import SettingsError, load_settings
from slo_operator.spec import LatencySLOSpec


def spec(deployment: str, **metrics: object) -> LatencySLOSpec:
    raw = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "objective": {"percentile": 99, "latencyMs": 150, "windowSeconds": 60},
        "replicas": {"min": 1, "max": 8},
    }
    if metrics:
        raw["metrics"] = metrics
    return LatencySLOSpec.model_validate(raw)


P99 = {("ml", "a"): 0.1, ("ml", "b"): 0.2, ("other", "a"): 0.9}


@pytest.fixture
async def prometheus():
    queries: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        form = dict(request.query)
        if request.method == "POST":
            form.update(await request.post())
        expr = str(form["query"])
        queries.append(expr)
        # the stand-in answers for every series it holds, matched or not, so that the
        # source's own split by namespace and deployment is what is tested
        if expr.startswith("histogram_quantile("):
            values = P99
        elif expr.startswith("time() - "):
            values = dict.fromkeys(P99, 3.0)
        elif "_count{" in expr and "inference_batch" not in expr:
            values = dict.fromkeys(P99, 10.0)
        else:
            values = {}
        result = [
            {"metric": {"namespace": ns, "deployment": d}, "value": [1, str(v)]}
            for (ns, d), v in values.items()
        ]
        return web.json_response({"status": "success", "data": {"result": result}})

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", queries
    await runner.cleanup()


async def test_each_object_gets_its_own_namespace_and_deployment(prometheus) -> None:
    url, queries = prometheus
    hub = BatchedPrometheus(PrometheusClient(url), share_s=5.0)
    a, b = hub.source("ml", "sa", "a"), hub.source("ml", "sb", "b")
    got_a, got_b = await asyncio.gather(
        a.observe(spec("a"), "ml", 1, 1000.0), b.observe(spec("b"), "ml", 1, 1001.0)
    )
    assert got_a.latency_ms == pytest.approx(100.0)  # not the other namespace's "a" (900 ms)
    assert got_b.latency_ms == pytest.approx(200.0)
    assert got_b.age_seconds == pytest.approx(3.0 + 1001.0 - 1000.0)
    assert hub.evaluations == 1
    assert len(queries) == len(FIGURES)
    assert all('namespace="ml"' in q for q in queries)
    assert all(re.search(r'deployment=~"a\|b"', q) for q in queries)
    await hub.aclose()


async def test_a_spec_whose_query_cannot_be_built_fails_alone(prometheus) -> None:
    url, _ = prometheus
    hub = BatchedPrometheus(PrometheusClient(url), share_s=5.0)
    good = hub.source("ml", "good", "a")
    bad = hub.source("ml", "bad", "b")
    bad_spec = spec("b").model_copy(
        update={"metrics": spec("b").metrics.model_copy(update={"histogram": "no such"})}
    )
    got_good, got_bad = await asyncio.gather(
        good.observe(spec("a"), "ml", 1, 1000.0), bad.observe(bad_spec, "ml", 1, 1000.0)
    )
    assert got_good.latency_ms == pytest.approx(100.0)
    assert got_bad.latency_ms is None
    assert "cannot build the query" in (got_bad.error or "")
    await hub.aclose()


async def test_without_a_target_label_the_namespace_is_read_whole(prometheus) -> None:
    url, queries = prometheus
    hub = BatchedPrometheus(PrometheusClient(url), share_s=5.0, target_label=None)
    obs = await hub.source("ml", "s", "a").observe(spec("a"), "ml", 1, 1000.0)
    assert all("deployment" not in q for q in queries)
    assert "sum by (le,namespace) (" in queries[0]
    assert obs.latency_ms == pytest.approx(100.0)  # a series of its namespace, never "other"'s
    await hub.aclose()


def test_settings_for_batching_and_limits() -> None:
    s = load_settings(
        {
            "target_label": "app",
            "query_share_s": "0",
            "prometheus_concurrency": "8",
            "max_concurrent_steps": "64",
        },
        environ={},
    )
    assert (s.target_label, s.query_share_s, s.prometheus_concurrency) == ("app", 0.0, 8)
    assert s.max_concurrent_steps == 64
    assert load_settings({"target_label": ""}, environ={}).target_label == ""
    with pytest.raises(SettingsError, match="--target-label"):
        load_settings({"target_label": "namespace"}, environ={})
    with pytest.raises(SettingsError, match="--prometheus-concurrency"):
        load_settings({"prometheus_concurrency": "0"}, environ={})
