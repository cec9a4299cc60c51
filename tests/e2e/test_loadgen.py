"""The kind suite's load generator, run here against a local HTTP server (no cluster needed).

It must count every request it sends, by HTTP status, and report requests that got no answer
as errors: the e2e suite's "no request lost" assertion rests on these counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slo_local.promserver import free_port

aiohttp_web = pytest.importorskip("aiohttp.web")

LOADGEN = Path(__file__).with_name("loadgen.py")


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A predict endpoint answering 200, except 503 for every 4th request."""
    import asyncio
    import threading

    bodies: list[dict[str, object]] = []
    port = free_port()
    loop = asyncio.new_event_loop()

    async def predict(request: aiohttp_web.Request) -> aiohttp_web.Response:
        bodies.append(await request.json())
        status = 503 if len(bodies) % 4 == 0 else 200
        return aiohttp_web.json_response({"labels": ["positive"]}, status=status)

    app = aiohttp_web.Application()
    app.router.add_post("/v1/predict", predict)
    runner = aiohttp_web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(aiohttp_web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1/predict", bodies
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def _run(url: str, phases: list[dict[str, object]]) -> list[dict[str, object]]:
    env = {**os.environ, "TARGET_URL": url, "PHASES": json.dumps(phases), "TIMEOUT_S": "3"}
    proc = subprocess.run(
        [sys.executable, str(LOADGEN)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_counts_every_request_by_status(server: tuple[str, list[dict[str, object]]]) -> None:
    url, bodies = server
    reports = _run(
        url, [{"name": "a", "rps": 40, "seconds": 1}, {"name": "b", "rps": 20, "seconds": 1}]
    )
    a, b, total = reports
    assert (a["phase"], b["phase"], total["phase"]) == ("a", "b", "total")
    assert a["sent"] == 40
    assert b["sent"] == 20
    assert len(bodies) == 60
    assert all(body["inputs"] and isinstance(body["inputs"][0], str) for body in bodies)
    assert sum(a["codes"].values()) + sum(b["codes"].values()) == 60
    assert a["codes"]["503"] + b["codes"]["503"] == 15
    assert a["errors"] == {}
    assert a["p99_ms"] is not None


def test_requests_without_an_answer_are_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/predict"  # nothing listens there
    (report, _total) = _run(url, [{"name": "down", "rps": 10, "seconds": 1}])
    assert report["sent"] == 10
    assert report["codes"] == {}
    assert sum(report["errors"].values()) == 10
