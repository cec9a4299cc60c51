"""bench/retime_trace.py: the same requests at other times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from slo_operator.sim.workloads import SHIPPED_TRACE, load_trace
from tests.unit.bench.scripts import BENCH, load


@pytest.fixture(scope="module")
def retime() -> ModuleType:
    return load("retime_trace.py", "retime_trace_bench")


@pytest.fixture(scope="module")
def shipped() -> np.ndarray:
    stamps, _, _ = load_trace(SHIPPED_TRACE)
    assert stamps is not None
    return stamps - stamps[0]


def test_reversed_is_the_mirror_of_the_gaps(retime: ModuleType, shipped: np.ndarray) -> None:
    out = retime.retimed(shipped, True, None, 0)
    assert len(out) == len(shipped)
    assert out[0] == 0.0
    assert out[-1] == pytest.approx(shipped[-1])
    np.testing.assert_allclose(np.diff(out), np.diff(shipped)[::-1], atol=1e-9)


def test_shuffled_blocks_keep_each_blocks_requests_and_move_the_blocks(
    retime: ModuleType, shipped: np.ndarray
) -> None:
    out = retime.retimed(shipped, False, 300.0, 7)
    assert len(out) == len(shipped)
    before = np.bincount((shipped // 300).astype(int))
    after = np.bincount((out // 300).astype(int), minlength=len(before))
    assert sorted(before) == sorted(after)  # the same blocks ...
    assert not np.array_equal(before, after)  # ... in another order
    # the busiest 10 s of the trace is still there, at another time (blocks of 300 s start
    # on 10 s boundaries)
    peak = lambda s: np.bincount((s // 10).astype(int)).max()  # noqa: E731
    assert peak(out) == peak(shipped)


def test_a_shift_plays_the_trace_as_a_loop(retime: ModuleType, shipped: np.ndarray) -> None:
    out = retime.shifted(shipped, 700.0)
    assert len(out) == len(shipped)
    period = shipped[-1] + shipped[-1] / (len(shipped) - 1)
    # what came at t now comes at t + 700 (mod the period)
    assert (
        np.bincount(((shipped + 700.0) % period // 10).astype(int)).tolist()
        == np.bincount((out // 10).astype(int)).tolist()
    )
    assert out[0] >= 0.0
    assert out[-1] < period


@pytest.mark.parametrize("shift", [0.0, -5.0, 1e6])
def test_a_shift_outside_the_period_is_refused(
    retime: ModuleType, shipped: np.ndarray, shift: float
) -> None:
    with pytest.raises(ValueError, match="the trace's period"):
        retime.shifted(shipped, shift)


def test_the_written_trace_is_read_back_as_written(tmp_path: Path) -> None:
    out = tmp_path / "rev.csv"
    done = subprocess.run(
        [sys.executable, str(BENCH / "retime_trace.py"), str(SHIPPED_TRACE), str(out), "--reverse"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stamps, _, _ = load_trace(out)
    src, _, _ = load_trace(SHIPPED_TRACE)
    assert stamps is not None
    assert src is not None
    assert len(stamps) == len(src)
    np.testing.assert_allclose(np.diff(stamps), np.diff(src)[::-1], atol=2e-6)


def test_a_rate_trace_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "rate.csv"
    src.write_text("t_seconds,rps\n0,5\n60,10\n")
    done = subprocess.run(
        [sys.executable, str(BENCH / "retime_trace.py"), str(src), str(tmp_path / "o.csv"),
         "--reverse"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not a TIMESTAMP trace" in done.stderr
