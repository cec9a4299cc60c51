"""Asyncio dynamic batcher.

Requests (each one or more texts) wait in a bounded FIFO queue. One loop forms batches: a
batch is sent as soon as it holds `max_batch_size` texts, or when the oldest queued request
has waited `window_s` (0 = send at once whatever is queued). One batch runs at a time (the
worker has one compute thread); requests arriving meanwhile queue up and, if the oldest of
them has already waited its window, the next batch leaves as soon as the compute is free. A
request is never split across batches (one larger than `max_batch_size` runs alone).

`window_s` and `max_batch_size` may be changed at any time; the next batch uses the new
values. `drain()` refuses new requests, serves everything queued and stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BatchResult = tuple[str, Sequence[Any]]
"""What running one batch returns: the variant that served it and one output per text."""
RunBatch = Callable[[list[str]], Awaitable[BatchResult]]


class QueueFull(Exception):
    """The queue holds `max_queue` requests already."""


class Draining(Exception):
    """The batcher is shutting down and takes no new requests."""


class DeadlineExceeded(Exception):
    """The request was not served within its deadline."""


class BatchFailed(Exception):
    """Running the batch raised; the message says why."""


@dataclass(eq=False, slots=True)
class Pending:
    texts: list[str]
    arrival: float
    future: asyncio.Future[BatchResult] = field(repr=False)


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        *,
        window_s: float,
        max_batch_size: int,
        max_queue: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self._run_batch = run_batch
        self._clock = clock
        self._queue: deque[Pending] = deque()
        self._items = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    @property
    def queued_items(self) -> int:
        """Texts waiting in the queue (not yet in a running batch)."""
        return self._items

    @property
    def queued_requests(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """A batch is running now."""
        return self._busy

    @property
    def closing(self) -> bool:
        return self._closing

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def submit(self, texts: list[str], timeout_s: float) -> BatchResult:
        """Queue one request and wait for its outputs (raises the exceptions above)."""
        if self._closing:
            raise Draining("the worker is shutting down")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} requests)")
        pending = Pending(texts, self._clock(), asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._items += len(texts)
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout_s):
                return await pending.future
        except TimeoutError:
            self._forget(pending)
            raise DeadlineExceeded(f"not served within {timeout_s * 1000:.0f} ms") from None
        except asyncio.CancelledError:
            self._forget(pending)
            raise

    async def drain(self) -> None:
        """Refuse new requests, serve the queued ones, stop the loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def _forget(self, pending: Pending) -> None:
        if not pending.future.done():
            pending.future.cancel()
        try:
            self._queue.remove(pending)
        except ValueError:
            return  # already taken into a batch: its result is dropped
        self._items -= len(pending.texts)

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._wait_for_batch(self._queue[0])
                batch = self._take()
                if batch:
                    await self._execute(batch)
            except Exception:  # never let the loop die: queued requests would hang
                log.exception("batcher loop error")

    async def _wait_for_batch(self, first: Pending) -> None:
        """Wait until the batch is full or `first` has waited the window."""
        while self._items < self.max_batch_size and not self._closing:
            remaining = first.arrival + self.window_s - self._clock()
            if remaining <= 0 or not self._queue or self._queue[0] is not first:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _take(self) -> list[Pending]:
        batch: list[Pending] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if batch and size + len(head.texts) > self.max_batch_size:
                break
            self._queue.popleft()
            self._items -= len(head.texts)
            if head.future.done():  # timed out while queued
                continue
            batch.append(head)
            size += len(head.texts)
        return batch

    async def _execute(self, batch: list[Pending]) -> None:
        texts = [t for p in batch for t in p.texts]
        self._busy = True
        try:
            variant, outputs = await self._run_batch(texts)
            if len(outputs) != len(texts):
                raise RuntimeError(f"{len(outputs)} outputs for {len(texts)} inputs")
        except Exception as exc:
            log.exception("batch of %d failed", len(texts))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(BatchFailed(f"{type(exc).__name__}: {exc}"))
            return
        finally:
            self._busy = False
        start = 0
        for p in batch:
            end = start + len(p.texts)
            if not p.future.done():
                p.future.set_result((variant, outputs[start:end]))
            start = end
