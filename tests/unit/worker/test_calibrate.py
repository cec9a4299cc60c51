"""`latencyslo calibrate`: the linear service-time fit and the runs it keeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from inference_worker.calibrate import FIT_METHOD, fit_linear, refit, run_calibration, spread_sizes
from inference_worker.cli import calibrate
from inference_worker.manifest import Manifest
from slo_contracts.profiles import ProfileSet, VariantProfile
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
    assert fit["max_rel_err"] > 0.5


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
        cuda_graphs=True,
    )
    assert profiles.extra["cuda_graphs"] is False  # graphs are for CUDA: not on this device
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


def test_the_fit_weighs_each_batch_by_its_own_size() -> None:
    # small batches on one line, the large ones 20 % above it (as a busy machine's large
    # batches often are): a plain least-squares line is pulled up at the small end, the
    # relative fit keeps them within 15 % where the plain line misses by up to 50 %
    sizes = list(range(1, 33))
    times = [(8.0 + 4.0 * b) * (1.2 if b >= 16 else 1.0) for b in sizes]
    fit = fit_linear(sizes, times)
    plain_beta, plain_alpha = np.polyfit(sizes, times, 1)
    for b in (1, 2, 3, 4):
        relative = abs(fit["alpha_ms"] + fit["beta_ms"] * b - times[b - 1]) / times[b - 1]
        plain = abs(plain_alpha + plain_beta * b - times[b - 1]) / times[b - 1]
        assert relative < min(0.15, plain / 3), (b, relative, plain)


def test_times_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_linear([1, 2], [1.0, 0.0])


def test_refit_fits_the_kept_medians_again(tmp_path: Path) -> None:
    sizes = [1, 2, 3, 4]
    old = ProfileSet(
        variants={"full": VariantProfile(alpha_ms=1.0, beta_ms=1.0, accuracy=0.9)},
        source="s",
        extra={"batch_sizes": sizes, "median_ms": {"full": [5.0 + 2.0 * b for b in sizes]}},
    )
    new = refit(old)
    assert new.variants["full"] == VariantProfile(alpha_ms=5.0, beta_ms=2.0, accuracy=0.9)
    assert new.extra["fit_method"] == FIT_METHOD
    assert new.extra["fit"]["full"]["max_rel_err"] < 1e-6
    assert new.source == "s"
    assert new.extra["median_ms"] == old.extra["median_ms"]

    path = tmp_path / "p.json"
    old.save(path)
    result = CliRunner().invoke(
        calibrate, ["--refit", str(path), "--out", str(tmp_path / "q.json")]
    )
    assert result.exit_code == 0, result.output
    assert ProfileSet.load(tmp_path / "q.json").variants["full"].alpha_ms == 5.0

    with pytest.raises(ValueError, match="keeps no medians"):
        refit(ProfileSet(variants=old.variants))
