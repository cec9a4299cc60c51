"""`PodPusher`: the operator's calls to the workers' admin ports, each bounded three ways.

A worker pod lives in a tenant's namespace and is not trusted to answer well, so every call
(`PUT /admin/config` of a push, `GET /admin/config` at bootstrap) has:

- **an overall deadline** (`timeout_s`): connect, send and every byte of the answer together,
  enforced by cancelling the request (httpx's own timeout bounds each read, so a pod sending
  one byte every 0.5 s would hold it open indefinitely). The deadline starts once the call has
  its slot; a whole fan-out (all pods of one push) is bounded by `fanout_timeout_s` as well,
  queueing included, and a pod not reached by then is reported as such;
- **a size cap** (`max_bytes`, 64 KiB: the answer is a three-field JSON document): the body is
  read in chunks and abandoned as soon as it passes the cap;
- **bounded, fair concurrency**: at most `concurrency` calls in flight for all LatencySLOs
  that share one HTTP client (the operator shares one), slots granted round-robin by
  namespace (`FairLimiter`), and one namespace holding at most half of them, so one
  tenant's slow or silent pods cannot take every slot and make another's push wait for their
  deadlines.

No retries: a pod that misses a push converges from the mounted ConfigMap.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from slo_operator.httpcap import TooLarge, read_capped
from slo_operator.metrics.fair import FairLimiter

ADMIN_PORT_NAME = "admin"
ADMIN_CONFIG_PATH = "/admin/config"
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_CONCURRENCY = 16

_LIMITERS: weakref.WeakKeyDictionary[httpx.AsyncClient, FairLimiter] = weakref.WeakKeyDictionary()


def shared_limiter(http: httpx.AsyncClient, concurrency: int = DEFAULT_CONCURRENCY) -> FairLimiter:
    """The one limiter of every pusher that uses `http` (created with the first)."""
    limiter = _LIMITERS.get(http)
    if limiter is None:
        limiter = _LIMITERS[http] = FairLimiter(concurrency, per_key=max(1, concurrency // 2))
    return limiter


def pod_admin_url(pod: Mapping[str, Any]) -> str | None:
    """`http://<podIP>:<admin port>/admin/config` of a Ready, running pod; else None."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP")
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not ip or not ready:
        return None
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == ADMIN_PORT_NAME and port.get("containerPort"):
                host = f"[{ip}]" if ":" in ip else ip
                return f"http://{host}:{port['containerPort']}{ADMIN_CONFIG_PATH}"
    return None


class PushError(Exception):
    """One admin call failed; the message says why (for the LatencySLO's decision record)."""


class PodPusher:
    """Bounded admin calls to one namespace's pods (see module docs)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        key: str,
        timeout_s: float = 2.0,
        fanout_timeout_s: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        limiter: FairLimiter | None = None,
    ) -> None:
        self.http = http
        self.key = key
        self.timeout_s = timeout_s
        self.fanout_timeout_s = fanout_timeout_s if fanout_timeout_s else 3.0 * timeout_s
        self.max_bytes = max_bytes
        self.limiter = limiter or shared_limiter(http)

    async def call(
        self, method: str, url: str, token: str, payload: Mapping[str, Any] | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of one admin call; raises `PushError` saying why it failed."""
        async with self.limiter.slot(self.key):
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self._send(method, url, token, payload)
            except TimeoutError:
                raise PushError(f"{url}: no complete answer within {self.timeout_s:g}s") from None

    async def _send(
        self, method: str, url: str, token: str, payload: Mapping[str, Any] | None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            request = self.http.build_request(method, url, json=payload, headers=headers)
            response = await self.http.send(request, stream=True)
            try:
                return response.status_code, await read_capped(response, self.max_bytes)
            except TooLarge as exc:
                raise PushError(self._too_big(url, exc.size)) from None
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise PushError(f"{url}: {type(exc).__name__}") from None

    def _too_big(self, url: str, size: int) -> str:
        return f"{url}: answer over the size cap ({size} > {self.max_bytes} bytes)"

    async def put_all(
        self, urls: list[str], token: str, payload: Mapping[str, Any]
    ) -> tuple[int, int, list[str]]:
        """PUT `payload` to every url in parallel: (pods, acknowledged, errors)."""
        outcomes: dict[str, str | None] = {}

        async def put(url: str) -> None:
            try:
                status, _ = await self.call("PUT", url, token, payload)
            except PushError as exc:
                outcomes[url] = str(exc)
                return
            outcomes[url] = None if 200 <= status < 300 else f"{url}: HTTP {status}"

        tasks = [asyncio.ensure_future(put(url)) for url in urls]
        done, late = await asyncio.wait(tasks, timeout=self.fanout_timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        for task in done:
            task.result()  # put() catches what it expects; anything else is a bug: raise it
        failures = [
            outcomes.get(url) or f"{url}: not reached within {self.fanout_timeout_s:g}s"
            for url in urls
            if outcomes.get(url, "missing") is not None
        ]
        return len(urls), len(urls) - len(failures), failures
