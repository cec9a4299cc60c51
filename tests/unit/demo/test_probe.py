"""The demo's flat-out measurement of one replica: what it answers with requests kept in
flight, from the client's side, against servers whose throughput is known."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from slo_local.demo.probe import answered_rps, saturation_rps
from tests.unit.demo.test_loadgen import Server


class BatchServer(Server):
    """A greedy batcher: takes the requests waiting, up to `batch`, as soon as one waits, and
    answers them `batch_s` seconds later: at most `batch / batch_s` per second, and only that
    many with `batch` requests in flight."""

    def __init__(self, batch: int, batch_s: float, status: int = 200) -> None:
        super().__init__(status=status)
        self.batch, self.batch_s = batch, batch_s
        self.waiting: list[asyncio.Future[None]] = []
        self.work = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def predict(self, request: web.Request) -> web.Response:
        await request.json()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(done)
        self.work.set()
        await done
        return web.json_response({"variant": "full"}, status=self.status)

    async def batches(self) -> None:
        while True:
            await self.work.wait()
            take, self.waiting = self.waiting[: self.batch], self.waiting[self.batch :]
            if not self.waiting:
                self.work.clear()
            await asyncio.sleep(self.batch_s)
            for f in take:
                f.set_result(None)

    async def start(self) -> BatchServer:
        await super().start()
        self.task = asyncio.create_task(self.batches())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await super().stop()


@pytest.fixture
async def batching() -> AsyncIterator[BatchServer]:
    server = await BatchServer(batch=8, batch_s=0.05).start()  # 160 req/s with 8 in flight
    yield server
    await server.stop()


async def test_flat_out_is_the_throughput_with_full_batches(batching: BatchServer) -> None:
    rate = await answered_rps(batching.url, ["good"], seconds=1.5, concurrency=16)
    assert rate is not None
    assert rate == pytest.approx(160, rel=0.2)


async def test_saturation_is_the_best_level(batching: BatchServer) -> None:
    best, per_level = await saturation_rps(batching.url, ["good"], levels=(1, 8), seconds=2.0)
    assert set(per_level) == {1, 8}
    assert per_level[1] == pytest.approx(20, rel=0.3)
    assert per_level[8] == pytest.approx(160, rel=0.2)
    assert best == per_level[8]


async def test_one_request_in_flight_only_measures_one_per_batch(batching: BatchServer) -> None:
    """The figure is what the replica answers with the requests in flight it is given: one
    at a time, a batching server answers one per batch (so the demo keeps 64 in flight)."""
    rate = await answered_rps(batching.url, ["good"], seconds=1.5, concurrency=1)
    assert rate is not None
    assert rate == pytest.approx(20, rel=0.3)


async def test_no_answers_is_no_figure() -> None:
    failing = await BatchServer(batch=8, batch_s=0.02, status=503).start()
    try:
        assert await answered_rps(failing.url, ["good"], seconds=1.0, concurrency=4) is None
    finally:
        await failing.stop()
    # nothing listening: refused connections are not answers (and do not spin the CPU)
    assert await answered_rps(failing.url, ["good"], seconds=0.8, concurrency=4) is None
    assert await saturation_rps(failing.url, ["good"], levels=(2,), seconds=0.8) == (
        None,
        {2: None},
    )


async def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="seconds"):
        await answered_rps("http://127.0.0.1:9", ["x"], seconds=0.5, settle_s=0.5)
