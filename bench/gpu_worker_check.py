"""One-shot check of the worker process on CUDA: readiness, live variant switches under load,
and closed-loop throughput without and with dynamic batching.

    python bench/gpu_worker_check.py [--json out/gpu_worker.json] [--model-dir D]

Run after `bench/gpu_check.py` (which builds the demo family). Starts one real worker with
`--device cuda` on free loopback ports and, for each variant, drives it with `--concurrency`
closed-loop clients for `--seconds`: first with batching off (window 0, max batch 1), then
with a 2 ms window and max batch 32, all in this one run. Then it switches variants under load
and counts failed requests (must be 0). Prints one JSON document. Exits 2 without CUDA.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

import httpx  # noqa: E402
import torch  # noqa: E402

from inference_worker.demo_model import default_model_dir  # noqa: E402
from inference_worker.texts import sample_texts  # noqa: E402
from tests.support.worker import run_worker  # noqa: E402

TOKEN = "gpu-check-token"


async def drive(url: str, seconds: float, concurrency: int, texts: list[str]) -> dict[str, Any]:
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
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "failures": failures,
    }


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
    # switches under load: every 1 s, while clients keep sending
    load = asyncio.create_task(drive(url, 8.0, args.concurrency, texts))
    switches = 0
    for variant in ("quantized", "distilled", "full", "distilled", "quantized", "full"):
        await asyncio.sleep(1.0)
        await configure(admin_url, variant=variant)
        switches += 1
    out["switch_under_load"] = {"switches": switches, **await load}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--device", default="cuda", help="cpu runs the same check as a dry run")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available"}))
        sys.exit(2)
    model_dir = args.model_dir or default_model_dir()
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]
        )
    }
    started = time.perf_counter()
    with run_worker(
        model_dir,
        ["--device", args.device, "--preload", "all"],
        token=TOKEN,
        env=env,
        threads=args.threads,
        ready_timeout=300.0,
    ) as worker:
        ready_s = time.perf_counter() - started
        result = asyncio.run(check(worker.url, worker.admin_url, args))
        metrics = httpx.get(worker.url + "/metrics", timeout=5.0).text
    result["device"] = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    result["ready_seconds"] = round(ready_s, 1)
    result["batch_duration_series"] = [
        line
        for line in metrics.splitlines()
        if line.startswith("inference_batch_duration_seconds_count")
    ]
    result["ok"] = result["switch_under_load"]["failures"] == 0 and all(
        r[k]["failures"] == 0
        for r in result["variants"].values()
        for k in ("no_batching", "window_2ms_batch_32")
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
