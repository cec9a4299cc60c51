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

A replica that dies (`kill -9`, a crash) refuses connections before anyone has taken it out of
the router. A refused connection means the request never reached a worker, so it is safe to
send again: the generator tries the next replica (at most once per replica), and the router
ejects the refusing one for `EJECT_S` (a passive health check, as a service mesh's outlier
detection does), so the requests that follow go elsewhere until the actuator has removed it
or adds it again. Only the requests that were in flight on the dead worker are lost; a
reset or a timeout after the request was sent is never retried (it may have been served).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

log = logging.getLogger(__name__)

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; without the package each failed
    # import searches sys.path again (a third of the generator's CPU). Absent is absent.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

MAX_IN_FLIGHT = 64
"""Requests in flight per replica at most (one keep-alive connection each); more wait in the
generator, and the wait counts in their latency. It binds only in overload."""
NO_REPLICA = 0
"""`RequestRecord.status` when no replica was ready (a Service without endpoints)."""
TRANSPORT_ERROR = -1
"""`RequestRecord.status` when the request failed below HTTP (refused, reset, timeout)."""
EJECT_S = 5.0
"""How long a replica that refused a connection gets no request (unless every other one is
ejected too, or the actuator adds it again: a readiness probe outranks the guess)."""


@dataclass(slots=True)
class Endpoint:
    """One ready replica as the router sees it."""

    name: str
    url: str
    outstanding: int = 0
    sent: int = 0
    ejected_until: float = 0.0
    """`time.monotonic()` until which it gets no request (see `Router.eject`)."""
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

    def outstanding(self, name: str) -> int:
        """Requests routed to `name` and not answered yet (0 for a name never routed to)."""
        endpoint = self._active.get(name) or self._removed.get(name)
        return 0 if endpoint is None else endpoint.outstanding

    @property
    def names(self) -> list[str]:
        return sorted(self._active)

    def __len__(self) -> int:
        return len(self._active)

    def eject(self, name: str, seconds: float = EJECT_S) -> None:
        """Send `name` nothing for `seconds` (it refused a connection); `add` ends it."""
        endpoint = self._active.get(name)
        if endpoint is not None:
            endpoint.ejected_until = time.monotonic() + seconds

    def acquire(self, avoid: Collection[str] = ()) -> Endpoint | None:
        """The replica for the next request (counted as outstanding), or None if none.

        Never one in `avoid`; an ejected one only when every other is ejected too."""
        candidates = [e for e in self._active.values() if e.name not in avoid]
        if not candidates:
            return None
        now = time.monotonic()
        endpoints = [e for e in candidates if e.ejected_until <= now] or candidates
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
    refused_by: tuple[str, ...] = ()
    """Replicas that refused the connection before `replica` took the request (the request
    never reached them: dead processes the router had not dropped yet)."""

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
    ) -> None:
        self.arrivals = np.asarray(arrivals, dtype=float)
        self.router = router
        self.texts = list(texts) or ["good"]
        self.timeout_s = timeout_s
        self._idle: dict[str, list[httpx.AsyncClient]] = {}
        """Idle one-connection clients per replica URL (see `_connection`)."""
        self._clients: list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None
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
        refused: list[str] = []
        last_error = ""
        while True:
            endpoint = self.router.acquire(avoid=refused)
            if endpoint is None:
                if refused:  # every replica refused: the last refusal is the outcome
                    self._record(due, TRANSPORT_ERROR, refused.pop(), "", lag, last_error, refused)
                else:
                    self._record(due, NO_REPLICA, "", "", lag, "no ready replica")
                return
            self.in_flight += 1
            status, variant, error, again = TRANSPORT_ERROR, "", "", False
            try:
                async with endpoint.slots, self._connection(endpoint.url) as client:
                    resp = await client.post(endpoint.url + "/v1/predict", json={"inputs": [text]})
                status = resp.status_code
                if status == 200:
                    variant = str(resp.json().get("variant", ""))
                else:
                    error = resp.text[:200]
            except asyncio.CancelledError:
                error = "cancelled"
                raise
            except httpx.ConnectError as exc:  # not sent: another replica may take it
                error = f"{type(exc).__name__}: {exc}"[:200]
                again = True
            except (httpx.HTTPError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                self.in_flight -= 1
                Router.release(endpoint)
                if not again:
                    self._record(due, status, endpoint.name, variant, lag, error, refused)
            if not again:
                return
            self.router.eject(endpoint.name)
            refused.append(endpoint.name)
            last_error = error

    def _record(
        self,
        due: float,
        status: int,
        replica: str,
        variant: str,
        lag: float,
        error: str,
        refused_by: Sequence[str] = (),
    ) -> None:
        assert self.started_at is not None
        latency = time.monotonic() - self.started_at - due
        if status != 200:
            self.failed += 1
        self.records.append(
            RequestRecord(due, latency, status, replica, variant, lag, error, tuple(refused_by))
        )

    @contextlib.asynccontextmanager
    async def _connection(self, url: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client holding one keep-alive connection to `url`, for one request at a time.

        Why not one shared client: httpcore's pool scans every queued request against every
        connection on each state change, so its cost per request grows with the requests in
        flight. `python bench/loadgen_clients.py` (an in-process aiohttp server answering
        after 50 ms): with 64 requests in flight, one shared client cost ~12 ms of CPU per
        request and one client per connection ~1.2 ms (medians of 3; 2.0 vs 1.3 ms at 8).
        In overload that turned the generator into the bottleneck and a brief breach into a
        collapse. Callers hold `Endpoint.slots`, so at most MAX_IN_FLIGHT exist per replica.
        """
        idle = self._idle.setdefault(url, [])
        if idle:
            client = idle.pop()  # the most recently used: its connection is the warmest
        else:
            if self._tls is None:  # plain HTTP, but httpx builds a TLS context per client:
                self._tls = ssl.create_default_context()  # one, loaded once (~20 ms each)
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=self._tls,
            )
            self._clients.append(client)
        try:
            yield client
        finally:
            idle.append(client)

    async def aclose(self) -> None:
        clients, self._clients, self._idle = self._clients, [], {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
