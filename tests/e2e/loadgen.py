"""Open-loop load generator for the kind suite: runs as a Job inside the cluster.

Sends `POST /v1/predict` at a fixed rate per phase (arrivals do not wait for answers, like
real users), bounded in time and in requests in flight, and prints one JSON report line per
phase and a final one:

    {"phase": "step", "rps": 120, "sent": 28800, "codes": {"200": 28790, "503": 10},
     "errors": {}, "p99_ms": 84.1}

`errors` counts requests that got no HTTP answer (connection refused or reset, timeout): a
scale-down or variant switch that drops requests shows up there. Standard library and
aiohttp only (both in the worker image).

Environment: TARGET_URL (the predict URL), PHASES (JSON list of {"name", "rps", "seconds"}),
MAX_IN_FLIGHT (2000), TIMEOUT_S (15), KEEPALIVE (0: a new connection per request).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

TEXTS = (
    "the service was wonderful and fast",
    "this is the worst experience ever",
    "not bad at all, rather good",
    "slow, broken and disappointing",
)


@dataclass
class PhaseReport:
    phase: str
    rps: float
    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
        return {
            "phase": self.phase,
            "rps": self.rps,
            "sent": self.sent,
            "codes": dict(self.codes),
            "errors": dict(self.errors),
            "p99_ms": round(p99, 1) if p99 is not None else None,
        }


async def _one(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], report: PhaseReport
) -> None:
    start = time.perf_counter()
    try:
        async with session.post(url, json=body) as resp:
            await resp.read()
            report.codes[str(resp.status)] += 1
            if resp.status == 200:
                report.latencies_ms.append((time.perf_counter() - start) * 1000.0)
    except (aiohttp.ClientError, TimeoutError) as exc:
        report.errors[type(exc).__name__] += 1


async def run_phase(
    session: aiohttp.ClientSession,
    url: str,
    name: str,
    rps: float,
    seconds: float,
    max_in_flight: int,
) -> PhaseReport:
    report = PhaseReport(name, rps)
    in_flight: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    total = int(rps * seconds)
    for i in range(total):
        due = start + i / rps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            report.errors["GeneratorSaturated"] += 1  # counted, never silently dropped
            continue
        body = {"inputs": [TEXTS[i % len(TEXTS)]]}
        task = asyncio.create_task(_one(session, url, body, report))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        report.sent += 1
    if in_flight:
        await asyncio.gather(*in_flight)
    return report


async def main() -> int:
    url = os.environ["TARGET_URL"]
    phases = json.loads(os.environ["PHASES"])
    max_in_flight = int(os.environ.get("MAX_IN_FLIGHT", "2000"))
    timeout = aiohttp.ClientTimeout(total=float(os.environ.get("TIMEOUT_S", "15")))
    # One connection per request unless KEEPALIVE=1: a kept-alive connection stays pinned to
    # the pod it was opened to, past its removal from the Service, and a request written on it
    # as that pod exits gets no answer. The worker's drain delay (the chart's
    # demo.drainDelaySeconds) keeps such connections answered for a while, not forever.
    keepalive = os.environ.get("KEEPALIVE") == "1"
    connector = aiohttp.TCPConnector(limit=max_in_flight, force_close=not keepalive)
    reports = []
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for phase in phases:
            report = await run_phase(
                session,
                url,
                str(phase["name"]),
                float(phase["rps"]),
                float(phase["seconds"]),
                max_in_flight,
            )
            reports.append(report.as_json())
            print(json.dumps(report.as_json()), flush=True)
    print(json.dumps({"phase": "total", "reports": reports}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
