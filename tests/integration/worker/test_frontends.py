"""A worker with `--frontends N`: the same contract as one process, served by N HTTP processes.

Each test starts a real worker on the fixture family; requests go over several connections so
that the kernel spreads them over the frontends (`SO_REUSEPORT`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.worker import run_worker, start_worker

TEXTS = ["a fine film", "dull and slow", "ok"]


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry))
    return found


def _predict_many(url: str, n: int, inputs: list[str]) -> list[httpx.Response]:
    out = []
    for _ in range(n):
        with httpx.Client(timeout=10) as client:  # a new connection each: spread over frontends
            out.append(client.post(url + "/v1/predict", json={"inputs": inputs}))
    return out


def _request_count(metrics: str, variant: str, code: int) -> float:
    labels = {f'code="{code}"', f'variant="{variant}"'}
    for line in metrics.splitlines():
        match = re.match(r"^inference_requests_total\{(.*)\} (\S+)$", line)
        if match and labels <= set(match.group(1).split(",")):
            return float(match.group(2))
    return 0.0


def test_frontends_answer_as_the_single_process_does(fixture_model: Path, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with run_worker(fixture_model, workdir=tmp_path / "one") as single:
        expected = httpx.post(single.url + "/v1/predict", json={"inputs": TEXTS}).json()
    with run_worker(fixture_model, ["--frontends", "2"], workdir=tmp_path / "two") as w:
        assert len(children(w.proc.pid)) == 2
        answers = _predict_many(w.url, 12, TEXTS)
        assert {r.status_code for r in answers} == {200}
        assert all(r.json() == expected for r in answers)
        # bad requests are refused by the frontend with the same statuses and fields
        bad = httpx.post(
            w.url + "/v1/predict", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400
        assert "not valid JSON" in bad.json()["error"]
        wrong = httpx.post(w.url + "/v1/predict", json={"inputs": ["ok", 3]})
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "inputs[1]"
        text = httpx.post(
            w.url + "/v1/predict", content=b"x", headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 415
        assert httpx.get(w.url + "/nowhere").status_code == 404
        assert httpx.get(w.url + "/openapi.json").json()["paths"]
        # every frontend's answers land in the one metrics registry, whichever frontend serves it
        metrics = httpx.get(w.url + "/metrics").text
        assert _request_count(metrics, "full", 200) == 12
        assert _request_count(metrics, "full", 422) == 1
        assert "inference_batch_size_bucket" in metrics


def test_a_switch_reaches_every_frontend(fixture_model: Path, tmp_path: Path) -> None:
    with run_worker(fixture_model, ["--frontends", "2"], workdir=tmp_path) as w:
        r = httpx.put(
            w.admin_url + "/admin/config", json={"variant": "distilled"}, headers=w.admin_headers
        )
        assert r.status_code == 200
        answers = _predict_many(w.url, 8, ["ok"])
        assert {a.json()["variant"] for a in answers} == {"distilled"}
        for _ in range(4):
            with httpx.Client() as client:
                assert client.get(w.url + "/readyz").json() == {
                    "ready": True,
                    "variant": "distilled",
                }


def test_a_frontend_that_dies_is_replaced(fixture_model: Path, tmp_path: Path) -> None:
    with run_worker(fixture_model, ["--frontends", "2"], workdir=tmp_path) as w:
        first = children(w.proc.pid)
        time.sleep(5.5)  # past the start-up grace: a later death is replaced, not fatal
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = children(w.proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2, w.log()[-2000:]
        assert victim not in now
        time.sleep(1.0)  # the new one binds the port
        assert {r.status_code for r in _predict_many(w.url, 6, ["ok"])} == {200}
        assert w.proc.poll() is None
    assert "starting another" in w.log()


def test_a_port_taken_by_another_program_stops_the_worker(
    fixture_model: Path, tmp_path: Path
) -> None:
    w = start_worker(fixture_model, ["--frontends", "2"], workdir=tmp_path)
    try:
        # take the worker's port without SO_REUSEPORT before its frontends bind it
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", w.port))
            taken.listen()
            code = w.wait(60)
    finally:
        w.terminate()
    assert code == 1, w.log()[-2000:]
    assert "exited with 1 at start" in w.log()
    assert not children(w.proc.pid)


@pytest.mark.slow
def test_sigterm_stops_the_frontends_after_the_drain(slow_model: Path, tmp_path: Path) -> None:
    w = start_worker(slow_model, ["--frontends", "2", "--drain-delay", "1"], workdir=tmp_path)
    try:
        w.wait_ready(60)
        kids = children(w.proc.pid)
        assert len(kids) == 2
        w.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # readiness off at once, requests still served during the delay
        with httpx.Client() as client:
            assert client.get(w.url + "/readyz").status_code == 503
            assert client.post(w.url + "/v1/predict", json={"inputs": ["x"]}).status_code == 200
        assert w.wait(30) == 0
    finally:
        w.terminate()
    assert not any(Path(f"/proc/{pid}").exists() for pid in kids)
    assert "stopped (exit 0)" in w.log()
