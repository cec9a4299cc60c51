"""Hostile input against a real worker process: every answer is a 4xx naming the problem,
never a 500, and the worker goes on serving everyone else; the admin token rotates without a
restart; bad runtime-config files are refused with a clear log line."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.worker import WorkerProcess, run_worker


@pytest.fixture(scope="module")
def worker(
    fixture_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    workdir = tmp_path_factory.mktemp("hardening")
    (workdir / "config.json").write_text(json.dumps({"batchWindowMs": 2}))
    args = ["--runtime-config", str(workdir / "config.json"), "--max-inputs", "8"]
    with run_worker(fixture_model, args, workdir=workdir) as w:
        yield w


def post(w: WorkerProcess, body: bytes) -> httpx.Response:
    return httpx.post(
        w.url + "/v1/predict",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("body", "status", "words", "field"),
    [
        (b'{"inputs": ["good", "\\ud800"]}', 422, "lone surrogate", "inputs[1]"),
        (b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply", None),
        (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply", None),
        (b'{"inputs": [' + b"7" * 5000 + b"]}", 400, "digits", None),
        (b'{"inputs": [Infinity]}', 400, "Infinity", None),
        (b'{"inputs": ["\xff"]}', 400, "not UTF-8", None),
    ],
)
def test_hostile_bodies_get_a_4xx(
    worker: WorkerProcess, body: bytes, status: int, words: str, field: str | None
) -> None:
    resp = post(worker, body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]
    assert resp.json().get("field") == field
    assert post(worker, b'{"inputs": ["still serving"]}').status_code == 200


def test_a_bad_request_does_not_fail_the_good_ones_batched_with_it(
    fixture_model: Path, tmp_path: Path
) -> None:
    """With a 300 ms window a lone surrogate next to a good request made both 500."""
    import asyncio

    with run_worker(fixture_model, ["--batch-window-ms", "300"], workdir=tmp_path) as w:

        async def together() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=10) as client:
                headers = {"Content-Type": "application/json"}
                return await asyncio.gather(
                    client.post(w.url + "/v1/predict", json={"inputs": ["fine"]}),
                    client.post(
                        w.url + "/v1/predict", content=b'{"inputs": ["\\udfff"]}', headers=headers
                    ),
                    client.post(w.url + "/v1/predict", json={"inputs": ["also fine", "ok"]}),
                )

        good, bad, good2 = asyncio.run(together())
        assert bad.status_code == 422
        assert good.status_code == 200
        assert len(good.json()["outputs"]) == 1
        assert good2.status_code == 200
        assert len(good2.json()["outputs"]) == 2
        assert "Traceback" not in w.log()


def test_admin_big_window_is_a_422(worker: WorkerProcess) -> None:
    url = worker.admin_url + "/admin/config"
    headers = {**worker.admin_headers, "Content-Type": "application/json"}
    for body, field in (
        (b'{"batchWindowMs": ' + b"9" * 400 + b"}", "batchWindowMs"),
        (b'{"maxBatchSize": -' + b"9" * 400 + b"}", "maxBatchSize"),
        (b'{"maxBatchSize": 0}', "maxBatchSize"),
    ):
        resp = httpx.put(url, content=body, headers=headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == field
    resp = httpx.put(url, content=b'{"batchWindowMs": NaN}', headers=headers)
    assert resp.status_code == 400
    assert httpx.get(url, headers=worker.admin_headers).json()["batchWindowMs"] == 2


def test_non_utf8_authorization_header_is_a_401(worker: WorkerProcess) -> None:
    answer = raw_request(
        worker.admin_port,
        b"GET /admin/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\xc3(\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"Traceback" not in worker.log().encode()


def test_control_characters_in_a_header_are_one_log_line(worker: WorkerProcess) -> None:
    for port in (worker.port, worker.admin_port):
        answer = raw_request(
            port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Junk: a\x01\x1fb\r\n\r\n",
        )
        assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    time.sleep(0.2)
    log = worker.log()
    assert "refused a malformed HTTP request (400" in log
    assert "Traceback" not in log
    assert httpx.get(worker.url + "/healthz").status_code == 200


def test_the_admin_token_rotates_without_a_restart(worker: WorkerProcess) -> None:
    token_file = worker.log_path.parent / "admin-token"
    url = worker.admin_url + "/admin/config"
    assert httpx.get(url, headers=worker.admin_headers).status_code == 200
    new = token_file.parent / "admin-token.new"
    new.write_text("rotated-token\n")
    os.replace(new, token_file)
    assert httpx.get(url, headers={"Authorization": "Bearer rotated-token"}).status_code == 200
    assert httpx.get(url, headers=worker.admin_headers).status_code == 401
    new.write_text(worker.token + "\n")
    os.replace(new, token_file)
    assert httpx.get(url, headers=worker.admin_headers).status_code == 200


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"batchWindowMs": Infinity}', "Infinity is not a JSON number"),
        ('{"batchWindowMs": 1e999}', "batchWindowMs: must be a number in 0..1000"),
        ('{"batchWindowMs": ' + "1" * 400 + "}", "batchWindowMs: must be a number in 0..1000"),
        ('{"maxBatchSize": 0}', "maxBatchSize: must be an integer in 1..1024"),
        ('{"maxBatchSize": -5}', "maxBatchSize: must be an integer in 1..1024"),
        ('{"maxBatchSize": NaN}', "NaN is not a JSON number"),
    ],
)
def test_bad_runtime_config_files_are_refused_clearly(
    worker: WorkerProcess, content: str, words: str
) -> None:
    path = worker.log_path.parent / "config.json"
    marker = f"ignored: {words}" if ":" in words else words
    before = worker.log().count(marker)
    path.write_text(content)
    deadline = time.monotonic() + 10
    while worker.log().count(marker) == before:
        assert time.monotonic() < deadline, worker.log()[-2000:]
        time.sleep(0.1)
    config = httpx.get(worker.admin_url + "/admin/config", headers=worker.admin_headers).json()
    assert config["batchWindowMs"] == 2
    assert 1 <= config["maxBatchSize"] <= 1024
    assert "could not be applied" not in worker.log()  # no traceback path
    path.write_text(json.dumps({"batchWindowMs": 2}))
