"""Traces in bench/pareto.py: each one rescaled to the loads asked for, one scenario per load,
and prepared again from what the results file recorded."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from slo_operator.sim.baselines import calibrate_fleet
from slo_operator.sim.engine import SimSettings
from slo_operator.sim.profiles import default_profiles
from slo_operator.sim.runner import default_spec
from slo_operator.sim.sweep import prepare
from tests.unit.bench.scripts import load


@pytest.fixture(scope="module")
def pareto() -> ModuleType:
    return load("pareto.py", "pareto_bench_traces")


def test_without_loads_the_shipped_trace_runs_at_1x_and_a_file_as_it_is(
    pareto: ModuleType,
) -> None:
    jobs = pareto.scenario_jobs(["step", "trace"], [Path("x/conv.csv")], None)
    assert [(j.name, j.workload, j.file, j.load) for j in jobs] == [
        ("step", "step", None, None),
        ("trace", "trace", None, None),
        ("file:conv", "trace", Path("x/conv.csv"), None),
    ]


def test_each_trace_runs_once_per_load_named_by_it(pareto: ModuleType) -> None:
    jobs = pareto.scenario_jobs(["trace", "ramp"], [Path("conv.csv")], [1.0, 3.0])
    assert [(j.name, j.file, j.load) for j in jobs] == [
        ("ramp", None, None),
        ("trace", None, 1.0),  # the shipped trace at its usual load keeps its name
        ("trace@3x", None, 3.0),
        ("file:conv@1x", Path("conv.csv"), 1.0),
        ("file:conv@3x", Path("conv.csv"), 3.0),
    ]
    assert pareto.scenario_jobs([], [], [2.5]) == []  # no trace asked for


def test_a_recorded_trace_is_prepared_again_as_it_ran(pareto: ModuleType) -> None:
    job = pareto.Job("file:conv@3x", "trace", Path("conv.csv"), 3.0)
    assert pareto.Job.of(job.name, job.record()) == job
    shipped = pareto.Job("trace@3x", "trace", None, 3.0)
    assert pareto.Job.of(shipped.name, shipped.record()) == shipped
    assert pareto.Job.of("bursty", None) == pareto.Job("bursty", "bursty")
    assert pareto.Job.of("file:old", None) is None  # a trace whose file was never recorded


def test_a_missing_trace_file_names_the_scenario(pareto: ModuleType, tmp_path: Path) -> None:
    job = pareto.Job("file:gone@1x", "trace", tmp_path / "gone.csv", 1.0)
    with pytest.raises(SystemExit, match=r"file:gone@1x: trace file .*gone\.csv not found"):
        job.prepare(default_spec(), (default_profiles()[0], None, SimSettings()), 0)


@pytest.mark.parametrize("text", ["", "0", "-1", "x", "1,nan", "inf"])
def test_bad_loads_are_refused(pareto: ModuleType, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        pareto._loads(text)


def test_loads_are_read(pareto: ModuleType) -> None:
    assert pareto._loads("1, 3") == [1.0, 3.0]


def _mean_rps(name: str, **kw: object) -> float:
    prep = prepare(name, spec=default_spec(), profiles=default_profiles()[0],
                   settings=SimSettings(), plant=None, seed=0, **kw)  # type: ignore[arg-type]  # fmt: skip
    return float(np.mean(prep.per_s[prep.warmup_s :]))


def test_a_trace_is_rescaled_to_the_load_asked_for(tmp_path: Path) -> None:
    spec, profiles = default_spec(), default_profiles()[0]
    cap = calibrate_fleet(spec, profiles, "full", SimSettings(), None).capacity_rps
    shipped_1x, shipped_3x = _mean_rps("trace"), _mean_rps("trace", trace_load=3.0)
    assert shipped_1x == pytest.approx(cap, rel=0.05)
    assert shipped_3x == pytest.approx(3 * cap, rel=0.05)
    csv = tmp_path / "flat.csv"
    csv.write_text("t_seconds,rps\n" + "".join(f"{t},{7 + (t % 3)}\n" for t in range(600)))
    as_is = _mean_rps("trace", trace_file=csv)
    assert as_is == pytest.approx(8.0, rel=0.1)
    assert _mean_rps("trace", trace_file=csv, trace_load=2.0) == pytest.approx(2 * cap, rel=0.05)


def test_a_load_for_a_built_in_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="trace_load applies to the 'trace' workload"):
        _mean_rps("ramp", trace_load=2.0)
    with pytest.raises(ValueError, match="trace_load must be > 0"):
        _mean_rps("trace", trace_load=0.0)


def test_a_rerun_prepares_recorded_traces_and_skips_unknown_ones(pareto: ModuleType) -> None:
    doc = {
        "scenarios": {"trace@3x": {}, "file:lost": {}, "trace": {}},
        "meta": {"seeds": [0], "traces": {"trace@3x": {"file": None, "load": 3.0}}},
    }
    sim = (default_profiles()[0], None, SimSettings())
    seen = {
        name: runs[0]
        for name, _, runs in pareto._per_seed(
            doc, default_spec(), sim, lambda p: float(np.mean(p.per_s[p.warmup_s :]))
        )
    }
    assert set(seen) == {"trace@3x", "trace"}  # "file:lost" has no recorded file
    assert seen["trace@3x"] == pytest.approx(3 * seen["trace"], rel=0.05)
