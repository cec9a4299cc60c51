"""The load generator is open loop and records every outcome; the router never routes to a
removed replica and tells when a removed replica has answered everything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from slo_local.loadgen import NO_REPLICA, TRANSPORT_ERROR, LoadGenerator, Router


class Server:
    """A tiny predict endpoint: answers after `delay_s`, with `status`."""

    def __init__(self, delay_s: float = 0.0, status: int = 200) -> None:
        self.delay_s = delay_s
        self.status = status
        self.arrived: list[float] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def predict(self, request: web.Request) -> web.Response:
        self.arrived.append(time.monotonic())
        await request.json()
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"error": "nope"}, status=self.status)
        return web.json_response({"variant": "full", "outputs": []})

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_post("/v1/predict", self.predict)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def slow() -> AsyncIterator[Server]:
    server = await Server(delay_s=0.3).start()
    yield server
    await server.stop()


async def test_open_loop_sends_on_schedule_even_when_answers_are_slow(slow: Server) -> None:
    router = Router()
    router.add("a", slow.url)
    arrivals = [0.05 * k for k in range(20)]  # 20 req/s for 1 s, each answered in 0.3 s
    gen = LoadGenerator(arrivals, router, ["good food"])
    await gen.run()
    await gen.aclose()
    assert len(gen.records) == 20
    assert all(r.ok and r.variant == "full" and r.replica == "a" for r in gen.records)
    # a closed loop would have sent one request per 0.3 s; open loop keeps the schedule
    span = slow.arrived[-1] - slow.arrived[0]
    assert span == pytest.approx(0.95, abs=0.15)
    assert min(r.latency for r in gen.records) >= 0.3
    assert max(r.lag for r in gen.records) < 0.1


async def test_failures_are_recorded_not_raised() -> None:
    broken = await Server(status=503).start()
    try:
        router = Router()
        gen = LoadGenerator([0.0], router, ["x"])  # no replica at all
        await gen.run()
        assert gen.records[0].status == NO_REPLICA
        router.add("gone", "http://127.0.0.1:9")  # nothing listens there
        gen = LoadGenerator([0.0], router, ["x"])
        await gen.run()
        assert gen.records[0].status == TRANSPORT_ERROR
        assert gen.records[0].replica == "gone"
        assert "ConnectError" in gen.records[0].error
        router.add("a", broken.url)
        router.add("gone", "http://127.0.0.1:9")  # routed to again (no ejection left)
        gen = LoadGenerator([0.0, 0.01, 0.02, 0.03], router, ["x"])
        await gen.run()
        await gen.aclose()
        assert [r.status for r in gen.records] == [503] * 4  # what "a" answered
        assert not any(r.ok for r in gen.records)
        assert all(r.error for r in gen.records)
    finally:
        await broken.stop()


async def test_a_refused_request_goes_to_another_replica_and_the_refuser_is_ejected() -> None:
    """A dead worker still in the router refuses connections: those requests never reached
    it, so they are sent to another replica (none is lost), and the router sends the dead
    one nothing more until its ejection ends or it is added again."""
    live = await Server().start()
    try:
        router = Router()
        router.add("dead", "http://127.0.0.1:9")  # nothing listens there
        router.add("live", live.url)
        records = []
        for _ in range(6):  # one at a time: ties rotate, so the dead one's turn comes
            gen = LoadGenerator([0.0], router, ["x"])
            records += await gen.run()
            await gen.aclose()
        assert all(r.ok and r.replica == "live" for r in records), records
        assert [r.refused_by for r in records if r.refused_by] == [("dead",)]  # then ejected
        assert router.acquire().name == "live"  # type: ignore[union-attr]
        router.add("dead", "http://127.0.0.1:9")  # the actuator's word outranks the guess
        assert {router.acquire().name for _ in range(2)} == {"dead", "live"}  # type: ignore[union-attr]
    finally:
        await live.stop()


def test_an_ejected_replica_still_serves_when_every_other_one_is_ejected_or_tried() -> None:
    router = Router()
    router.add("a", "http://a")
    router.add("b", "http://b")
    router.eject("a")
    assert {router.acquire().name for _ in range(3)} == {"b"}  # type: ignore[union-attr]
    assert router.acquire(avoid={"b"}).name == "a"  # type: ignore[union-attr]
    assert router.acquire(avoid={"a", "b"}) is None
    router.eject("b")
    assert router.acquire() is not None  # all ejected: ejection is a guess, not a verdict


def test_router_prefers_the_least_outstanding_and_rotates_ties() -> None:
    router = Router()
    for name in ("a", "b", "c"):
        router.add(name, f"http://{name}")
    first = [router.acquire() for _ in range(3)]
    assert sorted(e.name for e in first if e) == ["a", "b", "c"]  # one each
    for e in first:
        assert e is not None
        Router.release(e)
    busy = router.acquire()
    assert busy is not None
    picks = {router.acquire().name for _ in range(2)}  # type: ignore[union-attr]
    assert busy.name not in picks


async def test_removed_replica_gets_nothing_and_reports_idle(slow: Server) -> None:
    router = Router()
    router.add("a", slow.url)
    router.add("b", "http://127.0.0.1:9")
    endpoint = router.acquire()
    assert endpoint is not None
    router.remove(endpoint.name)
    assert router.names == ["b" if endpoint.name == "a" else "a"]
    assert all(router.acquire().name != endpoint.name for _ in range(5))  # type: ignore[union-attr]
    assert not await router.wait_idle(endpoint.name, timeout_s=0.05)
    Router.release(endpoint)
    assert await router.wait_idle(endpoint.name, timeout_s=0.05)


async def test_cancelling_the_run_records_what_was_in_flight(slow: Server) -> None:
    router = Router()
    router.add("a", slow.url)
    gen = LoadGenerator([0.0, 0.01, 5.0], router, ["x"])
    task = asyncio.create_task(gen.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gen.aclose()
    assert gen.sent == 2
    assert len(gen.records) == 2
    assert all(r.error == "cancelled" for r in gen.records)


async def test_stop_ends_sending_and_lets_requests_in_flight_finish(slow: Server) -> None:
    router = Router()
    router.add("a", slow.url)
    gen = LoadGenerator([0.0, 0.01, 30.0], router, ["x"])
    task = asyncio.create_task(gen.run())
    await asyncio.sleep(0.1)
    gen.stop()
    records = await asyncio.wait_for(task, 5.0)
    await gen.aclose()
    assert gen.sent == 2
    assert [r.ok for r in records] == [True, True]
