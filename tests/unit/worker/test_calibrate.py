"""The linear service-time fit of `latencyslo calibrate`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_worker.calibrate import fit_linear


@given(
    alpha=st.floats(min_value=0.1, max_value=50),
    beta=st.floats(min_value=0.01, max_value=20),
    n=st.integers(min_value=2, max_value=64),
)
def test_an_exact_line_is_recovered(alpha: float, beta: float, n: int) -> None:
    sizes = list(range(1, n + 1))
    fit = fit_linear(sizes, [alpha + beta * b for b in sizes])
    assert fit["alpha_ms"] == pytest.approx(alpha, rel=1e-6, abs=1e-6)
    assert fit["beta_ms"] == pytest.approx(beta, rel=1e-6)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["max_rel_err"] < 1e-6


def test_fit_quality_reports_a_bad_fit() -> None:
    sizes = [1, 2, 3, 4, 5, 6]
    times = [1.0, 10.0, 1.0, 10.0, 1.0, 10.0]
    fit = fit_linear(sizes, times)
    assert fit["r2"] < 0.2
    assert fit["max_rel_err"] > 1.0


def test_needs_two_points() -> None:
    with pytest.raises(ValueError, match="two batch sizes"):
        fit_linear([1], [2.0])
