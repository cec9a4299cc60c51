"""The performance model and PromQL's histogram_quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo_operator.model import histogram_quantile, max_throughput_rps, predict
from slo_operator.types import VariantProfile

FULL = VariantProfile(alpha_ms=3.25, beta_ms=1.55)


# ------------------------------------------------------------------ histogram_quantile
EDGES = (10.0, 20.0, 50.0)


@pytest.mark.parametrize(
    ("q", "counts", "expected"),
    [
        pytest.param(0.5, [10, 0, 0, 0], 5.0, id="first-bucket-lower-bound-is-0"),
        pytest.param(0.5, [0, 10, 0, 0], 15.0, id="interpolated-inside-bucket"),
        pytest.param(0.99, [50, 40, 10, 0], 50.0 - 30.0 * 0.1, id="p99-in-third-bucket"),
        pytest.param(0.99, [0, 0, 50, 50], 50.0, id="inf-bucket-gives-highest-edge"),
        pytest.param(0.99, [0, 0, 0, 0], math.nan, id="empty-is-nan"),
    ],
)
def test_histogram_quantile_like_promql(q: float, counts: list[float], expected: float) -> None:
    got = histogram_quantile(q, EDGES, counts)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_histogram_quantile_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="entries"):
        histogram_quantile(0.5, EDGES, [1, 2, 3])


@settings(max_examples=100)
@given(st.lists(st.floats(0.1, 1900), min_size=200, max_size=400))
def test_histogram_quantile_brackets_the_exact_quantile(samples: list[float]) -> None:
    from slo_contracts.buckets import LATENCY_BUCKETS_MS

    edges = np.asarray(LATENCY_BUCKETS_MS)
    counts = np.bincount(np.searchsorted(edges, samples), minlength=len(edges) + 1)
    got = histogram_quantile(0.99, LATENCY_BUCKETS_MS, counts.tolist())
    exact = float(np.quantile(samples, 0.99, method="inverted_cdf"))
    i = int(np.searchsorted(edges, exact))
    lower = 0.0 if i == 0 else edges[i - 1]
    upper = edges[min(i, len(edges) - 1)]
    assert lower - 1e-9 <= got <= upper + 1e-9


# ---------------------------------------------------------------------------- predict
def test_prediction_grows_with_load_and_shrinks_with_replicas() -> None:
    rates = [50, 200, 400, 500, 560, 590]
    p = [predict(FULL, r, 1, 0, 32).latency_ms for r in rates]
    assert p == sorted(p)
    q = [predict(FULL, 1500, c, 0, 32).latency_ms for c in (3, 4, 6, 10)]
    assert q == sorted(q, reverse=True)


def test_unstable_beyond_capacity() -> None:
    cap = max_throughput_rps(FULL, 32)
    assert cap == pytest.approx(1000 * 32 / (3.25 + 1.55 * 32))
    assert not predict(FULL, cap * 1.01, 1, 0, 32).stable
    assert predict(FULL, cap * 0.5, 1, 0, 32).stable
    assert not predict(FULL, 10.0, 0, 0, 32).stable


def test_light_load_is_about_window_plus_service() -> None:
    p = predict(FULL, 1.0, 1, 20, 32).latency_ms
    assert 20 + FULL.batch_ms(1) <= p <= 20 + FULL.batch_ms(3)
    assert predict(FULL, 0.0, 1, 5, 32).latency_ms == pytest.approx(5 + FULL.batch_ms(1))


def test_a_faster_variant_predicts_less() -> None:
    fast = VariantProfile(alpha_ms=1.08, beta_ms=0.62)
    assert predict(fast, 1000, 2, 0, 32).latency_ms < predict(FULL, 1000, 2, 0, 32).latency_ms


def test_bad_max_batch() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        predict(FULL, 10, 1, 0, 0)
