"""Asyncio dynamic batcher.

Requests (each one or more texts) wait in a bounded FIFO queue. One loop forms batches: a
batch is sent as soon as it holds `max_batch_size` texts, or when the window is over (0 =
send at once whatever is queued). The window's clock starts when the batcher starts waiting
for company: when it became free (its last batch finished) or when the oldest queued request
arrived, whichever is earlier. So a request that finds the batcher idle for longer than the
window leaves at once (waiting would only add latency: no company came during a whole
window), one arriving shortly after a batch waits the rest of the window, and none waits more
than the window. One batch runs at a time (the worker has one compute thread); requests
arriving meanwhile queue up and, as the oldest of them has already waited its window, the next
batch leaves as soon as the compute is free. A
request is never split across batches (one larger than `max_batch_size` runs alone). A
batch that raises is run again in halves until the failing requests are alone: only they
fail. With `max_queue_wait_s` set, a request that has waited longer than the window plus
that when its batch is taken is not run: it fails with `Expired` at once (a request that
late would be answered late anyway; running it would only delay the requests behind it).

`window_s`, `max_batch_size` and `max_queue_wait_s` may be changed at any time; the next
batch uses the new values. `drain()` refuses new requests, serves everything queued and
stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
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


class Expired(Exception):
    """The request waited in the queue longer than the window plus `max_queue_wait_s`: it
    was not run."""


class BatchFailed(Exception):
    """Running this request raised (alone: a failed batch is split until the requests that
    make it fail are isolated); the message says why."""


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
        max_queue_wait_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_queue_wait_s = max_queue_wait_s
        """Longest wait in the queue beyond the window before a request is refused unrun (0:
        no limit)."""
        self._run_batch = run_batch
        self._clock = clock
        self._queue: deque[Pending] = deque()
        self._items = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._busy = False
        self._free_since = clock()  # when the batcher last became free to run a batch
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
            self._free_since = self._clock()
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
        """Wait until the batch is full or the window that started when the batcher began
        waiting for company (free, or `first` queued, whichever came first) is over."""
        while self._items < self.max_batch_size and not self._closing:
            opened = min(first.arrival, self._free_since)
            remaining = opened + self.window_s - self._clock()
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
        now = self._clock()
        allowed = self.max_queue_wait_s + self.window_s  # the window is no wait over the limit
        expired_before = now - allowed if self.max_queue_wait_s > 0 else -math.inf
        while self._queue:
            head = self._queue[0]
            if batch and size + len(head.texts) > self.max_batch_size:
                break
            self._queue.popleft()
            self._items -= len(head.texts)
            if head.future.done():  # timed out while queued
                continue
            if head.arrival < expired_before:
                waited_ms, allowed_ms = (now - head.arrival) * 1000.0, allowed * 1000.0
                head.future.set_exception(
                    Expired(f"waited {waited_ms:.0f} ms in the queue, over the {allowed_ms:.0f} "
                            "ms allowed")
                )  # fmt: skip
                continue
            batch.append(head)
            size += len(head.texts)
        return batch

    async def _execute(self, batch: list[Pending]) -> None:
        self._busy = True
        try:
            await self._run_isolating(batch)
        finally:
            self._busy = False
            self._free_since = self._clock()

    async def _run_isolating(self, batch: list[Pending]) -> None:
        """Run `batch`; if it raises, run each half again (recursively), so that a request
        that makes the model raise fails alone and the others batched with it are served.
        One bad request among n costs about 2 log2(n) extra runs, not n."""
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        texts = [t for p in live for t in p.texts]
        try:
            variant, outputs = await self._run_batch(texts)
            if len(outputs) != len(texts):
                raise RuntimeError(f"{len(outputs)} outputs for {len(texts)} inputs")
        except Exception as exc:
            if len(live) > 1:
                log.warning(
                    "batch of %d requests failed (%s: %s); retrying it in halves",
                    len(live),
                    type(exc).__name__,
                    exc,
                )
                half = len(live) // 2
                await self._run_isolating(live[:half])
                await self._run_isolating(live[half:])
                return
            log.exception("request of %d texts failed", len(texts))
            if not live[0].future.done():
                live[0].future.set_exception(BatchFailed(f"{type(exc).__name__}: {exc}"))
            return
        start = 0
        for p in live:
            end = start + len(p.texts)
            if not p.future.done():
                p.future.set_result((variant, outputs[start:end]))
            start = end
