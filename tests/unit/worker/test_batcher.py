"""The dynamic batcher: window, max size, greedy batching while busy, queue bound, deadlines,
failures and drain. `run_batch` here is a real async function that records what it was given
and takes `compute_s` of (event-loop) time, so batching decisions are observable."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_worker.batcher import (
    Batcher,
    BatchFailed,
    DeadlineExceeded,
    Draining,
    Expired,
    QueueFull,
)


class Recorder:
    def __init__(self, compute_s: float = 0.0, fail_on: str | None = None) -> None:
        self.compute_s = compute_s
        self.fail_on = fail_on
        self.batches: list[list[str]] = []
        self.started: list[float] = []

    async def __call__(self, texts: list[str]) -> tuple[str, list[str]]:
        self.started.append(time.monotonic())
        self.batches.append(list(texts))
        if self.compute_s:
            await asyncio.sleep(self.compute_s)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model exploded")
        return "v", [t.upper() for t in texts]


def make(
    rec: Recorder,
    window_ms: float = 0,
    max_batch: int = 8,
    max_queue: int = 64,
    max_wait_ms: float = 0,
) -> Batcher:
    b = Batcher(
        rec, window_s=window_ms / 1000, max_batch_size=max_batch, max_queue=max_queue,
        max_queue_wait_s=max_wait_ms / 1000,
    )  # fmt: skip
    b.start()
    return b


async def test_window_zero_serves_a_lone_request_at_once() -> None:
    rec = Recorder()
    b = make(rec, window_ms=0)
    t0 = time.monotonic()
    assert await b.submit(["a"], timeout_s=1) == ("v", ["A"])
    assert time.monotonic() - t0 < 0.05
    await b.drain()


async def test_requests_within_the_window_share_a_batch() -> None:
    rec = Recorder()
    b = make(rec, window_ms=50)
    t0 = time.monotonic()
    results = await asyncio.gather(*(b.submit([f"t{i}"], 1) for i in range(5)))
    elapsed = time.monotonic() - t0
    assert rec.batches == [["t0", "t1", "t2", "t3", "t4"]]
    assert [r[1] for r in results] == [["T0"], ["T1"], ["T2"], ["T3"], ["T4"]]
    assert 0.045 <= elapsed < 0.2  # waited the window: the batch was not full


async def test_a_full_batch_leaves_before_the_window_ends() -> None:
    rec = Recorder()
    b = make(rec, window_ms=500, max_batch=4)
    t0 = time.monotonic()
    await asyncio.gather(*(b.submit([str(i)], 2) for i in range(4)))
    assert time.monotonic() - t0 < 0.1
    assert rec.batches == [["0", "1", "2", "3"]]
    await b.drain()


async def test_max_batch_size_splits_and_keeps_fifo_order() -> None:
    rec = Recorder(compute_s=0.01)
    b = make(rec, window_ms=20, max_batch=3)
    results = await asyncio.gather(*(b.submit([str(i)], 2) for i in range(7)))
    assert [len(x) for x in rec.batches] == [3, 3, 1]
    assert [t for batch in rec.batches for t in batch] == [str(i) for i in range(7)]
    assert [r[1][0] for r in results] == [str(i) for i in range(7)]


async def test_window_counts_from_the_oldest_request() -> None:
    rec = Recorder()
    b = make(rec, window_ms=100)
    first = asyncio.ensure_future(b.submit(["a"], 1))
    await asyncio.sleep(0.07)
    second = asyncio.ensure_future(b.submit(["b"], 1))
    t0 = time.monotonic()
    await asyncio.gather(first, second)
    assert time.monotonic() - t0 < 0.07  # the second waited only the rest of a's window
    assert rec.batches == [["a", "b"]]


async def test_a_lone_request_after_an_idle_window_leaves_at_once() -> None:
    """The window's clock started when the batcher became free: a request that finds it idle
    for longer than the window pays no window at all (it paid all of it before)."""
    rec = Recorder()
    b = make(rec, window_ms=200)
    await asyncio.sleep(0.25)
    t0 = time.monotonic()
    assert await b.submit(["alone"], 1) == ("v", ["ALONE"])
    assert time.monotonic() - t0 < 0.15  # it waited 200 ms before: the window from arrival
    await b.drain()


async def test_a_request_soon_after_a_batch_waits_the_rest_of_the_window() -> None:
    rec = Recorder()
    b = make(rec, window_ms=200)
    await asyncio.sleep(0.25)
    await b.submit(["first"], 1)  # leaves at once; the batcher is free again from now
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    second = asyncio.ensure_future(b.submit(["second"], 1))
    await asyncio.sleep(0.03)
    third = asyncio.ensure_future(b.submit(["third"], 1))  # company within the window
    await asyncio.gather(second, third)
    elapsed = time.monotonic() - t0
    assert 0.07 <= elapsed < 0.19  # about 100 ms: the rest of the window, not 200 ms
    assert rec.batches == [["first"], ["second", "third"]]
    await b.drain()


async def test_requests_queued_while_busy_form_the_next_batch_at_once() -> None:
    rec = Recorder(compute_s=0.08)
    b = make(rec, window_ms=20, max_batch=16)
    first = asyncio.ensure_future(b.submit(["x"], 1))
    await asyncio.sleep(0.02)  # the first batch is running now
    rest = [asyncio.ensure_future(b.submit([str(i)], 1)) for i in range(5)]
    await asyncio.gather(first, *rest)
    assert rec.batches == [["x"], ["0", "1", "2", "3", "4"]]
    # the second batch started right when the first finished: its window had already passed
    assert 0.08 <= rec.started[1] - rec.started[0] < 0.08 + 0.03


async def test_multi_input_requests_are_never_split() -> None:
    rec = Recorder()
    b = make(rec, window_ms=20, max_batch=4)
    results = await asyncio.gather(
        b.submit(["a", "b", "c"], 1), b.submit(["d", "e"], 1), b.submit(list("fghijk"), 1)
    )
    assert rec.batches == [["a", "b", "c"], ["d", "e"], list("fghijk")]  # oversize runs alone
    assert results[2][1] == list("FGHIJK")


async def test_queue_full_is_refused() -> None:
    rec = Recorder(compute_s=0.05)
    b = make(rec, window_ms=0, max_queue=2)
    running = asyncio.ensure_future(b.submit(["busy"], 1))
    await asyncio.sleep(0.01)
    queued = [asyncio.ensure_future(b.submit([str(i)], 1)) for i in range(2)]
    await asyncio.sleep(0)
    assert b.queued_requests == 2
    with pytest.raises(QueueFull):
        await b.submit(["overflow"], 1)
    await asyncio.gather(running, *queued)


async def test_deadline_while_queued_removes_the_request() -> None:
    rec = Recorder(compute_s=0.1)
    b = make(rec, window_ms=0)
    running = asyncio.ensure_future(b.submit(["busy"], 1))
    await asyncio.sleep(0.01)
    with pytest.raises(DeadlineExceeded):
        await b.submit(["late"], timeout_s=0.03)
    assert b.queued_items == 0
    await running
    await asyncio.sleep(0.01)
    assert ["late"] not in rec.batches  # never computed


async def test_a_request_queued_past_the_max_wait_is_refused_unrun() -> None:
    """Three requests queue behind a 60 ms batch; when the next batch is taken they have
    waited about 60 ms, over the 30 ms allowed: each fails with Expired and none is run. A
    request that arrives after that is served."""
    rec = Recorder(compute_s=0.06)
    b = make(rec, window_ms=0, max_wait_ms=30)
    running = asyncio.ensure_future(b.submit(["busy"], 1))
    await asyncio.sleep(0.005)
    queued = [asyncio.ensure_future(b.submit([str(i)], 1)) for i in range(3)]
    results = await asyncio.gather(running, *queued, return_exceptions=True)
    assert results[0] == ("v", ["BUSY"])
    assert all(isinstance(r, Expired) for r in results[1:])
    assert "in the queue" in str(results[1])
    assert rec.batches == [["busy"]]
    assert b.queued_items == 0
    assert await b.submit(["next"], 1) == ("v", ["NEXT"])
    await b.drain()


async def test_requests_within_the_max_wait_are_served_and_no_limit_by_default() -> None:
    for max_wait_ms in (0, 500):
        rec = Recorder(compute_s=0.06)
        b = make(rec, window_ms=0, max_wait_ms=max_wait_ms)
        running = asyncio.ensure_future(b.submit(["busy"], 1))
        await asyncio.sleep(0.005)
        queued = [asyncio.ensure_future(b.submit([str(i)], 1)) for i in range(3)]
        results = await asyncio.gather(running, *queued)
        assert [r[1] for r in results] == [["BUSY"], ["0"], ["1"], ["2"]]
        assert rec.batches == [["busy"], ["0", "1", "2"]]
        await b.drain()


async def test_a_failing_request_fails_alone_and_the_loop_goes_on() -> None:
    rec = Recorder(fail_on="boom")
    b = make(rec, window_ms=30)
    results = await asyncio.gather(
        b.submit(["ok"], 1), b.submit(["boom"], 1), b.submit(["fine", "too"], 1),
        return_exceptions=True,
    )  # fmt: skip
    assert rec.batches[0] == ["ok", "boom", "fine", "too"]  # one batch first
    assert results[0] == ("v", ["OK"])
    assert isinstance(results[1], BatchFailed)
    assert "model exploded" in str(results[1])
    assert results[2] == ("v", ["FINE", "TOO"])
    assert await b.submit(["fine"], 1) == ("v", ["FINE"])
    await b.drain()


@settings(max_examples=25, deadline=None)
@given(
    bad=st.lists(st.booleans(), min_size=1, max_size=12),
)
def test_only_the_failing_requests_fail(bad: list[bool]) -> None:
    async def scenario() -> None:
        rec = Recorder(fail_on="boom")
        b = make(rec, window_ms=20, max_batch=64)
        texts = ["boom" if x else f"ok{i}" for i, x in enumerate(bad)]
        results = await asyncio.gather(*(b.submit([t], 2) for t in texts), return_exceptions=True)
        for text, result in zip(texts, results, strict=True):
            if text == "boom":
                assert isinstance(result, BatchFailed)
            else:
                assert result == ("v", [text.upper()])
        # bisection: one bad request among n costs O(log n) runs, not n
        if sum(bad) == 1:
            assert len(rec.batches) <= 1 + 2 * max(1, len(bad)).bit_length()
        await b.drain()

    asyncio.run(scenario())


async def test_config_changes_apply_to_the_next_batch() -> None:
    rec = Recorder()
    b = make(rec, window_ms=0, max_batch=1)
    await asyncio.gather(*(b.submit([str(i)], 1) for i in range(2)))
    assert [len(x) for x in rec.batches] == [1, 1]
    b.window_s, b.max_batch_size = 0.03, 8
    await asyncio.gather(*(b.submit([str(i)], 1) for i in range(3)))
    assert rec.batches[-1] == ["0", "1", "2"]


async def test_drain_serves_everything_queued_then_refuses() -> None:
    rec = Recorder(compute_s=0.02)
    b = make(rec, window_ms=200, max_batch=2)
    pending = [asyncio.ensure_future(b.submit([str(i)], 5)) for i in range(5)]
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await b.drain()
    assert time.monotonic() - t0 < 0.2  # draining does not wait out the window
    assert all(p.done() and not p.exception() for p in pending)
    with pytest.raises(Draining):
        await b.submit(["after"], 1)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=25),
    max_batch=st.integers(min_value=1, max_value=10),
)
def test_every_request_gets_exactly_its_outputs(sizes: list[int], max_batch: int) -> None:
    async def scenario() -> None:
        rec = Recorder()
        b = make(rec, window_ms=1, max_batch=max_batch, max_queue=100)
        inputs = [[f"r{i}-{j}" for j in range(n)] for i, n in enumerate(sizes)]
        results = await asyncio.gather(*(b.submit(x, 5) for x in inputs))
        assert [r[1] for r in results] == [[t.upper() for t in x] for x in inputs]
        for batch in rec.batches:  # never over the max, except one oversize request alone
            assert len(batch) <= max_batch or len({t.split("-")[0] for t in batch}) == 1
        await b.drain()

    asyncio.run(scenario())
