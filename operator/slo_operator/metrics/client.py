"""`PrometheusClient`: instant queries over Prometheus' HTTP API, each bounded three ways.

- **An overall deadline** per query (`timeout_s`): connect, send, and every byte of the answer
  together, enforced by cancelling the request (the connection is closed; no thread is left
  running). The deadline starts when the query gets its slot, so time spent queueing behind
  other queries never counts against it.
- **A size cap** (`max_bytes`): the answer is read in chunks and abandoned as soon as it
  passes the cap (a declared Content-Length over the cap is refused before reading).
- **Bounded, fair concurrency**: at most `concurrency` queries in flight, the slots shared
  round-robin between callers' keys (`FairLimiter`), so one tenant's queries cannot starve
  another's.

No retries: a slow or dead Prometheus costs at most one deadline per query. Every failure is a
`QueryError` whose message says why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable
from typing import Any

import httpx

from slo_operator.errors import QueryError
from slo_operator.httpcap import TooLarge, read_capped
from slo_operator.metrics.fair import FairLimiter

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
GET_LIMIT = 2000
"""Queries longer than this go as a POST form (a batched query names many targets)."""


class PrometheusClient:
    """Instant queries against one Prometheus server (see module docs)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = 4,
        limiter: FairLimiter | None = None,
        on_query: Callable[[], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.limiter = limiter or FairLimiter(concurrency)
        self.sent = 0
        """Queries sent so far (for the operator's metrics and the scale benchmark)."""
        self.on_query = on_query
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            limits = httpx.Limits(
                max_connections=self.limiter.limit, max_keepalive_connections=self.limiter.limit
            )
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def query(self, expr: str, at: float | None = None, *, key: Hashable = "") -> Any:
        """The `data.result` of one instant query evaluated at `at` (epoch seconds; Prometheus'
        own clock when None). `key` names the caller for the fair share of slots."""
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        async with self.limiter.slot(key):
            self.sent += 1
            if self.on_query is not None:
                self.on_query()
            try:
                async with asyncio.timeout(self.timeout_s):
                    body = await self._post(form)
            except TimeoutError:
                raise QueryError(f"timed out after {self.timeout_s:g}s ({self.url})") from None
        return _result(body, self.url)

    async def _post(self, form: dict[str, str]) -> tuple[int, bytes]:
        try:
            request = (
                self._client().build_request("GET", f"{self.url}/api/v1/query", params=form)
                if len(form["query"]) <= GET_LIMIT
                else self._client().build_request("POST", f"{self.url}/api/v1/query", data=form)
            )
            response = await self._client().send(request, stream=True)
            try:
                return response.status_code, await read_capped(response, self.max_bytes)
            except TooLarge as exc:
                raise QueryError(self._too_big(exc.size)) from None
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.ConnectError as exc:
            text = str(exc).lower()
            cause = "connection refused" if "refused" in text or "errno 111" in text else str(exc)
            raise QueryError(f"cannot connect to {self.url}: {cause[:160]}") from None
        except httpx.HTTPError as exc:
            raise QueryError(f"{self.url}: {type(exc).__name__}: {str(exc)[:200]}") from None

    def _too_big(self, size: int) -> str:
        return (
            f"answer from {self.url} over the size cap ({size} > {self.max_bytes} bytes): "
            "narrow the LatencySLO's metrics.labels"
        )


def _result(answer: tuple[int, bytes], url: str) -> Any:
    status, raw = answer
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        if status != 200:
            raise QueryError(f"HTTP {status} from {url}: {raw[:200]!r}") from None
        raise QueryError(f"unreadable answer from {url}: not JSON") from None
    if not isinstance(body, dict):
        raise QueryError(f"unreadable answer from {url}: {str(body)[:200]}")
    if status != 200 or body.get("status") != "success":
        error = body.get("error") or body.get("status")
        raise QueryError(f"HTTP {status} from {url}: {str(error)[:300]}")
    data = body.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise QueryError(f"unreadable answer from {url}: no data.result")
    return data["result"]
