"""CPU cost per request of the demo's load generator: one shared httpx client vs one
client per connection (what `slo_local.loadgen` uses), side by side.

An aiohttp server in the same process answers every `POST /v1/predict` after `--delay-ms`
(so requests pile up in flight like in an overloaded replica); the client keeps
`--in-flight` requests outstanding. The figure is process CPU time per request (client and
server together, both in this process), median of `--repeats` alternating runs.

    python bench/loadgen_clients.py [--in-flight 64] [--requests 2000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from slo_local.promserver import free_port


async def _server(delay_s: float) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        await request.json()
        await asyncio.sleep(delay_s)
        return web.json_response({"variant": "full", "outputs": []})

    app = web.Application()
    app.router.add_post("/v1/predict", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1/predict"


async def _shared(url: str, in_flight: int) -> tuple[Callable[[], Awaitable[None]], list]:
    client = httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=None, max_keepalive_connections=in_flight)
    )
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            (await client.post(url, json={"inputs": ["x"]})).json()

    return one, [client]


async def _per_connection(url: str, in_flight: int) -> tuple[Callable[[], Awaitable[None]], list]:
    clients = [
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1))
        for _ in range(in_flight)
    ]
    idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    for c in clients:
        idle.put_nowait(c)

    async def one() -> None:
        client = await idle.get()
        try:
            (await client.post(url, json={"inputs": ["x"]})).json()
        finally:
            idle.put_nowait(client)

    return one, clients


async def _measure(make, url: str, in_flight: int, requests: int) -> float:
    one, clients = await make(url, in_flight)
    try:
        t0 = time.process_time()
        await asyncio.gather(*(one() for _ in range(requests)))
        return (time.process_time() - t0) / requests * 1000.0
    finally:
        for c in clients:
            await c.aclose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runner, url = await _server(args.delay_ms / 1000.0)
    runs: dict[str, list[float]] = {"shared_client": [], "client_per_connection": []}
    try:
        for _ in range(args.repeats):
            runs["shared_client"].append(
                await _measure(_shared, url, args.in_flight, args.requests)
            )
            runs["client_per_connection"].append(
                await _measure(_per_connection, url, args.in_flight, args.requests)
            )
    finally:
        await runner.cleanup()
    med = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    result = {
        "in_flight": args.in_flight,
        "requests": args.requests,
        "cpu_ms_per_request_median": med,
        "runs": runs,
        "ratio_shared_over_per_connection": round(
            med["shared_client"] / med["client_per_connection"], 2
        ),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
