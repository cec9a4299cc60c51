"""`FairLimiter`: bounded concurrency shared round-robin between keys (tenants).

At most `limit` holders at once. When every slot is taken, waiters queue per key and a freed
slot goes to the next key in turn (round-robin), not to whoever queued first: a key with a
hundred waiters (one slow or busy tenant) delays another key's single waiter by at most one
turn per slot. A waiter cancelled while queued leaves no trace; one cancelled just after being
granted gives its slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable


class FairLimiter:
    """A semaphore of `limit` slots granted round-robin between keys."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.active = 0
        self._queues: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @contextlib.asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one slot for `key` while the block runs (queueing time is not the block's)."""
        await self._acquire(key)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, key: Hashable) -> None:
        if self.active < self.limit and not self._queues:
            self.active += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted, then cancelled before it could run: give it back
            else:
                queue = self._queues.get(key)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._queues[key]
            raise

    def _release(self) -> None:
        self.active -= 1
        self._grant()

    def _grant(self) -> None:
        while self.active < self.limit and self._queues:
            key, queue = next(iter(self._queues.items()))
            future = queue.popleft()
            del self._queues[key]
            if queue:
                self._queues[key] = queue  # to the back of the round
            if future.done():
                continue
            future.set_result(None)
            self.active += 1
