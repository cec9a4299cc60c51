"""`KubernetesStateStore`: the control loop's `StateStore` on the LatencySLO object itself.

- The **controller memory** (policy state, attainment and quality ledgers) is JSON in the
  annotation `latencyslo.io/controller-state` of the LatencySLO (a merge patch of the object).
- The **status** (including `pending`) goes through the `status` subresource (a merge patch;
  fields that became null are removed).

The memory is written first, then the status, so a status carrying `pending` always has the
matching memory behind it (see `slo_operator.loop`). The loop decides what is due
(`slo_operator.memory.Persister`: None skips a part); an unchanged memory is not rewritten
here either. Every API failure is raised as `StoreError`.

**Compare-and-swap.** Given the object's `resourceVersion` as read, every write carries it as
a precondition and the store moves on to the version each write returns: a write over a
version the store has not seen fails with 409 (`StoreConflict`) instead of overwriting what
someone else wrote. Two operators on one object (a misconfigured shard, a rolling update)
therefore never lose each other's status or memory, and the intent recorded before an action
fails for the one that saw a stale object, so it does not act (`act.py`: nothing is done when
the intent cannot be recorded). `changed_elsewhere` tells the caller, from the object as its
watch last delivered it, whether another writer changed the status or the memory (then the
loop restarts from them) or only something else (kopf's annotations, the spec: the new version
is simply adopted).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s

from slo_operator.errors import StoreError
from slo_operator.spec import GROUP, PLURAL, VERSION

STATE_ANNOTATION = "latencyslo.io/controller-state"
MERGE_PATCH = "application/merge-patch+json"


class StoreConflict(StoreError):
    """The object changed since the version this store wrote against (409): not written."""


def _pruned(value: Any) -> Any:
    """A status as the API server keeps it after a merge patch: null fields removed."""
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def load_memory(annotations: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The controller memory from a LatencySLO's annotations (None when absent or unreadable)."""
    raw = (annotations or {}).get(STATE_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # a 5,000-digit number, 100,000 levels of nesting
        return None
    return data if isinstance(data, dict) else None


class KubernetesStateStore:
    """Persists one LatencySLO's status and controller memory (see module docs)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        name: str,
        request_timeout_s: float = 10.0,
        memory: Mapping[str, Any] | None = None,
        status: Mapping[str, Any] | None = None,
        resource_version: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.request_timeout_s = request_timeout_s
        self._api = k8s.CustomObjectsApi(api)
        self._last_memory = (
            json.dumps(memory, sort_keys=True, separators=(",", ":")) if memory else None
        )
        self._last_status = _pruned(dict(status)) if status else None
        self.resource_version = resource_version
        """The version writes are conditional on (None: unconditional writes)."""
        self._own: deque[str] = deque(maxlen=16)
        """Versions this store's own writes produced (a watch may deliver them late)."""
        self.conflicts = 0

    def changed_elsewhere(
        self,
        resource_version: str | None,
        annotations: Mapping[str, str] | None,
        status: Mapping[str, Any] | None,
    ) -> bool:
        """Whether the object as last delivered (`resource_version`, its annotations and
        status) holds a status or memory this store did not write. Either way its version is
        adopted for the next write, unless it is one of this store's own (a late event)."""
        if (
            resource_version is None
            or resource_version == self.resource_version
            or resource_version in self._own
        ):
            return False
        memory = (annotations or {}).get(STATE_ANNOTATION) or None
        seen = _pruned(dict(status)) if status else None
        foreign = memory != self._last_memory or seen != self._last_status
        self.resource_version = resource_version
        self._last_memory, self._last_status = memory, seen
        return foreign

    def _precondition(self) -> dict[str, Any]:
        return {} if self.resource_version is None else {"resourceVersion": self.resource_version}

    def _written(self, response: Any) -> None:
        version = (response.get("metadata") or {}).get("resourceVersion") if response else None
        if isinstance(version, str) and self.resource_version is not None:
            self.resource_version = version
            self._own.append(version)

    async def save(
        self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None
    ) -> None:
        try:
            try:
                await self._save(status, memory)
            except k8s.ApiException as exc:
                if exc.status != 409 or not await self._only_metadata_moved():
                    raise
                await self._save(status, memory)  # once, on the version just read
        except k8s.ApiException as exc:
            if exc.status == 409:
                self.conflicts += 1
                raise StoreConflict(
                    f"saving {self.namespace}/{self.name}: changed by another writer since "
                    f"version {self.resource_version} (409); not written"
                ) from exc
            raise StoreError(f"saving {self.namespace}/{self.name}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreError(f"saving {self.namespace}/{self.name}: {exc}") from exc

    async def _only_metadata_moved(self) -> bool:
        """After a 409: read the object; when its status and memory are still those this store
        last saw (only kopf's finalizer or annotations, or the spec, moved), adopt its version
        and say so (the write is then retried once). A daemon's first write meets this every
        time: kopf adds its finalizer after handing the daemon the object."""
        if self.resource_version is None:
            return False
        current = await self._api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name,
            _request_timeout=self.request_timeout_s,
        )  # fmt: skip
        metadata = current.get("metadata") or {}
        memory = load_memory(metadata.get("annotations"))
        encoded = json.dumps(memory, sort_keys=True, separators=(",", ":")) if memory else None
        status = _pruned(dict(current.get("status") or {})) or None
        version = metadata.get("resourceVersion")
        if encoded != self._last_memory or status != self._last_status or not version:
            return False
        self.resource_version = str(version)
        return True

    async def _save(
        self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None
    ) -> None:
        encoded = json.dumps(memory, sort_keys=True, separators=(",", ":")) if memory else None
        if encoded is not None and encoded != self._last_memory:
            response = await self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                {"metadata": {"annotations": {STATE_ANNOTATION: encoded}, **self._precondition()}},
                _content_type=MERGE_PATCH,
                _request_timeout=self.request_timeout_s,
            )
            self._last_memory = encoded
            self._written(response)
        if status is None:
            return
        response = await self._api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            {"metadata": self._precondition(), "status": dict(status)},
            _content_type=MERGE_PATCH,
            _request_timeout=self.request_timeout_s,
        )
        self._last_status = _pruned(dict(status))
        self._written(response)
