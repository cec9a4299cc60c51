"""Observation parsing (NaN, empty, stale, error, low rate), profile scaling, and the
Prometheus client's behaviour on failures (no exception, no hidden retries, bounded time)."""

from __future__ import annotations

import math
import time

import pytest
from aiohttp import web

from slo_local.promserver import free_port
from slo_operator.metrics.batch import FIGURES
from slo_operator.metrics.prometheus import (
    PrometheusSource,
    QueryError,
    Sample,
    parse_observation,
    parse_vector,
)
from slo_operator.metrics.promql import build_queries
from slo_operator.policy.profiles import fit_profiles, scale_profiles
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import BatchMeasurement, ProfileSet, VariantProfile

SPEC = LatencySLOSpec.model_validate(
    {"targetRef": {"name": "w"}, "objective": {"latencyMs": 150, "minRequestRate": 5}}
)


def one(value: float) -> list[Sample]:
    return [Sample({}, value)]


def observe(**outcomes):
    base = {
        "latency": one(0.212),
        "rate": one(41.2),
        "samples": one(2472.0),
        "age": one(3.0),
        "recent_rate": one(50.0),
        "peak_rate": one(70.0),
    }
    base.update(outcomes)
    return parse_observation(now=100.0, ready_replicas=2, max_age_s=60.0, where="here", **base)


def test_good_data() -> None:
    obs = observe()
    assert obs.error is None
    assert obs.latency_ms == pytest.approx(212.0)
    assert obs.request_rate == pytest.approx(41.2)
    assert obs.samples == 2472.0
    assert obs.age_seconds == 3.0
    assert obs.recent_request_rate == 50.0
    assert obs.peak_request_rate == 70.0
    assert obs.ready_replicas == 2
    assert obs.at == 100.0
    assert obs.has_latency


@pytest.mark.parametrize(
    ("outcomes", "error"),
    [
        ({"latency": []}, "no data: no latency series here in Prometheus"),
        (
            {"latency": one(math.nan)},
            "no data: no requests in the window here (the quantile is NaN)",
        ),
        ({"latency": one(math.inf)}, "no data: the quantile is inf here"),
        ({"age": one(75.0)}, "stale: the newest sample here is 75s old (> 60s)"),
        ({"age": []}, "no data: cannot tell the age of the samples here"),
        ({"age": one(math.nan)}, "no data: cannot tell the age of the samples here"),
        (
            {"rate": QueryError("cannot connect to http://p:9090")},
            "Prometheus query failed: cannot connect to http://p:9090",
        ),
        (
            {"latency": QueryError("HTTP Status Code 503")},
            "Prometheus query failed: HTTP Status Code 503",
        ),
    ],
)
def test_no_data_cases_are_explicit(outcomes: dict, error: str) -> None:
    obs = observe(**outcomes)
    assert obs.latency_ms is None
    assert not obs.has_latency
    assert obs.error == error


def test_a_failed_query_drops_every_value() -> None:
    obs = observe(age=QueryError("timed out"))
    assert (obs.request_rate, obs.samples, obs.age_seconds) == (None, None, None)


def test_nan_rate_is_no_rate() -> None:
    obs = observe(rate=one(math.nan), latency=one(math.nan))
    assert obs.request_rate is None
    assert not obs.has_rate


def test_low_rate_is_reported_not_hidden() -> None:
    """Below minRequestRate the p99 is kept: the policy and the status decide not to trust it."""
    obs = observe(rate=one(0.5), samples=one(30.0))
    assert obs.error is None
    assert obs.request_rate == 0.5
    assert obs.latency_ms == pytest.approx(212.0)


def test_the_recent_and_peak_rates_are_optional() -> None:
    assert observe(recent_rate=QueryError("x")).recent_request_rate is None
    assert observe(recent_rate=[]).recent_request_rate is None
    assert observe(recent_rate=QueryError("x"), peak_rate=QueryError("y")).error is None
    assert observe(peak_rate=one(math.nan)).peak_request_rate is None


@pytest.mark.parametrize(
    ("served", "served_ms", "model_ms"),
    [
        (None, None, 2000.0),  # not asked: the model is read from the whole quantile
        (QueryError("x"), None, 2000.0),  # failed: the same, nothing more
        (one(0.140), 140.0, 140.0),  # refusals read apart: the requests served
        ([], math.nan, 2000.0),  # only refused series: nothing served, read as before
        (one(math.nan), math.nan, 2000.0),  # no request served in the window: the same
        (one(math.inf), None, 2000.0),
    ],
)
def test_the_served_quantile_is_optional_and_read_apart(
    served: list[Sample] | QueryError | None, served_ms: float | None, model_ms: float
) -> None:
    obs = observe(latency=one(2.0), served_latency=served)  # refusals: the top edge
    assert obs.error is None
    assert obs.latency_ms == pytest.approx(2000.0)
    if served_ms is None:
        assert obs.served_latency_ms is None
    elif math.isnan(served_ms):
        assert obs.served_latency_ms is not None
        assert math.isnan(obs.served_latency_ms)
    else:
        assert obs.served_latency_ms == pytest.approx(served_ms)
    assert obs.model_latency_ms == pytest.approx(model_ms)


def test_the_served_quantile_excludes_the_refused_series() -> None:
    queries = build_queries(SPEC, "ml")
    assert 'outcome!="refused"' in queries.served_latency
    assert "outcome" not in queries.latency  # the objective counts every request
    assert queries.served_latency == queries.latency.replace(
        '{namespace="ml"}', '{namespace="ml",outcome!="refused"}'
    )


@pytest.mark.parametrize(
    "result",
    [{"not": "a list"}, [{"metric": {}}], [{"metric": {}, "value": [1, "abc"]}], [None]],
)
def test_malformed_results_are_query_errors(result) -> None:
    with pytest.raises(QueryError):
        parse_vector(result)


def test_parse_vector() -> None:
    got = parse_vector([{"metric": {"variant": "full"}, "value": [1.0, "NaN"]}])
    assert got[0].labels == {"variant": "full"}
    assert math.isnan(got[0].value)


# ------------------------------------------------------------------------------- profiles

BASE = ProfileSet(
    variants={
        "full": VariantProfile(10.0, 2.0, 0.9),
        "quantized": VariantProfile(5.0, 1.0, 0.88),
        "distilled": VariantProfile(2.0, 0.5, 0.85),
    },
    source="calibrated",
)


def test_profiles_scale_to_measurements() -> None:
    # full predicted at b=10: 10 + 2*10 = 30 ms; measured 45 ms -> x1.5
    scaled = scale_profiles(BASE, {"full": 45.0}, 10.0)
    assert scaled is not None
    assert scaled.variants["full"].alpha_ms == pytest.approx(15.0)
    assert scaled.variants["full"].beta_ms == pytest.approx(3.0)
    # unmeasured variants take the median factor of the measured ones
    assert scaled.variants["distilled"].alpha_ms == pytest.approx(3.0)
    assert scaled.variants["quantized"].accuracy == 0.88
    assert scaled.extra["scale"]["full"] == pytest.approx(1.5)
    assert "scaled to measured batch times" in scaled.source


def test_a_window_without_a_measurement_predicts_with_the_remembered_factors() -> None:
    """No batch in the window (an idle spell, or one the controller does not act on): each
    variant keeps the factor it was last measured at alone, the others take their median;
    nothing is measured alone. Without any memory the calibrated profiles stand."""
    fit = fit_profiles(BASE, None, {"full": 1.5, "quantized": 1.1})
    assert fit.scale == {"full": 1.5, "quantized": 1.1, "distilled": pytest.approx(1.3)}
    assert fit.profiles.variants["full"].alpha_ms == pytest.approx(15.0)
    assert fit.measured_alone == {}
    empty = fit_profiles(BASE, BatchMeasurement({}, None), {"full": 1.5})
    assert empty.scale["full"] == 1.5
    assert fit_profiles(BASE, None, {}).profiles is BASE


def test_profile_scaling_is_clamped() -> None:
    scaled = scale_profiles(BASE, {"full": 3000.0, "quantized": 1.0}, 10.0)
    assert scaled is not None
    assert scaled.extra["scale"]["full"] == 5.0
    assert scaled.extra["scale"]["quantized"] == 0.2


def test_a_window_served_by_two_variants_keeps_the_factors_measured_alone() -> None:
    """A bridge's window: `full` ran long backlog batches, `quantized` short ones, and the
    one mean batch size (10) fits neither. `full` keeps the factor it was measured at alone;
    `quantized`, never measured alone, takes this window's; a window served by one variant
    measures it afresh."""
    mixed = BatchMeasurement({"full": 90.0, "quantized": 30.0}, 10.0)
    fit = fit_profiles(BASE, mixed, {"full": 1.2})
    assert fit.scale["full"] == pytest.approx(1.2)  # not 90 / 30 = 3
    assert fit.scale["quantized"] == pytest.approx(2.0)  # 30 / (5 + 10)
    assert fit.measured_alone == {}
    alone = fit_profiles(BASE, BatchMeasurement({"full": 45.0}, 10.0), {"full": 1.2})
    assert alone.scale["full"] == pytest.approx(1.5)
    assert alone.measured_alone == {"full": pytest.approx(1.5)}


@pytest.mark.parametrize(
    ("measured", "size"),
    [
        ({}, 10.0),
        ({"full": 40.0}, None),
        ({"full": 40.0}, math.nan),
        ({"full": math.nan}, 8.0),
        ({"exported": 40.0}, 8.0),
        ({"full": 40.0}, 0.0),
    ],
)
def test_nothing_measured_keeps_the_calibration(measured, size) -> None:
    assert scale_profiles(BASE, measured, size) is None


# ------------------------------------------------------------ the client against servers


async def test_unreachable_prometheus_is_an_observation_not_an_exception() -> None:
    errors: list[str] = []
    source = PrometheusSource(
        f"http://127.0.0.1:{free_port()}", timeout_s=1.0, on_error=errors.append
    )
    started = time.monotonic()
    obs = await source.observe(SPEC, "ml", 2, now=5.0)
    elapsed = time.monotonic() - started
    source.close()
    assert obs.latency_ms is None
    assert obs.error is not None
    assert obs.error.startswith("Prometheus query failed: cannot connect to http://127.0.0.1:")
    assert errors == [obs.error]
    assert elapsed < 1.0  # refused at once: no back-off, no retry


async def test_no_hidden_retries_and_an_explicit_timeout(aiohttp_free_server) -> None:
    hits: list[str] = []

    async def overloaded(request: web.Request) -> web.Response:
        hits.append(request.query.get("query", ""))
        return web.Response(status=503, text="overloaded")

    url = await aiohttp_free_server(overloaded)
    source = PrometheusSource(url, timeout_s=1.0)
    obs = await source.observe(SPEC, "ml", 2, now=5.0)
    source.close()
    assert obs.error is not None
    assert "503" in obs.error
    assert len(hits) == len(FIGURES)  # one request per query: the client's retry adapter is off


async def test_every_query_of_an_observation_is_evaluated_at_its_instant(
    aiohttp_free_server,
) -> None:
    times: list[str] = []

    async def record(request: web.Request) -> web.Response:
        times.append(request.query.get("time", "<none>"))
        return web.json_response({"status": "success", "data": {"result": []}})

    url = await aiohttp_free_server(record)
    source = PrometheusSource(url, timeout_s=1.0)
    await source.observe(SPEC, "ml", 2, now=1_800_000_000.25)
    source.close()
    assert times == ["1800000000.250"] * len(FIGURES)


async def test_a_slow_prometheus_costs_one_timeout(aiohttp_free_server) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({"status": "success", "data": {"result": []}})

    url = await aiohttp_free_server(slow)
    source = PrometheusSource(url, timeout_s=0.5)
    started = time.monotonic()
    obs = await source.observe(SPEC, "ml", 2, now=5.0)
    elapsed = time.monotonic() - started
    source.close()
    assert obs.error is not None
    assert "timed out" in obs.error
    assert elapsed < 2.0  # the queries run concurrently, each bounded by the timeout


@pytest.fixture
async def aiohttp_free_server():
    runners: list[web.AppRunner] = []

    async def start(handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
