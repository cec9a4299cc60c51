"""bench/gpu_worker_check.py reads its load from Debian's `hey`: answers, failures, refusals."""

from __future__ import annotations

import importlib
import itertools
import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from slo_local.promserver import free_port

BENCH = Path(__file__).resolve().parents[3] / "bench"
HEY = shutil.which("hey")
pytestmark = pytest.mark.skipif(HEY is None, reason="Debian's hey is not installed")


@pytest.fixture(scope="module")
def check() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    return importlib.import_module("gpu_worker_check")


@pytest.fixture
def server() -> Iterator[tuple[str, dict[int, int]]]:
    """Answers POST /v1/predict with 200 and 500 in turn; counts what it answered."""
    counts = {200: 0, 500: 0}
    turn = itertools.cycle((200, 500))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                status = next(turn)
                counts[status] += 1
            body = b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", counts
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_non_200_answers_are_failures_and_only_200s_are_throughput(
    check: ModuleType, server: tuple[str, dict[int, int]]
) -> None:
    url, counts = server
    result = check._drive_hey(HEY, url, 1.0, 2, "good")
    answered = counts[200] + counts[500]
    assert answered > 100  # hey prints no 99th percentile under 100 answers
    assert abs(result["failures"] - counts[500]) <= 2  # hey stops mid-request at the deadline
    assert 0 < result["rps"] <= counts[200] / 0.9
    assert result["p50_ms"] is not None
    assert result["p99_ms"] >= result["p50_ms"]


def test_requests_with_no_answer_are_failures(check: ModuleType) -> None:
    result = check._drive_hey(HEY, f"http://127.0.0.1:{free_port()}", 0.5, 2, "good")
    assert result["failures"] > 0
    assert result["rps"] == 0.0
