"""The demo's flat-out measurement of one replica: what it answers with requests kept in
flight, from the client's side, against servers whose throughput is known.

The figures are checked against the server's own count of the answers it gave in the same
window, not against a wall-clock rate: how many requests a local server answers in a second
depends on how busy this machine is, and the probe's job is to report what was answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from slo_local.demo.probe import SATURATION_SETTLE_S, answered_rps, saturation_rps
from tests.unit.demo.test_loadgen import Server

BATCH, BATCH_S = 8, 0.05
"""The test batcher: at most 8 per 50 ms batch, so at most 160 req/s and, with one request
in flight, at most 20."""


class BatchServer(Server):
    """A greedy batcher: takes the requests waiting, up to `batch`, as soon as one waits, and
    answers them `batch_s` seconds later: at most `batch / batch_s` per second. It records
    when it answered each request (`answered`)."""

    def __init__(self, batch: int, batch_s: float, status: int = 200) -> None:
        super().__init__(status=status)
        self.batch, self.batch_s = batch, batch_s
        self.waiting: list[asyncio.Future[None]] = []
        self.work = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.answered: list[float] = []

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
            now = time.monotonic()
            for f in take:
                f.set_result(None)
                self.answered.append(now)

    def rate(self, t0: float, settle_s: float, seconds: float) -> float:
        """Answers per second it gave between `t0 + settle_s` and `t0 + seconds`."""
        n = sum(1 for t in self.answered if t0 + settle_s <= t <= t0 + seconds)
        return n / (seconds - settle_s)

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
    server = await BatchServer(batch=BATCH, batch_s=BATCH_S).start()
    yield server
    await server.stop()


def edge_slack(seconds: float) -> float:
    """One batch may fall on either side of each end of the counted window between the
    server answering it and the client reading it: two batches over the window, per second."""
    return 2 * BATCH / (seconds - SATURATION_SETTLE_S)


async def test_flat_out_is_what_the_server_answered(batching: BatchServer) -> None:
    t0 = time.monotonic()
    rate = await answered_rps(batching.url, ["good"], seconds=1.5, concurrency=16)
    assert rate is not None
    assert rate == pytest.approx(batching.rate(t0, SATURATION_SETTLE_S, 1.5), abs=edge_slack(1.5))
    assert rate <= BATCH / BATCH_S + edge_slack(1.5)


async def test_saturation_is_the_best_level(batching: BatchServer) -> None:
    t0 = time.monotonic()
    best, per_level = await saturation_rps(batching.url, ["good"], levels=(1, 8), seconds=2.0)
    assert set(per_level) == {1, 8}
    one, eight = per_level[1], per_level[8]
    assert one is not None
    assert eight is not None
    # the first level is what the server answered in its own window
    assert one == pytest.approx(batching.rate(t0, SATURATION_SETTLE_S, 2.0), abs=edge_slack(2.0))
    assert one <= 1 / BATCH_S + edge_slack(2.0)  # one in flight: one answer per batch
    # eight in flight fill batches that one in flight cannot: far more than one per batch
    assert eight > 2 * one
    assert best == max(one, eight) == eight


async def test_one_request_in_flight_only_measures_one_per_batch(batching: BatchServer) -> None:
    """The figure is what the replica answers with the requests in flight it is given: one
    at a time, a batching server answers one per batch (so the demo keeps 64 in flight)."""
    t0 = time.monotonic()
    rate = await answered_rps(batching.url, ["good"], seconds=1.5, concurrency=1)
    assert rate is not None
    assert rate == pytest.approx(batching.rate(t0, SATURATION_SETTLE_S, 1.5), abs=edge_slack(1.5))
    assert rate <= 1 / BATCH_S + edge_slack(1.5)


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
