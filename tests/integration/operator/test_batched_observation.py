"""Batched observation against a REAL Prometheus: the figures each LatencySLO gets from its
group's batched queries equal the ones its own per-object queries give, at the same instant.

A synthetic exporter serves the latency histograms of five Deployments in three namespaces
(one Deployment name in two namespaces) with known p99s; Prometheus scrapes it every second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_local.promserver import PrometheusServer
from slo_operator.metrics.batch import FIGURES as QUERIED
from slo_operator.metrics.batch import BatchedPrometheus
from slo_operator.metrics.client import PrometheusClient
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.policy.params import default_ranges
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation
from tests.integration.operator.conftest import slo_spec
from tests.support.synthetic import SyntheticExporter, Target, scrape_config

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

TARGETS = [
    Target("team-a", "alpha", 0.120, rate=30.0),
    Target("team-a", "beta", 0.300, rate=10.0),
    Target("team-b", "alpha", 0.080, rate=50.0),
    Target("team-b", "gamma", 0.200, rate=5.0),
    Target("team-c", "delta", 0.050, rate=20.0),
    Target("team-c", "epsilon", 0.080, rate=20.0, refused=2.0),
]
"""`epsilon` refuses one request in eleven: the p99 of every request is at the histogram's
top edge, the p99 of the requests not refused is its served p99."""


CELL_LOOKBACK_S = 20.0
"""How far before the present `test_groups_and_cells` evaluates (a 10 s cell, one back)."""


def spec_for(deployment: str, interval_s: int = 5, **metrics: object) -> LatencySLOSpec:
    raw = slo_spec(intervalSeconds=interval_s)
    raw["targetRef"]["name"] = deployment
    if metrics:
        raw["metrics"] = metrics
    return LatencySLOSpec.model_validate(raw)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with SyntheticExporter(TARGETS) as exporter:
        prom = PrometheusServer(
            scrape_interval_s=1.0, extra_scrape_configs=[scrape_config(exporter.address, 1.0)]
        )
        with prom:
            window = default_ranges(spec_for("alpha")).window_s
            served = 'inference_request_duration_seconds_count{outcome!="refused"}'
            expr = f"count(rate({served}[{window}s]) > 0)"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                result = prom.query(expr)
                if result and float(result[0]["value"][1]) == len(TARGETS):
                    break
                time.sleep(0.5)
            # the whole window holds data at every instant the tests evaluate: the cells test
            # evaluates up to 20 s in the past (its cell start, one cell back)
            time.sleep(window + CELL_LOOKBACK_S + 3.0)
            yield prom


FIGURES = (
    "latency_ms",
    "request_rate",
    "samples",
    "age_seconds",
    "recent_request_rate",
    "peak_request_rate",
    "error",
    "fault",
    "served_latency_ms",
)


def assert_same(batched: Observation, alone: Observation) -> None:
    for name in FIGURES:
        got, want = getattr(batched, name), getattr(alone, name)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9, nan_ok=True), name
        elif name == "error" and want is not None:
            assert got is not None
        else:
            assert got == want, name


async def test_batched_figures_equal_the_per_object_ones(prometheus: PrometheusServer) -> None:
    now = float(int(time.time()) - 1)
    members = [(t.namespace, f"slo-{t.deployment}", spec_for(t.deployment)) for t in TARGETS]
    # an override: the spec names the series' deployment itself
    members.append(("team-a", "slo-override", spec_for("alpha", labels={"deployment": "beta"})))
    # a Deployment with no series
    members.append(("team-c", "slo-missing", spec_for("nowhere")))
    client = PrometheusClient(prometheus.url, timeout_s=10.0)
    hub = BatchedPrometheus(client, share_s=0)
    sources = [hub.source(ns, name, spec.target_ref.name) for ns, name, spec in members]
    batched = await asyncio.gather(
        *(s.observe(spec, ns, 2, now) for s, (ns, _, spec) in zip(sources, members, strict=True))
    )
    assert hub.evaluations == 1  # one group: the same histogram, percentile, ranges and labels
    assert client.sent == len(QUERIED)  # one query a figure, whatever the number of objects
    for (ns, _, spec), got in zip(members, batched, strict=True):
        alone = PrometheusSource(prometheus.url, timeout_s=10.0, target=("deployment", "x"))
        alone.target = ("deployment", spec.target_ref.name)
        want = await alone.observe(spec, ns, 2, now)
        await alone.aclose()
        assert_same(got, want)
    # the known p99s and rates; one namespace's "alpha" is not the other's
    obs = {(ns, name): o for (ns, name, _), o in zip(members, batched, strict=True)}
    for t in TARGETS:
        got = obs[(t.namespace, f"slo-{t.deployment}")]
        assert got.served_latency_ms == pytest.approx(t.p99_s * 1000, rel=0.02)
        assert got.request_rate == pytest.approx(t.rate + t.refused, rel=0.05)
        if t.refused:
            assert got.latency_ms == pytest.approx(LATENCY_BUCKETS_MS[-1])
            assert got.model_latency_ms == got.served_latency_ms
        else:  # no series refused: the same quantile twice
            assert got.latency_ms == pytest.approx(t.p99_s * 1000, rel=0.02)
    assert obs[("team-a", "slo-override")].latency_ms == pytest.approx(300.0, rel=0.02)
    assert obs[("team-c", "slo-missing")].latency_ms is None
    assert "deployment='nowhere'" in (obs[("team-c", "slo-missing")].error or "")
    await hub.aclose()


async def test_groups_and_cells(prometheus: PrometheusServer) -> None:
    client = PrometheusClient(prometheus.url, timeout_s=10.0)
    hub = BatchedPrometheus(client, share_s=10.0)
    now = float(int(time.time()) // 10 * 10 - 10)
    a = hub.source("team-a", "a", "alpha")
    b = hub.source("team-b", "b", "gamma")
    wide = hub.source("team-c", "c", "delta")
    # cells of 10 s: the spec's interval is at least twice that
    spec_a, spec_b = spec_for("alpha", 20), spec_for("gamma", 20)
    raw = slo_spec(intervalSeconds=20)
    raw["targetRef"]["name"] = "delta"
    raw["objective"]["windowSeconds"] = 30
    spec_wide = LatencySLOSpec.model_validate(raw)
    first = await asyncio.gather(
        a.observe(spec_a, "team-a", 1, now),
        b.observe(spec_b, "team-b", 1, now + 3),
        wide.observe(spec_wide, "team-c", 1, now + 1),
    )
    assert hub.evaluations == 2  # two groups: another window is another group
    later = await a.observe(spec_a, "team-a", 1, now + 7)
    assert hub.evaluations == 2  # the same cell: the same evaluation
    assert later.latency_ms == first[0].latency_ms
    assert first[0].age_seconds is not None
    assert later.age_seconds is not None
    assert later.age_seconds == pytest.approx(first[0].age_seconds + 7)
    await a.observe(spec_a, "team-a", 1, now + 10)
    assert hub.evaluations == 3  # the next cell
    await hub.aclose()
