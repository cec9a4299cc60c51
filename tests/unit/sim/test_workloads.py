"""Workload shapes, seeding and trace parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slo_operator.sim.workloads import SHIPPED_TRACE, load_trace, make_workload


@pytest.mark.parametrize(
    ("name", "checks"),
    [
        ("steady", {0: 100, 3000: 100}),
        ("step", {100: 100, 299: 100, 301: 200, 1100: 200}),
        ("step4", {100: 100, 301: 400}),
        ("ramp", {100: 100, 300: 100, 600: 250, 900: 400, 1400: 400, 2300: 100}),
        ("diurnal", {0: 100, 1800: 400, 3599: 100}),
    ],
)
def test_rate_schedules(name: str, checks: dict[int, float]) -> None:
    w = make_workload(name, base_rps=100, seed=0)
    for t, expected in checks.items():
        assert w.rate(t) == pytest.approx(expected, rel=0.01), t


def test_bursty_is_bursty_with_a_steady_mean() -> None:
    w = make_workload("bursty", base_rps=100, seed=3)
    r = w.rate(np.arange(0, w.duration_s, 1.0) + 0.5)
    assert set(np.round(np.unique(r))) <= {100.0, 300.0}
    assert 1.2 < r.mean() / 100 < 1.6  # 1.4x on average
    gaps = np.diff(w.arrivals())
    assert gaps.std() / gaps.mean() > 1.1  # inter-arrival CV above Poisson's 1


@pytest.mark.parametrize("name", ["steady", "step", "ramp", "diurnal", "bursty"])
def test_arrivals_follow_the_rate_and_the_seed(name: str) -> None:
    w = make_workload(name, base_rps=200, seed=7, duration_s=600)
    a = w.arrivals()
    assert np.all(np.diff(a) >= 0)
    assert a.min() >= 0
    assert a.max() < 600
    assert len(a) == pytest.approx(w.mean_rps * 600, rel=0.05)
    assert np.array_equal(a, make_workload(name, base_rps=200, seed=7, duration_s=600).arrivals())
    assert not np.array_equal(
        a, make_workload(name, base_rps=200, seed=8, duration_s=600).arrivals()
    )


def test_shipped_azure_trace_replays_and_rescales() -> None:
    raw = make_workload("trace", base_rps=1, seed=0)
    assert len(raw.arrivals()) == 8819  # the timestamps as they are
    scaled = make_workload("trace", base_rps=1, seed=0, target_mean_rps=100)
    a = scaled.arrivals()
    assert len(a) / scaled.duration_s == pytest.approx(100, rel=0.03)
    assert scaled.peak_rps > 8 * 100  # still bursty after rescaling


def test_t_seconds_rps_trace(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("t_seconds,rps\n0,100\n60,300\n120,0\n")
    w = make_workload("trace", base_rps=1, seed=0, trace_file=f, duration_s=180)
    assert w.rate(30) == 100
    assert w.rate(90) == 300
    assert w.rate(150) == 0
    counts = np.bincount(w.arrivals().astype(int) // 60, minlength=3)
    assert counts[0] == pytest.approx(6000, rel=0.05)
    assert counts[1] == pytest.approx(18000, rel=0.05)
    assert counts[2] == 0
    w2 = make_workload("trace", base_rps=1, seed=0, trace_file=f, duration_s=120,
                       target_mean_rps=50)  # fmt: skip
    assert w2.mean_rps == pytest.approx(50, rel=0.01)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "unknown trace format"),
        ("t_seconds,rps\n", "header and at least one row"),
        ("t_seconds,rps\n0,abc\n", "malformed"),
        ("t_seconds,rps\n0,-5\n", "malformed"),
        ("TIMESTAMP,x\nnot a date,1\n", "malformed"),
    ],
)
def test_bad_traces_are_refused(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_trace(f)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        make_workload("sawtooth", base_rps=1)
    with pytest.raises(ValueError, match="base_rps"):
        make_workload("step", base_rps=0)
    with pytest.raises(ValueError, match="target_mean_rps"):
        make_workload("trace", base_rps=1, target_mean_rps=-1)


def test_shipped_trace_keeps_its_attribution() -> None:
    readme = (SHIPPED_TRACE.parent / "README.md").read_text()
    assert "CC BY 4.0" in readme
    assert "Splitwise" in readme
