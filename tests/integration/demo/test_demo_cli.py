"""`latencyslo demo` as a user runs it: files and summary, and a clean stop on Ctrl-C or
SIGTERM with no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slo_local.demo.run import DEMO_SUMMARY_KEYS
from slo_local.demo.story import ACTS
from tests.support.worker import REPO_ROOT

pytestmark = pytest.mark.slow


def _command(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "slo_operator.cli", "demo", "--plain",
        "--warmup", "5", "--cooldown", "0", *args,
    ]  # fmt: skip


def _leftovers(marker: Path) -> list[str]:
    """Command lines of running processes that mention `marker` (workers, Prometheus)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # the workers and Prometheus of this run, never the test runner itself (pytest's
        # temporary folders also hold "pytest" in their path, so match what runs instead)
        ours = "-m inference_worker" in cmdline or cmdline.split(" ", 1)[0].endswith("prometheus")
        if str(marker) in cmdline and ours:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_a_short_run_writes_the_timeline_and_the_summary(
    fixture_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary_path = tmp_path / "summary.json"
    proc = subprocess.run(
        _command(
            "--duration",
            "15",
            "--model-dir",
            str(fixture_model),
            "--out",
            str(out),
            "--json",
            str(summary_path),
            "--rate",
            "20",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert tuple(summary) == DEMO_SUMMARY_KEYS
    assert tuple(summary["story"]) == ACTS
    assert "story" in proc.stdout  # the one-line verdict
    assert summary["requests"] > 200
    assert summary["failed_requests"] == 0
    lines = (out / "timeline.csv").read_text().splitlines()
    assert lines[0].startswith("t,offered_rps,")
    assert len(lines) >= 1 + 15
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    details = json.loads((out / "details.json").read_text())
    assert details["replica_startup_seconds"]
    # one line per control interval in a pipe (no live view escape codes)
    steps = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(steps) >= 2
    assert "\x1b[" not in proc.stdout
    assert not _leftovers(out)


def test_compare_runs_ours_then_a_baseline_on_the_same_arrivals(
    fixture_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    both_path = tmp_path / "both.json"
    args = [
        "--duration", "15", "--model-dir", str(fixture_model), "--out", str(out),
        "--json", str(both_path), "--rate", "20", "--compare", "kpa-rps",
    ]  # fmt: skip
    proc = subprocess.run(
        _command(*args),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    both = json.loads(both_path.read_text())
    assert list(both) == ["latencyslo", "kpa-rps"]
    for summary in both.values():
        assert tuple(summary) == DEMO_SUMMARY_KEYS
        assert summary["failed_requests"] == 0
    # the same arrivals: the same number of requests, sent to the same kind of workers
    assert both["latencyslo"]["requests"] == both["kpa-rps"]["requests"]
    # a baseline never moves the variant: it cannot bridge or restore
    assert both["kpa-rps"]["story"]["bridge"] is None
    assert both["kpa-rps"]["story"]["restore"] is None
    details = json.loads((out / "kpa-rps" / "details.json").read_text())
    assert details["policy"]["policy"] == "kpa-rps"
    assert details["policy"]["target"] > 0
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "compare.json").read_text()) == both
    assert not _leftovers(out)


def test_a_bad_policy_is_refused_by_name() -> None:
    proc = subprocess.run(
        _command("--policy", "cron"), capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert proc.returncode == 2
    assert "--policy 'cron': one of hpa" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_cleanly(
    fixture_model: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _command(
            "--duration", "90", "--model-dir", str(fixture_model), "--out", str(out), "--rate", "20"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.startswith("load:"):
                break
            assert time.monotonic() < deadline, "the load never started"
        time.sleep(6.0)  # workers, Prometheus (if any), load and controller all running
        assert _leftovers(out), "expected running workers"
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest[-3000:]
    assert "interrupted" in rest
    assert not _leftovers(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0  # the partial run is written too
    assert summary["failed_requests"] == 0


def test_a_bad_slo_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "slo.yaml"
    bad.write_text("apiVersion: latencyslo.io/v1alpha1\nkind: LatencySLO\nspec: {}\n")
    proc = subprocess.run(
        _command("--slo", str(bad), "--out", str(tmp_path / "out")),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert "--slo" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_even_a_killed_demo_leaves_no_worker(fixture_model: Path, tmp_path: Path) -> None:
    """SIGKILL gives the demo no chance to clean up: its workers die with it (Linux)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux-only")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _command(
            "--duration",
            "60",
            "--model-dir",
            str(fixture_model),
            "--out",
            str(out),
            "--rate",
            "20",
            "--metrics",
            "direct",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("load:"):
                break
        time.sleep(3.0)
        assert _leftovers(out)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while _leftovers(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _leftovers(out)
