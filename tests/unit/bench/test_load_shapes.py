"""bench/load_shapes.py: the load shapes outside the benchmark, as traces the simulator reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from slo_operator.sim.workloads import load_trace
from tests.unit.bench.scripts import BENCH, load


@pytest.fixture(scope="module")
def shapes() -> ModuleType:
    return load("load_shapes.py", "load_shapes_bench")


def test_every_shape_is_a_trace_the_simulator_reads_back(
    shapes: ModuleType, tmp_path: Path
) -> None:
    for name in shapes.SHAPES:
        rps = shapes.rates(name)
        assert len(rps) == shapes.LENGTH_S.get(name, shapes.HOUR_S), name
        assert (rps >= 0).all(), name
        assert rps.max() > 0, name
        path = tmp_path / f"{name}.csv"
        shapes.write(path, rps)
        stamps, knots_t, knots_rps = load_trace(path)
        assert stamps is None
        # a step function over the hour: each knot's rate is the file's rate from then on
        at = np.searchsorted(knots_t, np.arange(len(rps)), side="right") - 1
        np.testing.assert_allclose(np.asarray(knots_rps)[at], rps, atol=5e-4, err_msg=name)


def test_the_idle_bursts_are_idle_three_quarters_of_the_time(shapes: ModuleType) -> None:
    rps = shapes.rates("idle-bursts")
    assert (rps == 0).mean() == pytest.approx(0.75)
    assert set(np.unique(rps)) == {0.0, 200.0}
    starts = np.flatnonzero(np.diff(rps) > 0) + 1
    assert (np.diff(starts) == 240).all()


def test_an_unknown_shape_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "load_shapes.py"), str(tmp_path), "--names", "idle,cron"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown shape(s) idle" in done.stderr
    assert not list(tmp_path.iterdir())
