"""Start-up rules, the runtime-config file, overload (queue full, deadline) and SIGTERM drain,
each against a real worker process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.worker import REPO_ROOT, burst, run_worker, start_worker


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_cli_commands_are_wired() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "operator")]),
    }
    for command in ("worker", "build-demo-model", "calibrate"):
        out = subprocess.run(
            [sys.executable, "-m", "slo_operator.cli", command, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        ).stdout
        assert "--threads" in out
    out = subprocess.run(
        [sys.executable, "-m", "inference_worker", "--help"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    for flag in ("--model-dir", "--admin-token-file", "--runtime-config", "--batch-window-ms"):
        assert flag in out


def test_admin_port_refuses_to_start_without_a_token(fixture_model: Path, tmp_path: Path) -> None:
    w = start_worker(fixture_model, token=None, workdir=tmp_path)
    assert w.wait(60) != 0
    assert "admin port needs a bearer token" in w.log()


def test_no_admin_runs_without_a_token(fixture_model: Path, tmp_path: Path) -> None:
    with run_worker(fixture_model, ["--no-admin"], token=None, workdir=tmp_path) as w:
        resp = httpx.post(w.url + "/v1/predict", json={"inputs": ["fine"]})
        assert resp.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(w.admin_url + "/admin/config")


def test_token_from_the_environment(fixture_model: Path, tmp_path: Path) -> None:
    env = {"LATENCYSLO_ADMIN_TOKEN": "from-env"}
    with run_worker(fixture_model, token=None, env=env, workdir=tmp_path) as w:
        ok = httpx.get(w.admin_url + "/admin/config", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200


def test_unknown_initial_variant_is_a_clear_error(fixture_model: Path, tmp_path: Path) -> None:
    w = start_worker(fixture_model, ["--variant", "tiny"], workdir=tmp_path)
    assert w.wait(60) != 0
    assert "'tiny' is not one of" in w.log()


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    w = start_worker(tmp_path, workdir=tmp_path)
    assert w.wait(60) != 0
    assert "no variant manifest" in w.log()


def swap_config(link: Path, body: object) -> None:
    """Update the file the way a ConfigMap volume does: new file, then swap a symlink."""
    data_dir = link.parent / f"..data-{time.monotonic_ns()}"
    data_dir.mkdir()
    (data_dir / "config.json").write_text(body if isinstance(body, str) else json.dumps(body))
    tmp_link = link.parent / "config.json.tmp"
    tmp_link.symlink_to(data_dir / "config.json")
    os.replace(tmp_link, link)


@pytest.mark.slow
def test_runtime_config_file_is_read_at_start_and_followed(
    fixture_model: Path, tmp_path: Path
) -> None:
    link = tmp_path / "config.json"
    swap_config(link, {"variant": "distilled", "batchWindowMs": 3, "maxBatchSize": 8})
    with run_worker(fixture_model, ["--runtime-config", str(link)], workdir=tmp_path) as w:
        url, h = w.admin_url + "/admin/config", w.admin_headers

        def config() -> dict[str, object]:
            return httpx.get(url, headers=h).json()

        assert config() == {
            "variant": "distilled", "batchWindowMs": 3, "maxBatchSize": 8, "maxQueueWaitMs": 0,
        }  # fmt: skip
        assert httpx.get(w.url + "/readyz").json()["variant"] == "distilled"
        swap_config(
            link,
            {"variant": "quantized", "batchWindowMs": 0, "maxBatchSize": 4, "maxQueueWaitMs": 70},
        )
        wait_for(lambda: config()["variant"] == "quantized")
        assert config() == {
            "variant": "quantized", "batchWindowMs": 0, "maxBatchSize": 4, "maxQueueWaitMs": 70,
        }  # fmt: skip
        # an invalid document is logged and ignored
        swap_config(link, {"variant": "tiny"})
        wait_for(lambda: "runtime config" in w.log() and "ignored" in w.log())
        swap_config(link, "{not json")
        time.sleep(1.5)
        assert config()["variant"] == "quantized"
        # an admin PUT holds until the file changes again
        httpx.put(url, json={"variant": "full"}, headers=h, timeout=30)
        time.sleep(1.5)
        assert config()["variant"] == "full"
        swap_config(link, {"variant": "distilled"})
        wait_for(lambda: config()["variant"] == "distilled")


@pytest.mark.slow
def test_queue_full_and_deadline(slow_model: Path, tmp_path: Path) -> None:
    args = ["--max-batch-size", "1", "--max-queue", "6", "--request-timeout-ms", "150"]
    with run_worker(slow_model, args, workdir=tmp_path) as w:
        responses = asyncio.run(burst(w.url, 20))
        codes = Counter(r.status_code for r in responses)
        assert codes[200] >= 1
        assert codes[503] >= 1  # queue full
        assert codes[504] >= 1  # 6 queued x 40 ms each (one a batch) is past the 150 ms deadline
        assert set(codes) <= {200, 503, 504}
        for r in responses:
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1"
                assert "queue is full" in r.json()["error"]
            if r.status_code == 504:
                assert "deadline" in r.json()["error"]
        metrics = httpx.get(w.url + "/metrics").text
        assert re.search(r'inference_requests_total\{code="503",variant="full"\} [1-9]', metrics)
        assert re.search(r'inference_requests_total\{code="504",variant="full"\} [1-9]', metrics)
        # refused and timed-out requests are in the latency histogram: the controller sees them
        inf = {
            m["outcome"]: float(m["n"])
            for m in re.finditer(
                r'inference_request_duration_seconds_bucket\{le="\+Inf",outcome="(?P<outcome>\w+)",'
                r'variant="full"\} (?P<n>[0-9.]+)',
                metrics,
            )
        }
        assert inf.get("refused") == codes[503]
        assert inf.get("timeout") == codes[504]
        assert inf.get("served") == codes[200]
        assert re.search(
            r'inference_request_duration_seconds_bucket\{le="2.0",outcome="refused",'
            r'variant="full"\} 0.0',
            metrics,
        )
        assert httpx.post(w.url + "/v1/predict", json={"inputs": ["x"]}).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("frontends", [0, 2])
def test_max_queue_wait_refuses_late_requests_unrun(
    slow_model: Path, tmp_path: Path, frontends: int
) -> None:
    """A burst of 20 one-text requests at 40 ms a batch of one: those that waited over 100
    ms when their turn came are answered 503 without running; the model ran exactly the
    served ones, and the refused ones count in the histogram's +Inf bucket (HTTP in this
    process or in frontend processes)."""
    args = ["--max-batch-size", "1", "--max-queue-wait-ms", "100", "--frontends", str(frontends)]
    with run_worker(slow_model, args, workdir=tmp_path) as w:
        responses = asyncio.run(burst(w.url, 20))
        codes = Counter(r.status_code for r in responses)
        assert set(codes) <= {200, 503}
        assert 1 <= codes[200] <= 10
        assert codes[503] >= 10
        for r in responses:
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1"
                assert "in the queue" in r.json()["error"]
        metrics = httpx.get(w.url + "/metrics").text
        batches = re.search(r"inference_batch_size_count ([0-9.]+)", metrics)
        assert batches is not None
        assert float(batches.group(1)) == codes[200]
        refused = re.search(
            r'inference_request_duration_seconds_bucket\{le="\+Inf",outcome="refused",'
            r'variant="full"\} ([0-9.]+)',
            metrics,
        )
        assert refused is not None
        assert float(refused.group(1)) == codes[503]
        assert httpx.post(w.url + "/v1/predict", json={"inputs": ["x"]}).status_code == 200


@pytest.mark.slow
def test_the_queue_wait_limit_changes_live(slow_model: Path, tmp_path: Path) -> None:
    """`maxQueueWaitMs` in the runtime configuration (admin PUT) turns the limit on and off
    with no restart: the same burst is served whole without it and partly refused with it."""
    with run_worker(slow_model, ["--max-batch-size", "1"], workdir=tmp_path) as w:
        url, h = w.admin_url + "/admin/config", w.admin_headers

        def burst_codes() -> Counter[int]:
            return Counter(r.status_code for r in asyncio.run(burst(w.url, 20)))

        assert httpx.get(url, headers=h).json()["maxQueueWaitMs"] == 0
        assert burst_codes() == Counter({200: 20})
        put = httpx.put(url, json={"maxQueueWaitMs": 100}, headers=h, timeout=30)
        assert put.status_code == 200
        assert put.json()["maxQueueWaitMs"] == 100
        codes = burst_codes()
        assert set(codes) == {200, 503}
        assert codes[503] >= 10
        bad = httpx.put(url, json={"maxQueueWaitMs": -5}, headers=h, timeout=30)
        assert bad.status_code == 422
        assert bad.json()["field"] == "maxQueueWaitMs"
        assert httpx.put(url, json={"maxQueueWaitMs": 0}, headers=h, timeout=30).status_code == 200
        assert burst_codes() == Counter({200: 20})


@pytest.mark.slow
@pytest.mark.parametrize("frontends", [0, 2])
def test_sigterm_drains_without_losing_an_accepted_request(
    slow_model: Path, tmp_path: Path, frontends: int
) -> None:
    """Clients keep sending until the worker refuses them; SIGTERM arrives with a full queue.

    Every request the worker answered must have reached its client (the worker logs its
    answers by status at exit, and the counts must match the clients'), every queued request
    is served (200), and the exit code is 0. A connection the worker never took (refused, or
    reset in the listen backlog as the listener closes) is not an accepted request: the equal
    counts prove that no handled request went missing.
    """
    args = ["--batch-window-ms", "5", "--max-batch-size", "4", "--max-queue", "512"]
    args += ["--frontends", str(frontends)]  # the same drain with HTTP in other processes
    w = start_worker(slow_model, args, workdir=tmp_path)
    try:
        w.wait_ready(60)
        outcomes: list[tuple[float, str]] = []
        sigterm_at: list[float] = []

        async def client_loop(client: httpx.AsyncClient) -> None:
            while True:
                try:
                    r = await client.post(w.url + "/v1/predict", json={"inputs": ["drain me"]})
                except httpx.ConnectError:
                    outcomes.append((time.monotonic(), "refused"))  # never accepted
                    return
                except httpx.TransportError as exc:
                    outcomes.append((time.monotonic(), f"transport: {type(exc).__name__}"))
                    return
                outcomes.append((time.monotonic(), str(r.status_code)))
                if r.status_code != 200:
                    assert r.status_code == 503
                    assert "shutting down" in r.json()["error"]
                    return

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                tasks = [asyncio.create_task(client_loop(client)) for _ in range(24)]
                await asyncio.sleep(1.5)
                sigterm_at.append(time.monotonic())
                w.proc.send_signal(signal.SIGTERM)
                await asyncio.gather(*tasks)

        asyncio.run(scenario())
        assert w.wait(30) == 0
    finally:
        w.terminate()
    codes = Counter(code for _, code in outcomes)
    transport = [t for t, c in outcomes if c.startswith("transport")]
    assert all(t > sigterm_at[0] for t in transport), codes  # none while serving normally
    served_after = sum(1 for t, c in outcomes if c == "200" and t > sigterm_at[0])
    assert served_after >= 4, codes  # the queue held requests at SIGTERM: all were served
    match = re.search(r"predict answers by status: (\{.*\})", w.log())
    assert match, w.log()[-2000:]
    answered = {int(k): v for k, v in json.loads(match.group(1)).items()}
    assert answered.get(200, 0) == codes["200"]
    assert answered.get(503, 0) == codes["503"]
    assert "stopped (exit 0)" in w.log()
