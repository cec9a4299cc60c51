"""`latencyslo calibrate`: the linear service-time fit and the runs it keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from inference_worker.calibrate import fit_linear, run_calibration, spread_sizes
from inference_worker.manifest import Manifest
from slo_contracts.profiles import ProfileSet
from tests.support.worker import build_fixture_family


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


def test_spread_sizes() -> None:
    assert spread_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert spread_sizes(24) == [1, 2, 4, 8, 16, 24]
    assert spread_sizes(1) == [1]


def test_calibration_keeps_every_run_at_the_spread_sizes(tmp_path: Path) -> None:
    # a model that sleeps 2 ms per forward: every batch takes at least that, so the kept runs
    # are real timings of this model, not placeholders
    manifest = Manifest.load(build_fixture_family(tmp_path / "m", delay_ms=2.0))
    profiles = run_calibration(
        manifest,
        device=torch.device("cpu"),
        threads=1,
        max_batch_size=8,
        tokens=8,
        repeats=3,
        spread_repeats=5,
        variants=["full", "distilled"],
    )
    bt = profiles.batch_times
    assert bt is not None
    assert bt.batch_sizes == (1, 2, 4, 8)
    assert bt.tokens == 8
    assert set(bt.ms) == {"full", "distilled"}
    for name in ("full", "distilled"):
        for b in bt.batch_sizes:
            runs = bt.samples(name, b)
            assert len(runs) == 5
            assert min(runs) >= 2.0
        # the fit is made from the same runs: its line passes near their medians
        p = profiles.variants[name]
        assert p.batch_ms(8) == pytest.approx(bt.median(name, 8), rel=0.5)
    assert profiles.extra["median_ms"]["full"][0] >= 2.0
    # the field survives the profile JSON, and old profiles without it still load
    path = tmp_path / "profile.json"
    profiles.save(path)
    again = ProfileSet.load(path)
    assert again.batch_times == bt
    data = json.loads(path.read_text())
    assert set(data["batch_times"]) == {"tokens", "batch_sizes", "ms"}
    del data["batch_times"]
    assert ProfileSet.from_json(data).batch_times is None
