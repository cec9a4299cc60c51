"""Open-loop load generator and the tiny router that plays the Kubernetes Service.

`LoadGenerator` sends one `POST /v1/predict` per arrival time of a workload
(`slo_operator.sim.workloads`: the same seeded Poisson arrivals the simulator replays, or a
trace), never waiting for earlier answers (open loop: a slow service does not slow the
arrivals down, so queueing shows up in the latencies instead of hiding in a lower rate).
Every request is recorded: when it was due, how long it took from then (so a late send
counts against the latency, no coordinated omission), the HTTP status, the replica and the
variant that served it.

`Router` spreads requests over the ready replicas: least outstanding requests, round robin
among ties (kube-proxy picks at random; at the loads of the demo the two agree closely and
this one is a little fairer). A replica is removed from the router *before* it is drained,
and `wait_idle` tells when its last routed request has been answered, so a scale-down never
sends a request to a stopping process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

log = logging.getLogger(__name__)

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; without the package each failed
    # import searches sys.path again (a third of the generator's CPU). Absent is absent.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

MAX_IN_FLIGHT = 64
"""Requests in flight per replica at most (a client's connection pool); more wait in the
generator, and the wait counts in their latency. It binds only in overload, where it keeps
httpx's pool small (its bookkeeping grows with the square of the connections)."""
NO_REPLICA = 0
"""`RequestRecord.status` when no replica was ready (a Service without endpoints)."""
TRANSPORT_ERROR = -1
"""`RequestRecord.status` when the request failed below HTTP (refused, reset, timeout)."""


@dataclass(slots=True)
class Endpoint:
    """One ready replica as the router sees it."""

    name: str
    url: str
    outstanding: int = 0
    sent: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))

    def __post_init__(self) -> None:
        self.idle.set()


class Router:
    """Least-outstanding-requests routing over the ready replicas (see module docs)."""

    def __init__(self) -> None:
        self._active: dict[str, Endpoint] = {}
        self._removed: dict[str, Endpoint] = {}
        self._turn = itertools.count()

    def add(self, name: str, url: str) -> None:
        """Start routing to `url` (a replica that turned ready)."""
        self._removed.pop(name, None)
        self._active[name] = Endpoint(name, url.rstrip("/"))

    def remove(self, name: str) -> None:
        """Stop routing to `name` at once; requests already routed still complete."""
        endpoint = self._active.pop(name, None)
        if endpoint is not None:
            self._removed[name] = endpoint

    async def wait_idle(self, name: str, timeout_s: float) -> bool:
        """Wait until every request routed to `name` has been answered; False on timeout."""
        endpoint = self._removed.get(name) or self._active.get(name)
        if endpoint is None:
            return True
        try:
            await asyncio.wait_for(endpoint.idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def forget(self, name: str) -> None:
        self._active.pop(name, None)
        self._removed.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._active)

    def __len__(self) -> int:
        return len(self._active)

    def acquire(self) -> Endpoint | None:
        """The replica for the next request (counted as outstanding), or None if none."""
        if not self._active:
            return None
        endpoints = list(self._active.values())
        start = next(self._turn) % len(endpoints)
        rotated = endpoints[start:] + endpoints[:start]
        chosen = min(rotated, key=lambda e: e.outstanding)
        chosen.outstanding += 1
        chosen.sent += 1
        chosen.idle.clear()
        return chosen

    @staticmethod
    def release(endpoint: Endpoint) -> None:
        endpoint.outstanding -= 1
        if endpoint.outstanding <= 0:
            endpoint.outstanding = 0
            endpoint.idle.set()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the client saw it (times in seconds from the start of the load)."""

    due: float
    """When the workload scheduled it."""
    latency: float
    """From `due` to the end of the response (or of the failure)."""
    status: int
    """HTTP status; NO_REPLICA or TRANSPORT_ERROR below HTTP."""
    replica: str
    variant: str
    lag: float
    """How late the request left (event-loop lag of the generator itself)."""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def done(self) -> float:
        return self.due + self.latency


class LoadGenerator:
    """Send one request per arrival time, open loop, and record every outcome."""

    def __init__(
        self,
        arrivals: Sequence[float] | np.ndarray,
        router: Router,
        texts: Sequence[str],
        *,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.arrivals = np.asarray(arrivals, dtype=float)
        self.router = router
        self.texts = list(texts) or ["good"]
        self.timeout_s = timeout_s
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=MAX_IN_FLIGHT),
        )
        self.failed = 0
        self.records: list[RequestRecord] = []
        self.started_at: float | None = None
        """`time.monotonic()` of t = 0 (set by `run`)."""
        self.sent = 0
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Send nothing more; `run` returns once the requests in flight are answered."""
        self._stopping.set()

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    async def run(self, started_at: float | None = None) -> list[RequestRecord]:
        """Send every arrival (t = 0 at `started_at`, default now), then wait for the answers.

        `stop()` ends the sending early (the requests in flight still complete). Cancelling
        `run` cancels the requests in flight too; they are recorded as transport errors
        ("cancelled"), so nothing sent is ever missing from the records.
        """
        self.started_at = time.monotonic() if started_at is None else started_at
        try:
            for i, due in enumerate(self.arrivals.tolist()):
                delay = self.started_at + due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    break
                task = asyncio.create_task(self._send(due, self.texts[i % len(self.texts)]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                self.sent += 1
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return self.records

    async def _send(self, due: float, text: str) -> None:
        assert self.started_at is not None
        t0 = self.started_at
        lag = time.monotonic() - t0 - due
        endpoint = self.router.acquire()
        if endpoint is None:
            self._record(due, NO_REPLICA, "", "", lag, "no ready replica")
            return
        self.in_flight += 1
        status, variant, error = TRANSPORT_ERROR, "", ""
        try:
            async with endpoint.slots:
                resp = await self._client.post(
                    endpoint.url + "/v1/predict", json={"inputs": [text]}
                )
            status = resp.status_code
            if status == 200:
                variant = str(resp.json().get("variant", ""))
            else:
                error = resp.text[:200]
        except asyncio.CancelledError:
            error = "cancelled"
            raise
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.in_flight -= 1
            Router.release(endpoint)
            self._record(due, status, endpoint.name, variant, lag, error)

    def _record(
        self, due: float, status: int, replica: str, variant: str, lag: float, error: str
    ) -> None:
        assert self.started_at is not None
        latency = time.monotonic() - self.started_at - due
        if status != 200:
            self.failed += 1
        self.records.append(RequestRecord(due, latency, status, replica, variant, lag, error))

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
