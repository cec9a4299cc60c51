"""DirectScrape evaluates the operator's queries on scraped samples as Prometheus does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from slo_contracts.buckets import LATENCY_BUCKETS_MS, LATENCY_BUCKETS_S
from slo_local.scrape import (
    DirectScrape,
    ScrapeTarget,
    extrapolated_rate,
    quantile_from_buckets,
)
from slo_operator.model.histogram import histogram_quantile
from slo_operator.spec import LatencySLOSpec

SPEC = LatencySLOSpec.model_validate(
    {
        "targetRef": {"name": "w"},
        "objective": {"latencyMs": 100, "windowSeconds": 15},
        "policy": {"intervalSeconds": 5},
    }
)


# ------------------------------------------------------------------ rate / increase


def test_rate_of_a_regularly_sampled_counter_is_its_slope() -> None:
    points = [(float(t), 10.0 + 3.0 * t) for t in range(100, 116)]  # 16 samples, 1 s apart
    assert extrapolated_rate(points, 100.5, 115.5, is_rate=True) == pytest.approx(3.0)


def test_increase_extrapolates_to_the_range_edges() -> None:
    # samples 1 s apart from 0.5 s after the start to 0.5 s before the end: Prometheus
    # extrapolates half a second at each end (< 1.1 x the sample spacing)
    points = [(t + 0.5, 100.0 + 2.0 * t) for t in range(15)]
    assert extrapolated_rate(points, 0.0, 15.0, is_rate=False) == pytest.approx(30.0)


def test_no_extrapolation_beyond_the_zero_point_of_a_new_series() -> None:
    # a series born inside the range at value 1, growing 1/s: extrapolation to the start
    # stops where the counter would have been 0 (one second before its first sample)
    points = [(float(t), float(t - 9)) for t in range(10, 16)]  # 1..6
    value = extrapolated_rate(points, 0.0, 15.0, is_rate=False)
    sampled, to_zero, to_end = 5.0, 5.0 * (1.0 / 5.0), 0.0
    assert value == pytest.approx(5.0 * (sampled + to_zero + to_end) / sampled)


def test_far_edges_extrapolate_half_a_sample_interval() -> None:
    points = [(5.0, 0.0 + 10), (6.0, 12.0), (7.0, 14.0)]
    value = extrapolated_rate(points, 0.0, 15.0, is_rate=False)
    # 4 over 2 s sampled, + 0.5 s at each end (both gaps > 1.1 s): 4 * 3 / 2; the zero point
    # (5 s before the first sample) is farther than the start gap
    assert value == pytest.approx(4.0 * 3.0 / 2.0)


def test_counter_reset_is_added_back() -> None:
    points = [(0.0, 5.0), (1.0, 8.0), (2.0, 2.0), (3.0, 4.0)]  # reset between 1 and 2
    # increase = 4 - 5 + 8 = 7 over 3 s, exactly covering the range
    assert extrapolated_rate(points, 0.0, 3.0, is_rate=False) == pytest.approx(7.0)


def test_fewer_than_two_samples_give_no_result() -> None:
    assert extrapolated_rate([], 0.0, 15.0, is_rate=True) is None
    assert extrapolated_rate([(1.0, 5.0)], 0.0, 15.0, is_rate=True) is None


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(0.1, 1000.0),
    start_value=st.floats(1e3, 1e6),
    phase=st.floats(0.0, 0.99),
    window=st.integers(5, 120),
)
def test_rate_recovers_any_constant_slope(
    slope: float, start_value: float, phase: float, window: int
) -> None:
    """A counter growing steadily, scraped every second at any phase: rate == slope."""
    end = 1000.0
    start = end - window
    points = [
        (t, start_value + slope * (t - start))
        for t in (start + phase + k for k in range(window + 1))
        if start <= t <= end
    ]
    assert extrapolated_rate(points, start, end, is_rate=True) == pytest.approx(slope, rel=1e-9)


# ------------------------------------------------------------------ histogram_quantile


def test_quantile_matches_the_model_on_monotonic_buckets() -> None:
    edges = [0.01, 0.02, 0.05, 0.1]
    counts = [10.0, 30.0, 50.0, 9.0, 1.0]  # non-cumulative, then +Inf
    cumulative, running = {}, 0.0
    for le, c in zip([*edges, math.inf], counts, strict=True):
        running += c
        cumulative[le] = running
    for q in (0.5, 0.9, 0.99, 0.999):
        assert quantile_from_buckets(q, cumulative) == pytest.approx(
            histogram_quantile(q, edges, counts)
        )


def test_quantile_fixes_non_monotonic_buckets_like_promql() -> None:
    # extrapolation can make a lower bucket exceed a higher one by a hair; PromQL takes the
    # running maximum
    buckets = {0.01: 10.0, 0.02: 9.9, 0.05: 20.0, math.inf: 20.0}
    fixed = {0.01: 10.0, 0.02: 10.0, 0.05: 20.0, math.inf: 20.0}
    assert quantile_from_buckets(0.9, buckets) == pytest.approx(quantile_from_buckets(0.9, fixed))


def test_quantile_without_inf_bucket_or_observations_is_nan() -> None:
    assert math.isnan(quantile_from_buckets(0.99, {0.01: 3.0, 0.02: 5.0}))
    assert math.isnan(quantile_from_buckets(0.99, {0.01: 0.0, math.inf: 0.0}))
    assert math.isnan(quantile_from_buckets(0.99, {}))


# ------------------------------------------------------------------ observe()


class FakeWorker:
    """A worker's metrics exposition (the real prometheus_client text format)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "inference_request_duration_seconds",
            "",
            ["variant"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch = Histogram(
            "inference_batch_duration_seconds",
            "",
            ["variant"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.size = Histogram(
            "inference_batch_size", "", buckets=(1, 2, 4, 8, 16, 32), registry=self.registry
        )
        self.requests = Counter("inference_requests", "", ["code"], registry=self.registry)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def _scrape_run(
    latencies_per_s: list[list[float]], *, labels: dict[str, str] | None = None
) -> tuple[DirectScrape, list[float], float]:
    """Feed one scrape per second of a worker serving the given latencies each second."""
    worker = FakeWorker()
    target = ScrapeTarget("127.0.0.1:1", labels or {"namespace": "ml"})
    source = DirectScrape(lambda: [target])
    t0 = 10_000.0
    everything: list[float] = []
    source.ingest(target, worker.text(), t0)
    for k, second in enumerate(latencies_per_s, start=1):
        for latency in second:
            worker.latency.labels("full").observe(latency)
            everything.append(latency)
        worker.batch.labels("full").observe(0.02)
        worker.size.observe(4)
        source.ingest(target, worker.text(), t0 + k)
    return source, everything, t0 + len(latencies_per_s)


async def test_observe_reads_the_window_quantile_and_rate() -> None:
    # 20 s of 50 req/s: 49 fast (8 ms) and one slow (180 ms) per second
    seconds = [[0.008] * 49 + [0.18] for _ in range(20)]
    source, _, end = _scrape_run(seconds)
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end)
    assert obs.error is None
    assert obs.request_rate == pytest.approx(50.0)
    assert obs.samples == pytest.approx(750.0)
    assert obs.age_seconds == pytest.approx(0.0)
    # the true histogram of the last 15 s: 2 % in (175, 200] ms -> p99 in that bucket
    counts = [0.0] * (len(LATENCY_BUCKETS_MS) + 1)
    counts[LATENCY_BUCKETS_MS.index(8)] = 49 * 15
    counts[LATENCY_BUCKETS_MS.index(200)] = 15
    expected = histogram_quantile(0.99, LATENCY_BUCKETS_MS, counts)
    assert obs.latency_ms == pytest.approx(expected)
    assert 175.0 < obs.latency_ms <= 200.0


async def test_other_namespaces_and_label_matchers_are_not_read() -> None:
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(20)], labels={"namespace": "a"})
    obs = await source.observe(SPEC, "b", ready_replicas=1, now=end)
    assert obs.latency_ms is None
    assert obs.error is not None
    assert "no latency series" in obs.error
    picky = SPEC.model_copy(
        update={"metrics": SPEC.metrics.model_copy(update={"labels": {"variant": "quantized"}})}
    )
    obs = await source.observe(picky, "a", ready_replicas=1, now=end)
    assert obs.latency_ms is None


async def test_no_requests_in_the_window_is_no_data() -> None:
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(5)] + [[] for _ in range(20)])
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end)
    assert obs.latency_ms is None
    assert "NaN" in (obs.error or "")
    assert obs.request_rate == pytest.approx(0.0)


async def test_stale_data_is_no_data() -> None:
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(20)])
    source.max_age_s = 5.0
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end + 8)
    assert obs.latency_ms is None
    assert obs.age_seconds == pytest.approx(8.0)
    assert "stale" in (obs.error or "")
    gone = await source.observe(SPEC, "ml", ready_replicas=1, now=end + 90)
    assert gone.latency_ms is None  # nothing left in the window at all


async def test_age_reads_the_newest_sample_at_or_before_the_instant() -> None:
    # a scrape that lands after the evaluation instant (as when a scrape completes between
    # taking `now` and evaluating) does not hide the earlier samples, as in Prometheus
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(20)])
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end - 2.5)
    assert obs.error is None
    assert obs.age_seconds == pytest.approx(0.5)
    old = await source.observe(SPEC, "ml", ready_replicas=1, now=end + 400.0)
    assert old.age_seconds is None  # beyond Prometheus's 5-minute look-back: no sample


async def test_a_target_that_stopped_answering_has_no_age() -> None:
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(20)])
    source.forget("127.0.0.1:1")
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end)
    assert obs.latency_ms is None
    assert "age" in (obs.error or "")


async def test_profiles_scale_to_measured_batch_times() -> None:
    from slo_operator.policy.profiles import fit_profiles
    from slo_operator.types import ProfileSet, VariantProfile

    baseline = ProfileSet(
        variants={"full": VariantProfile(10.0, 2.5), "distilled": VariantProfile(2.0, 1.0)}
    )
    source, _, end = _scrape_run([[0.01] * 10 for _ in range(20)])
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end)
    assert obs.batch is not None
    assert obs.batch.batch_ms_by_variant["full"] == pytest.approx(20.0)
    assert obs.batch.mean_batch_size == pytest.approx(4.0)
    scaled = fit_profiles(baseline, obs.batch, {}).profiles
    # measured 20 ms per batch of 4, predicted 10 + 2.5 * 4 = 20 ms: factor 1
    assert scaled.variants["full"].alpha_ms == pytest.approx(10.0)
    assert scaled.variants["distilled"].beta_ms == pytest.approx(1.0)


def test_peak_query_parameters_follow_the_operator_promql() -> None:
    from slo_operator.metrics.promql import build_queries
    from slo_operator.policy import default_ranges

    for window in (15, 60, 300):
        spec = SPEC.model_copy(
            update={"objective": SPEC.objective.model_copy(update={"window_seconds": window})}
        )
        ranges = default_ranges(spec)
        query = build_queries(spec, "ml").peak_request_rate
        assert f"[{ranges.peak_s}s]))" in query
        assert f"[{window}s:{ranges.peak_step_s}s])" in query


async def test_peak_rate_is_the_busiest_short_range_in_the_window() -> None:
    from slo_local.scrape import _subquery_times

    # 10 req/s with a burst at 60 req/s in seconds 10..17 of 30
    per_second = [60 if 10 <= k < 18 else 10 for k in range(30)]
    source, _, end = _scrape_run([[0.01] * n for n in per_second])
    obs = await source.observe(SPEC, "ml", ready_replicas=1, now=end)
    # expected: a 15 s rate at every multiple of 7 s within the window, from the counter's
    # samples (one per second, the cumulative count), and their maximum
    t0 = end - len(per_second)
    cumulative = [sum(per_second[:k]) for k in range(len(per_second) + 1)]
    times = _subquery_times(end, 15.0, 7)
    assert times
    assert all(round(t * 1000) % 7000 == 0 and end - 15 <= t <= end for t in times)
    expected = max(
        extrapolated_rate(
            [(t0 + k, float(c)) for k, c in enumerate(cumulative) if ts - 15 <= t0 + k <= ts],
            ts - 15,
            ts,
            is_rate=True,
        )
        or 0.0
        for ts in times
    )
    assert obs.peak_request_rate == pytest.approx(expected)
    assert obs.request_rate is not None
    assert obs.peak_request_rate > obs.request_rate  # the burst left the window's tail
