"""One-shot check of the worker process on CUDA: readiness, live variant switches under load,
and closed-loop throughput without and with dynamic batching.

    python bench/gpu_worker_check.py [--json out/gpu_worker.json] [--model-dir D]

Run after `bench/gpu_check.py` (which builds the demo family). Starts one real worker with
`--device cuda` on free loopback ports and, for each variant, drives it with `--concurrency`
closed-loop clients for `--seconds`: first with batching off (window 0, max batch 1), then
with a 2 ms window and max batch 32, all in this one run. Then it switches variants under
load and counts failed requests (must be 0), in every configuration. Prints one JSON document.
Exits 2 without CUDA.

It also measures the serving-path goals of the worker on a GPU (`goals` in the JSON):

- `in_process_batched_texts_per_s`: the `full` variant's tokenize + forward on batches of 32,
  in this process, back to back (what the model can do without HTTP);
- `cuda_graph_batch1_forward_ms`: the median replay of a CUDA graph of the `full` forward on
  one 16-token text (static inputs), the floor of a batch-1 request;
- `http_best_rps_p99_under_50ms`: through HTTP, the best closed-loop throughput (window 2 ms,
  max batch 32) over concurrencies 8..256 whose p99 is at most 50 ms;
- `http_batch1_p50_ms`: one client, one request at a time on one kept-alive connection, timed
  to the microsecond by a plain socket client in this process (hey's figure, to 0.1 ms, is
  kept beside it);
- `throughput_goal_met`: HTTP at least 80 % of the in-process batched throughput at p99 <= 50 ms;
  `batch1_goal_met`: `http_batch1_p50_ms` within 1 ms of the CUDA-graph forward.

The HTTP figures are measured side by side in the same run, under `goals_by_config`: HTTP in
the model process without graphs (the worker's default; the per-variant check above runs on
it), the same with `--cuda-graphs`, and `--frontends N --cuda-graphs` for each N in
`--frontends` (default 4; several as `4,8`); `goals` holds the best of them (by throughput at
p99 <= 50 ms). Each configuration also switches variants six times under load
(`switch_under_load`, must fail no request). A configuration that fails to start is recorded
under `config_errors` and the others still run. The load comes from Debian's `hey` where it
is on PATH (`--hey`; its GOMAXPROCS is `--clients`), else from `--clients` processes of httpx
clients, so that the load generator is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "local")]

import httpx  # noqa: E402
import torch  # noqa: E402

from inference_worker.demo_model import default_model_dir  # noqa: E402
from inference_worker.texts import sample_texts  # noqa: E402
from tests.support.worker import run_worker  # noqa: E402

TOKEN = "gpu-check-token"


CLIENTS: concurrent.futures.ProcessPoolExecutor | None = None
"""Client processes for `drive` (set by `main`); None drives from this process."""
CLIENT_PROCESSES = 1
HEY: str | None = None
"""Path of Debian's `hey` (set by `main`): when set, `drive` runs it instead of httpx clients."""


async def drive(url: str, seconds: float, concurrency: int, texts: list[str]) -> dict[str, Any]:
    """Closed-loop load from `concurrency` clients, spread over the client processes."""
    pool = CLIENTS
    if HEY is not None:
        return await asyncio.to_thread(_drive_hey, HEY, url, seconds, concurrency, texts[0])
    if pool is None or concurrency < 2:
        latencies, failures, elapsed = await _drive(url, seconds, concurrency, texts)
    else:
        procs = min(CLIENT_PROCESSES, concurrency)
        shares = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(loop.run_in_executor(pool, _drive_sync, url, seconds, n, texts) for n in shares)
        )
        latencies = [x for part in parts for x in part[0]]
        failures = sum(part[1] for part in parts)
        elapsed = max(part[2] for part in parts)
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "failures": failures,
    }


def _drive_hey(hey: str, url: str, seconds: float, concurrency: int, text: str) -> dict[str, Any]:
    """`hey -c concurrency -z seconds`, every request the same one-text body, read from hey's
    summary: requests/s answered 200, p50 and p99 of every answer (0.1 ms resolution; hey
    prints no p99 under 100 answers: None), and failures (non-200 answers plus requests with
    no answer, hey's error distribution)."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps({"inputs": [text]}))
        cmd = [hey, "-z", f"{seconds}s", "-c", str(concurrency), "-t", "10", "-m", "POST"]
        cmd += ["-T", "application/json", "-D", str(body), url + "/v1/predict"]
        env = {**os.environ, "GOMAXPROCS": str(CLIENT_PROCESSES)}
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=seconds + 60, check=True
        ).stdout
    return parse_hey(out)


def parse_hey(out: str) -> dict[str, Any]:
    """Requests/s, p50, p99 (ms) and failures from `hey`'s text summary (`_drive_hey`)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pcts = {int(p): float(v) * 1000.0 for p, v in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    ok = bad = 0
    section = ""
    for line in out.splitlines():
        if line.strip().endswith("distribution:"):
            section = line.strip()
            continue
        m = re.match(r"\s+\[(\d+)\]\s+(\S+)", line)
        if m and section.startswith("Status code"):
            ok += int(m[2]) if m[1] == "200" else 0
            bad += int(m[2]) if m[1] != "200" else 0
        elif m and section.startswith("Error"):
            bad += int(m[1])  # [count] message
    return {
        "rps": round(float(rps[1]) * ok / max(ok + bad, 1), 1) if rps else 0.0,
        "p50_ms": round(pcts[50], 2) if 50 in pcts else None,
        "p99_ms": round(pcts[99], 2) if 99 in pcts else None,
        "failures": bad,
    }


def _drive_sync(
    url: str, seconds: float, concurrency: int, texts: list[str]
) -> tuple[list[float], int, float]:
    return asyncio.run(_drive(url, seconds, concurrency, texts))


async def _drive(
    url: str, seconds: float, concurrency: int, texts: list[str]
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def one_client(i: int) -> None:
            nonlocal failures
            n = i
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    resp = await client.post(
                        url + "/v1/predict", json={"inputs": [texts[n % len(texts)]]}
                    )
                    ok = resp.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000.0)
                else:
                    failures += 1
                n += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, failures, elapsed


async def configure(admin_url: str, **config: Any) -> None:
    async with httpx.AsyncClient(timeout=60.0) as client:
        resp = await client.put(
            admin_url + "/admin/config",
            json=config,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        resp.raise_for_status()


async def check(url: str, admin_url: str, args: argparse.Namespace) -> dict[str, Any]:
    texts = sample_texts(256, tokens=16, seed=3)
    out: dict[str, Any] = {"variants": {}}
    for variant in ("full", "quantized", "distilled"):
        row: dict[str, Any] = {}
        await configure(admin_url, variant=variant, batchWindowMs=0, maxBatchSize=1)
        row["no_batching"] = await drive(url, args.seconds, args.concurrency, texts)
        await configure(admin_url, variant=variant, batchWindowMs=2, maxBatchSize=32)
        row["window_2ms_batch_32"] = await drive(url, args.seconds, args.concurrency, texts)
        row["batching_speedup"] = round(
            row["window_2ms_batch_32"]["rps"] / max(row["no_batching"]["rps"], 1e-9), 2
        )
        out["variants"][variant] = row
    return out


def in_process(model_dir: Path, device: str, seconds: float) -> dict[str, Any]:
    """The `full` variant without HTTP: batched throughput and the CUDA-graph batch-1 floor."""
    from inference_worker.manifest import Manifest
    from inference_worker.variants import LoadedVariant

    variant = LoadedVariant(Manifest.load(model_dir), "full", torch.device(device))
    variant.warm((1, 32))
    texts = sample_texts(32, tokens=16, seed=5)
    done = 0
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < deadline:
        variant.predict(texts)
        done += len(texts)
    if device == "cuda":
        torch.cuda.synchronize()
    out: dict[str, Any] = {
        "in_process_batched_texts_per_s": round(done / (time.perf_counter() - t0), 1)
    }
    ids, mask = variant.encode(texts[:1])
    times: list[float] = []
    with torch.inference_mode():
        if device == "cuda":
            static_ids, static_mask = ids.clone(), mask.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    variant.model(static_ids, static_mask)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                variant.model(static_ids, static_mask)
            for _ in range(200):
                started = time.perf_counter()
                graph.replay()
                torch.cuda.synchronize()
                times.append((time.perf_counter() - started) * 1000.0)
            eager: list[float] = []
            for _ in range(200):
                started = time.perf_counter()
                variant.model(ids, mask)
                torch.cuda.synchronize()
                eager.append((time.perf_counter() - started) * 1000.0)
            out["eager_batch1_forward_ms"] = round(statistics.median(eager), 3)
            out["cuda_graph_batch1_forward_ms"] = round(statistics.median(times), 3)
        else:  # dry run: the eager forward stands in for the graph
            for _ in range(50):
                started = time.perf_counter()
                variant.model(ids, mask)
                times.append((time.perf_counter() - started) * 1000.0)
            out["eager_batch1_forward_ms"] = round(statistics.median(times), 3)
            out["cuda_graph_batch1_forward_ms"] = None
    return out


async def switch_under_load(url: str, admin_url: str, concurrency: int) -> dict[str, Any]:
    """Six variant switches, one a second, while `concurrency` clients keep sending."""
    texts = sample_texts(256, tokens=16, seed=3)
    await configure(admin_url, variant="full", batchWindowMs=2, maxBatchSize=32)
    load = asyncio.create_task(drive(url, 8.0, concurrency, texts))
    switches = 0
    for variant in ("quantized", "distilled", "full", "distilled", "quantized", "full"):
        await asyncio.sleep(1.0)
        await configure(admin_url, variant=variant)
        switches += 1
    return {"switches": switches, **await load}


def batch1_latencies(url: str, seconds: float, text: str) -> list[float]:
    """One client, one request at a time on one kept-alive connection, timed in this process
    to the microsecond (hey prints 0.1 ms): ms from the first byte sent to the last read."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps({"inputs": [text]}).encode()
    request = (
        f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    out: list[float] = []
    with socket.create_connection((host, port), timeout=10.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            sock.sendall(request)
            status = reader.readline().split()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            elapsed = (time.perf_counter() - started) * 1000.0
            if len(status) < 2 or status[1] != b"200":
                raise RuntimeError(f"batch-1 request answered {status!r}")
            out.append(elapsed)
    return out


async def http_goals(url: str, admin_url: str, seconds: float) -> dict[str, Any]:
    texts = sample_texts(256, tokens=16, seed=3)
    await configure(admin_url, variant="full", batchWindowMs=0, maxBatchSize=32)
    single = await drive(url, seconds, 1, texts)
    precise = sorted(await asyncio.to_thread(batch1_latencies, url, seconds, texts[0]))
    await configure(admin_url, variant="full", batchWindowMs=2, maxBatchSize=32)
    sweep = {}
    for concurrency in (8, 16, 32, 64, 128, 256):
        sweep[concurrency] = await drive(url, seconds, concurrency, texts)
    # does the window pay here? the same load with window 0 (a greedy batcher)
    await configure(admin_url, variant="full", batchWindowMs=0, maxBatchSize=32)
    greedy = {c: await drive(url, seconds, c, texts) for c in (8, 32, 128)}
    passing = [r["rps"] for r in sweep.values() if r["p99_ms"] is not None and r["p99_ms"] <= 50]
    return {
        "http_batch1_p50_ms": round(statistics.median(precise), 3),
        "http_batch1_p99_ms": round(precise[int(0.99 * (len(precise) - 1))], 3),
        "http_batch1_p50_ms_load_generator": single["p50_ms"],
        "switch_under_load": await switch_under_load(url, admin_url, 64),
        "http_sweep_window_2ms": sweep,
        "http_sweep_window_0ms": greedy,
        "http_best_rps_p99_under_50ms": max(passing) if passing else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--device", default="cuda", help="cpu runs the same check as a dry run")
    parser.add_argument(
        "--frontends", default="4", help="HTTP frontend processes: one count or several (4,8)"
    )
    parser.add_argument(
        "--clients", type=int, default=4,
        help="load generator processes (httpx), or hey's GOMAXPROCS",
    )  # fmt: skip
    parser.add_argument(
        "--configs", default="eager,graphs,frontends",
        help="which worker configurations to measure (comma list of eager, graphs, frontends)",
    )  # fmt: skip
    parser.add_argument(
        "--hey", default=shutil.which("hey"),
        help="Debian's hey as the load generator (default: on PATH; 'none': httpx clients)",
    )  # fmt: skip
    args = parser.parse_args()
    global CLIENTS, CLIENT_PROCESSES, HEY
    CLIENT_PROCESSES = max(1, args.clients)
    HEY = None if args.hey in (None, "none") else args.hey
    if args.clients > 1 and HEY is None:
        CLIENTS = concurrent.futures.ProcessPoolExecutor(
            args.clients, mp_context=multiprocessing.get_context("spawn")
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available"}))
        sys.exit(2)
    model_dir = args.model_dir or default_model_dir()
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]
        )
    }
    by_config: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    configs: dict[str, list[str]] = {}
    kinds = set(args.configs.split(","))
    if "eager" in kinds:  # the default: the full check runs on it
        configs["frontends 0, eager"] = ["--frontends", "0"]
    if "graphs" in kinds:
        configs["frontends 0, cuda graphs"] = ["--frontends", "0", "--cuda-graphs"]
    if "frontends" in kinds:
        for n in (int(x) for x in args.frontends.split(",")):
            configs[f"frontends {n}, cuda graphs"] = ["--frontends", str(n), "--cuda-graphs"]
    result: dict[str, Any] = {}
    for name, flags in configs.items():
        started = time.perf_counter()
        try:
            with run_worker(
                model_dir,
                ["--device", args.device, "--preload", "all", *flags],
                token=TOKEN,
                env=env,
                threads=args.threads,
                ready_timeout=300.0,
            ) as worker:
                try:
                    if not result:  # the full check once, on the first configuration
                        result["ready_seconds"] = round(time.perf_counter() - started, 1)
                        result["config"] = name
                        result.update(asyncio.run(check(worker.url, worker.admin_url, args)))
                        metrics = httpx.get(worker.url + "/metrics", timeout=5.0).text
                        result["batch_duration_series"] = [
                            line
                            for line in metrics.splitlines()
                            if line.startswith("inference_batch_duration_seconds_count")
                        ]
                    by_config[name] = asyncio.run(
                        http_goals(worker.url, worker.admin_url, args.seconds)
                    )
                except Exception as exc:
                    tail = worker.log()[-6000:]
                    raise RuntimeError(f"{type(exc).__name__}: {exc}\nworker log:\n{tail}") from exc
        except Exception as exc:  # one configuration failing must not lose the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: {errors[name]}", file=sys.stderr)
    if not by_config:
        print(json.dumps({"errors": errors}))
        sys.exit(1)
    floors = in_process(model_dir, args.device, args.seconds)
    floor = floors["cuda_graph_batch1_forward_ms"] or floors["eager_batch1_forward_ms"]
    for goals in by_config.values():
        goals.update(floors)
        goals["throughput_goal_met"] = (
            goals["http_best_rps_p99_under_50ms"] >= 0.8 * goals["in_process_batched_texts_per_s"]
        )
        goals["batch1_goal_met"] = (
            goals["http_batch1_p50_ms"] is not None and goals["http_batch1_p50_ms"] <= floor + 1.0
        )
    best = max(by_config, key=lambda n: by_config[n]["http_best_rps_p99_under_50ms"])
    result["goals"] = {"config": best, **by_config[best]}
    result["goals_by_config"] = by_config
    result["config_errors"] = errors
    result["load_generator"] = f"hey, GOMAXPROCS={CLIENT_PROCESSES}" if HEY else "httpx"
    result["device"] = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    result["ok"] = (
        not errors
        and "variants" in result
        and all(g["switch_under_load"]["failures"] == 0 for g in by_config.values())
        and all(
            r[k]["failures"] == 0
            for r in result["variants"].values()
            for k in ("no_batching", "window_2ms_batch_32")
        )
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
