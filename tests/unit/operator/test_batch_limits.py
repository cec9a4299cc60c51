"""Prometheus calls: an overall deadline that queueing does not count against, no thread left
behind, a size cap, fair bounded concurrency; the steps' phase spreading."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp import web

from slo_local.promserver import free_port
from slo_operator.errors import QueryError
from slo_operator.handlers import next_due, phase_of
from slo_operator.metrics.client import PrometheusClient
from slo_operator.metrics.fair import FairLimiter

EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


@pytest.fixture
async def server():
    runners: list[web.AppRunner] = []

    async def start(handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_queueing_does_not_count_against_the_deadline(server) -> None:
    async def slowish(request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.json_response(EMPTY)

    client = PrometheusClient(await server(slowish), timeout_s=0.7, concurrency=1)
    # five queries through one slot: the last waits ~1.6 s, yet none times out
    results = await asyncio.gather(*(client.query("up", 1.0) for _ in range(5)))
    await client.aclose()
    assert results == [[]] * 5


async def test_a_slow_drip_is_cut_at_the_overall_deadline_with_no_thread_left(server) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b" ")
            await asyncio.sleep(0.1)
        return response

    client = PrometheusClient(await server(drip), timeout_s=0.5)
    threads = threading.active_count()
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"timed out after 0\.5s"):
        await client.query("up", 1.0)
    assert time.monotonic() - started < 1.5  # each byte came in time; the whole did not
    assert threading.active_count() <= threads
    await client.aclose()


async def test_an_answer_over_the_cap_is_refused(server) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: read until the cap
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 65536)
        return response

    client = PrometheusClient(await server(huge), timeout_s=5.0, max_bytes=1024 * 1024)
    with pytest.raises(QueryError, match="over the size cap"):
        await client.query("up", 1.0)
    await client.aclose()


async def test_an_error_answer_names_the_status_and_prometheus_message(server) -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.json_response({"status": "error", "error": "parse error"}, status=400)

    client = PrometheusClient(await server(bad), timeout_s=1.0)
    with pytest.raises(QueryError, match=r"HTTP 400 .*parse error"):
        await client.query("up(", 1.0)
    await client.aclose()


async def test_slots_go_round_robin_between_keys() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("first"):
            await gate.wait()

    async def one(key: str) -> None:
        async with limiter.slot(key):
            order.append(key)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    busy = [asyncio.create_task(one("busy")) for _ in range(5)]
    await asyncio.sleep(0)
    quiet = asyncio.create_task(one("quiet"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(holder, *busy, quiet)
    assert order.index("quiet") <= 1  # one busy turn at most before the quiet tenant's
    assert limiter.active == 0


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    limiter = FairLimiter(1)
    async with limiter.slot("a"):
        waiter = asyncio.create_task(limiter._acquire("b"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert limiter.active == 0
    assert limiter.waiting == 0


async def test_one_key_holds_at_most_per_key_slots() -> None:
    """A key whose holders never finish takes `per_key` slots, not all: another key still
    gets one at once, and a freed slot of the capped key goes to its own next waiter."""
    limiter = FairLimiter(4, per_key=2)
    gate = asyncio.Event()
    entered: list[str] = []

    async def hold(key: str) -> None:
        async with limiter.slot(key):
            entered.append(key)
            await gate.wait()

    stuck = [asyncio.create_task(hold("stuck")) for _ in range(5)]
    await asyncio.sleep(0)
    assert entered.count("stuck") == 2
    assert limiter.active == 2
    other = asyncio.create_task(hold("other"))
    await asyncio.sleep(0)
    assert entered.count("other") == 1  # a slot at once, no waiting for "stuck"
    gate.set()
    await asyncio.gather(*stuck, other)
    assert entered.count("stuck") == 5
    assert limiter.active == 0
    assert limiter.waiting == 0
    with pytest.raises(ValueError, match="per_key"):
        FairLimiter(4, per_key=0)


def test_steps_are_spread_by_phase_one_interval_apart() -> None:
    phases = [phase_of("ml", f"slo-{i}") for i in range(1000)]
    assert all(0 <= p < 1 for p in phases)
    tenths = [sum(1 for p in phases if i / 10 <= p < (i + 1) / 10) for i in range(10)]
    assert min(tenths) > 60  # about a hundred in each tenth of the interval
    due = next_due(100.0, 15.0, 0.2)
    assert due % 15.0 == pytest.approx(3.0)
    assert 107.5 <= due < 122.5
    assert next_due(due + 0.05, 15.0, 0.2) == pytest.approx(due + 15.0)
