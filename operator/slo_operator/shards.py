"""Sharding by namespace: each operator claims the namespaces it watches, and no two overlap.

Several operator releases can share a cluster when each watches its own namespaces
(`--namespace`). With `--shard-id ID` (the chart sets it to `<release namespace>/<release>`),
the operator claims each namespace it watches before it starts: a `coordination.k8s.io/v1`
`Lease` named `latencyslo-operator` in that namespace, `holderIdentity` = ID, renewed every
`renew_s` and valid for `duration_s` after its last renewal.

- A namespace whose Lease is held by another ID and still valid: the operator refuses to
  start (`ShardConflict`, naming the namespace and the holder), after giving back the
  namespaces it had claimed so far; nothing was watched or written.
- A Lease that expired (its holder stopped without giving it back, e.g. killed) is taken over;
  one already held by the same ID is renewed (a restarted pod of the same release).
- Every write is a compare-and-swap on the Lease's `resourceVersion`: two operators starting
  at the same instant cannot both take one namespace (the loser gets 409, reads again, and
  finds the winner's claim).
- Running: each claim is renewed; a claim found held by another ID (this operator was cut
  off longer than `duration_s` and another took over) stops the operator.
- Stopping: the claims are given back (deleted), so the next operator need not wait.

Cluster-wide mode (no `--namespace`) claims nothing: one operator then owns every namespace,
and it must not be combined with shards (docs/operator.md, "Sharding").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s

LEASE_NAME = "latencyslo-operator"
LEASE_DURATION_S = 60
LEASE_RENEW_S = 15.0
MANAGED_BY = {"app.kubernetes.io/managed-by": "latencyslo-operator"}

log = logging.getLogger("slo_operator.shards")


class ShardError(RuntimeError):
    """A claim could not be read or written (API error)."""


class ShardConflict(ShardError):
    """A watched namespace is claimed by another operator."""

    def __init__(self, namespace: str, holder: str, mine: str) -> None:
        self.namespace, self.holder, self.mine = namespace, holder, mine
        super().__init__(
            f"namespace {namespace!r} is already watched by the operator {holder!r} "
            f"(its Lease {namespace}/{LEASE_NAME} is held and renewed); this operator "
            f"({mine!r}) does not start. Give each operator release its own namespaces "
            f"(--namespace / operator.watchNamespaces), with no namespace in two lists."
        )


def _micro_time(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def holder_of(lease: dict[str, Any], now: float) -> str | None:
    """The identity holding a Lease now (None: free or expired)."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int | float):
        return str(holder)  # no expiry written: held until given back
    return str(holder) if now < renewed + float(duration) else None


class ShardClaims:
    """The Leases of one operator over the namespaces it watches (module docs)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        identity: str,
        namespaces: Sequence[str],
        *,
        duration_s: int = LEASE_DURATION_S,
        renew_s: float = LEASE_RENEW_S,
        clock: Callable[[], float] = time.time,
        request_timeout_s: float = 10.0,
    ) -> None:
        if not identity:
            raise ValueError("a shard claim needs an identity")
        self.identity = identity
        self.namespaces = tuple(namespaces)
        self.duration_s = duration_s
        self.renew_s = renew_s
        self.clock = clock
        self.request_timeout_s = request_timeout_s
        self._api = k8s.CoordinationV1Api(api)
        self._held: dict[str, str] = {}
        """namespace -> resourceVersion of our Lease there."""
        self.lost: ShardConflict | None = None

    @property
    def held(self) -> tuple[str, ...]:
        return tuple(self._held)

    # ------------------------------------------------------------------ API calls

    async def _call(self, request: Any) -> tuple[int, dict[str, Any] | None]:
        try:
            response = await request
            async with response:
                status = response.status
                body = await response.read()
        except k8s.ApiException as exc:
            return exc.status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ShardError(f"Lease API: {type(exc).__name__}: {exc}") from exc
        data = None
        if body:
            with contextlib.suppress(ValueError):
                data = json.loads(body)
        return status, data if isinstance(data, dict) else None

    def _body(self, namespace: str, resource_version: str | None, acquired: str) -> dict[str, Any]:
        now = _micro_time(self.clock())
        meta: dict[str, Any] = {"name": LEASE_NAME, "namespace": namespace, "labels": MANAGED_BY}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_s,
                "acquireTime": acquired,
                "renewTime": now,
            },
        }

    async def _read(self, namespace: str) -> dict[str, Any] | None:
        status, data = await self._call(
            self._api.read_namespaced_lease_without_preload_content(
                LEASE_NAME, namespace, _request_timeout=self.request_timeout_s
            )
        )
        if status == 404:
            return None
        if status >= 300 or data is None:
            raise ShardError(f"reading Lease {namespace}/{LEASE_NAME}: HTTP {status}")
        return data

    async def _claim_one(self, namespace: str) -> None:
        """Take or renew the claim on one namespace (CAS; a lost race is read again)."""
        for _ in range(5):
            lease = await self._read(namespace)
            if lease is None:
                body = self._body(namespace, None, _micro_time(self.clock()))
                status, data = await self._call(
                    self._api.create_namespaced_lease_without_preload_content(
                        namespace, body, _request_timeout=self.request_timeout_s
                    )
                )
            else:
                holder = holder_of(lease, self.clock())
                if holder is not None and holder != self.identity:
                    raise ShardConflict(namespace, holder, self.identity)
                spec = lease.get("spec") or {}
                acquired = (
                    spec.get("acquireTime")
                    if holder == self.identity and spec.get("acquireTime")
                    else _micro_time(self.clock())
                )
                rv = (lease.get("metadata") or {}).get("resourceVersion")
                status, data = await self._call(
                    self._api.replace_namespaced_lease_without_preload_content(
                        LEASE_NAME,
                        namespace,
                        self._body(namespace, rv, acquired),
                        _request_timeout=self.request_timeout_s,
                    )
                )
            if status == 409:
                continue  # another operator wrote it in between: read again
            if status >= 300 or data is None:
                raise ShardError(f"writing Lease {namespace}/{LEASE_NAME}: HTTP {status}")
            self._held[namespace] = str((data.get("metadata") or {}).get("resourceVersion"))
            return
        raise ShardError(f"Lease {namespace}/{LEASE_NAME}: too many concurrent writers")

    # ------------------------------------------------------------------ lifecycle

    async def acquire(self) -> None:
        """Claim every watched namespace, or none: on a conflict the claims taken so far are
        given back and `ShardConflict` is raised."""
        try:
            for namespace in self.namespaces:
                await self._claim_one(namespace)
        except ShardError:
            await self.release()
            raise
        log.info("claimed namespaces %s as %r", ", ".join(self.namespaces), self.identity)

    async def renew(self) -> None:
        """Renew every claim once; raises `ShardConflict` when one was taken over."""
        for namespace in self.namespaces:
            try:
                await self._claim_one(namespace)
            except ShardConflict as exc:
                self._held.pop(namespace, None)
                self.lost = exc
                raise

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew every `renew_s` until `stop` is set; a lost claim sets `stop` (the operator
        stops: another operator watches that namespace now). API errors are retried at the
        next renewal (the claim stays valid for `duration_s`)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.renew_s)
            if stop.is_set():
                return
            try:
                await self.renew()
            except ShardConflict as exc:
                log.error("%s", exc)
                stop.set()
                return
            except ShardError as exc:
                log.warning("renewing the namespace claims failed, retried: %s", exc)

    async def release(self) -> None:
        """Give back (delete) the claims held, each only if still ours (resourceVersion)."""
        for namespace, rv in list(self._held.items()):
            body = {"preconditions": {"resourceVersion": rv}}
            with contextlib.suppress(ShardError):
                await self._call(
                    self._api.delete_namespaced_lease_without_preload_content(
                        LEASE_NAME, namespace, body=body, _request_timeout=self.request_timeout_s
                    )
                )
            self._held.pop(namespace, None)
