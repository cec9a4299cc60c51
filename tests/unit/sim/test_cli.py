"""`latencyslo simulate`: options, the JSON contract, the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from slo_operator.cli import main
from slo_operator.sim.metrics import CONTRACT_KEYS


def test_simulate_writes_the_json_contract_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "r.json", tmp_path / "p.png"
    result = CliRunner().invoke(
        main,
        ["simulate", "--scenario", "step", "--duration", "400", "--policy",
         "latencyslo,static", "--json", str(out), "--plot", str(png)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    runs = doc["scenarios"]["step"]
    assert set(runs) == {"latencyslo", "static"}
    for metrics in runs.values():
        assert set(CONTRACT_KEYS) <= set(metrics)
        assert 0 <= metrics["slo_attainment_requests"] <= 1
        assert metrics["replica_seconds"] > 0
    assert png.stat().st_size > 10_000
    assert "latencyslo" in result.output


STATIC_STEP = ["simulate", "--scenario", "step", "--duration", "400", "--policy", "static"]


def _static_step(tmp_path: Path, flag: str, value: str) -> dict[str, Any]:
    """The JSON document of a fixed fleet on the step workload with `flag value`."""
    out = tmp_path / f"{flag.strip('-')}-{value}.json"
    r = CliRunner().invoke(main, [*STATIC_STEP, flag, value, "--json", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def test_the_queue_limit_is_the_plants(tmp_path: Path) -> None:
    """`--queue-limit` bounds each replica's queue as the worker's `--max-queue` does: a
    fixed fleet at a step beyond it refuses requests with a one-request queue, fewer with
    the default."""
    refused = {}
    for limit in ("1", "256"):
        doc = _static_step(tmp_path, "--queue-limit", limit)
        assert doc["settings"]["queue_limit"] == int(limit)
        refused[limit] = doc["scenarios"]["step"]["static"]["rejected"]
    assert refused["1"] > refused["256"], refused


def test_the_queue_wait_limit_is_the_plants(tmp_path: Path) -> None:
    """`--max-queue-wait-ms` refuses what waited too long as the worker's flag does: a fixed
    fleet at a step beyond it refuses more requests with a 20 ms limit than without."""
    got = {}
    for wait in ("0", "20"):
        doc = _static_step(tmp_path, "--max-queue-wait-ms", wait)
        assert doc["settings"]["queue_wait_ms"] == float(wait)
        got[wait] = doc["scenarios"]["step"]["static"]
    assert got["0"]["rejected"] < got["20"]["rejected"], got
    bad = CliRunner().invoke(main, [*STATIC_STEP, "--max-queue-wait-ms", "-1"])
    assert bad.exit_code != 0
    assert "--max-queue-wait-ms" in bad.output


def test_simulate_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_policy = runner.invoke(main, ["simulate", "--scenario", "step", "--policy", "magic"])
    assert bad_policy.exit_code != 0
    assert "unknown policy magic" in bad_policy.output
    bad_profile = tmp_path / "p.json"
    bad_profile.write_text("{}")
    r = runner.invoke(main, ["simulate", "--scenario", "step", "--profile", str(bad_profile)])
    assert r.exit_code != 0
    assert "ProfileSet" in r.output
    slo = tmp_path / "slo.yaml"
    slo.write_text("spec:\n  targetRef: {name: w}\n  objective: {latencyMs: -1}\n")
    r = runner.invoke(main, ["simulate", "--scenario", "step", "--slo", str(slo)])
    assert r.exit_code != 0
    assert "latency" in r.output.lower()


def test_simulate_runs_the_measured_plant_unless_told_otherwise(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["simulate", "--scenario", "step", "--duration", "120", "--policy", "static"]
    out = tmp_path / "m.json"
    r = runner.invoke(main, [*args, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "spread of" in json.loads(out.read_text())["settings"]["plant"]
    r = runner.invoke(main, [*args, "--plant", "model", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["settings"]["plant"].startswith("the profile's line")
    bad = tmp_path / "spread.json"
    bad.write_text('{"ratios": {"full": {"1": [0]}}}')
    r = runner.invoke(main, [*args, "--spread", str(bad)])
    assert r.exit_code != 0
    assert "ratios must be positive" in r.output


def test_a_target_no_replica_can_hold_is_a_clear_error(tmp_path: Path) -> None:
    slo = tmp_path / "slo.yaml"
    slo.write_text("spec:\n  targetRef: {name: w}\n  objective: {latencyMs: 2}\n")
    for plant in ("measured", "model"):
        r = CliRunner().invoke(
            main,
            ["simulate", "--scenario", "step", "--duration", "120", "--policy", "static",
             "--slo", str(slo), "--plant", plant],
        )  # fmt: skip
        assert r.exit_code != 0
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert "one replica of full misses p99 <= 2 ms at every rate tried" in r.output


def test_a_malformed_trace_file_is_a_clear_error(tmp_path: Path) -> None:
    cases = {
        "empty.csv": b"TIMESTAMP\n",
        "negative.csv": b"t_seconds,rps\n0,10\n10,-5\n",
        "binary.csv": bytes(range(128, 256)),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        r = CliRunner().invoke(
            main,
            ["simulate", "--scenario", "trace", "--trace-file", str(path), "--policy", "static"],
        )
        assert r.exit_code == 2, (name, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert f"Invalid value for --trace-file: {path}" in r.output, r.output
