"""A short fuzzing run over every worker endpoint (the long run: bench/fuzz_worker.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.worker import run_worker
from tests.support.worker_fuzz import ENDPOINTS, fuzz

CASES = 60


def test_fuzz_every_endpoint(fixture_model: Path, tmp_path: Path) -> None:
    with run_worker(fixture_model, ["--max-inputs", "8"], workdir=tmp_path) as w:
        report = fuzz(w, CASES, seed=0)
    assert report["failures"] == []
    assert report["failure_count"] == 0
    assert report["worker_alive"]
    assert report["canary"]["sent"] > 0
    assert report["canary"]["bad"] == 0
    assert report["canary"]["refused"] < report["canary"]["sent"] / 2  # only while a limit is set
    assert set(report["endpoints"]) == {f"{m} {p}" for _, m, p in ENDPOINTS}
    for name, r in report["endpoints"].items():
        assert r["raw_cases"] == CASES, name
        assert r["schema_cases"] >= 1, name
    # the generated requests reach the handlers and their rules, not only the router
    predict = report["endpoints"]["POST /v1/predict"]["statuses"]
    assert predict.get("200", 0) > 0
    assert predict.get("422", 0) > 0
    assert predict.get("400", 0) > 0
    put = report["endpoints"]["PUT /admin/config"]["statuses"]
    assert put.get("200", 0) > 0
    assert put.get("422", 0) > 0
    assert put.get("401", 0) > 0
