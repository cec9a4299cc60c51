"""bench/trace_timings.py: one trace at many timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import MEASURED_PROFILE, load_profiles
from slo_operator.sim.runner import default_spec, run_scenario
from slo_operator.sim.sweep import prepare, run_oracle, run_ours
from tests.unit.bench.scripts import BENCH, load


def _trace(path: Path) -> Path:
    """Ten minutes: a trickle, then a minute at ten times its rate in the middle."""
    rng = np.random.default_rng(3)
    quiet = rng.uniform(0.0, 600.0, 600)
    burst = rng.uniform(240.0, 300.0, 600)
    retime = load("retime_trace.py", "retime_trace_timings")
    retime.write_trace(path, np.sort(np.concatenate((quiet, burst))))
    return path


def _timings(*args: str) -> subprocess.CompletedProcess[str]:
    """`bench/trace_timings.py ARGS` run as a script, one job."""
    return subprocess.run(
        [sys.executable, str(BENCH / "trace_timings.py"), *args, "--jobs", "1"],
        capture_output=True, text=True, check=False, cwd=BENCH.parent,
    )  # fmt: skip


def _agrees_with_simulate(run: dict, src: Path, mean_rps: float, settings: SimSettings) -> None:
    """`run` (ours, unshifted) is the trace as `latencyslo simulate` replays it."""
    profiles, source = load_profiles(None)
    direct = run_scenario(
        "trace", policies=["latencyslo"], profiles=profiles, plant=measured_plant(source),
        seed=0, trace_file=src, target_mean_rps=mean_rps, settings=settings,
    ).runs["latencyslo"].metrics  # fmt: skip
    for key in ("slo_attainment_requests", "violating_windows", "replica_seconds"):
        assert run[key] == pytest.approx(direct[key]), key


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_every_shift_is_simulated_as_simulate_would(tmp_path: Path) -> None:
    src = _trace(tmp_path / "burst.csv")
    out = tmp_path / "timings.json"
    done = _timings("--json", str(out), "--trace-file", str(src), "--step", "300",
                    "--loads", "2", "--policy", "latencyslo,static")  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert sorted((r["trace"], r["policy"]) for r in runs) == [
        ("burst+0", "latencyslo"), ("burst+0", "static"),
        ("burst+300", "latencyslo"), ("burst+300", "static"),
    ]  # fmt: skip
    ours = next(r for r in runs if r["trace"] == "burst+0" and r["policy"] == "latencyslo")
    _agrees_with_simulate(ours, src, 2 * doc["replica_capacity_rps"], SimSettings())
    summary = {(s["policy"], s["load"]): s for s in doc["summary"]}
    row = summary[("latencyslo", 2.0)]
    within = [r["slo_attainment_requests"] for r in runs if r["policy"] == "latencyslo"]
    assert row["runs"] == 2
    assert row["worst_within"] == min(within)
    assert row["g1_met"] == sum(w >= 0.98 for w in within)
    assert "latencyslo at 2x: 2 runs" in done.stdout


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
@pytest.mark.parametrize(
    ("flags", "settings"),
    [
        (("--queue-limit", "4"), SimSettings(queue_limit=4)),
        (("--max-queue-wait-ms", "30"), SimSettings(queue_wait_ms=30.0)),
    ],
)
def test_the_worker_queue_settings_reach_every_run(
    tmp_path: Path, flags: tuple[str, str], settings: SimSettings
) -> None:
    """`--queue-limit` and `--max-queue-wait-ms` are the plant's, as `latencyslo simulate`
    sets them (the worker's `--max-queue` and `--max-queue-wait-ms`)."""
    src = _trace(tmp_path / "burst.csv")
    out = tmp_path / "timings.json"
    done = _timings("--json", str(out), "--trace-file", str(src), "--step", "600",
                    "--loads", "4", *flags)  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["queue_limit"] == settings.queue_limit
    assert doc["queue_wait_ms"] == settings.queue_wait_ms
    (ours,) = doc["runs"]
    _agrees_with_simulate(ours, src, 4 * doc["replica_capacity_rps"], settings)
    bad = _timings("--json", str(out), flags[0], "-1")
    assert bad.returncode == 2
    assert flags[0] in bad.stderr


def test_a_step_must_be_positive(tmp_path: Path) -> None:
    done = _timings("--json", str(tmp_path / "t.json"), "--step", "0")
    assert done.returncode == 2
    assert "--step" in done.stderr


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_the_variant_oracle_is_the_pareto_oracle_on_each_timing(tmp_path: Path) -> None:
    """`--policy variant-oracle`: the search `bench/pareto.py` reports as its oracle, on the
    same arrivals (the trace rescaled to the same load), next to the simulated policies."""
    src = _trace(tmp_path / "burst.csv")
    out = tmp_path / "timings.json"
    done = _timings("--json", str(out), "--trace-file", str(src), "--step", "1000",
                    "--loads", "2", "--policy", "latencyslo,variant-oracle")  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = {r["policy"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {"latencyslo", "variant-oracle"}
    profiles, source = load_profiles(None)
    plant = measured_plant(source)
    prep = prepare("trace", spec=default_spec(), profiles=profiles, settings=SimSettings(),
                   plant=plant, seed=0, trace_file=src, trace_load=2.0)  # fmt: skip
    oracle, _ = run_oracle(prep)
    for key in ("slo_attainment_requests", "violating_windows", "replica_seconds", "accuracy"):
        assert runs["variant-oracle"][key] == pytest.approx(oracle[key]), key
    assert runs["latencyslo"]["replica_seconds"] == pytest.approx(run_ours(prep)["replica_seconds"])
    assert "variant-oracle at 2x: 1 runs" in done.stdout
