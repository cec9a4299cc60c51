"""`FairLimiter`: bounded concurrency shared round-robin between keys (tenants).

At most `limit` holders at once. When every slot is taken, waiters queue per key and a freed
slot goes to the next key in turn (round-robin), not to whoever queued first: a key with a
hundred waiters (one slow or busy tenant) delays another key's single waiter by at most one
turn per slot. With `per_key`, a key also holds at most that many slots at once, so one whose
holders never finish (a tenant's silent pods) cannot take every slot and make the others wait
for its deadlines. A waiter cancelled while queued leaves no trace; one cancelled just after
being granted gives its slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Hashable


class FairLimiter:
    """A semaphore of `limit` slots granted round-robin between keys."""

    def __init__(self, limit: int, per_key: int | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if per_key is not None and per_key < 1:
            raise ValueError(f"per_key must be at least 1, not {per_key}")
        self.limit = limit
        self.per_key = min(per_key or limit, limit)
        self._held: Counter[Hashable] = Counter()
        self._queues: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def active(self) -> int:
        """Slots held now, all keys together."""
        return self._held.total()

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
            self._release(key)

    async def _acquire(self, key: Hashable) -> None:
        # free slots with waiters queued means those waiters' keys are at their cap
        if self.active < self.limit and self._held[key] < self.per_key and key not in self._queues:
            self._held[key] += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(key)  # granted, then cancelled before it could run: give it back
            else:
                queue = self._queues.get(key)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._queues[key]
            raise

    def _release(self, key: Hashable) -> None:
        self._held[key] -= 1
        if not self._held[key]:
            del self._held[key]
        self._grant()

    def _grant(self) -> None:
        while self.active < self.limit:
            key = next((k for k in self._queues if self._held[k] < self.per_key), None)
            if key is None:
                return
            queue = self._queues.pop(key)
            future = queue.popleft()
            if queue:
                self._queues[key] = queue  # to the back of the round
            if future.done():
                continue
            future.set_result(None)
            self._held[key] += 1
