"""`KubernetesStateStore`: the control loop's `StateStore` on the LatencySLO object itself.

- The **controller memory** (policy state, attainment and quality ledgers) is JSON in the
  annotation `latencyslo.io/controller-state` of the LatencySLO (a merge patch of the object).
- The **status** (including `pending`) goes through the `status` subresource (a merge patch;
  fields that became null are removed).

The memory is written first, then the status, so a status carrying `pending` always has the
matching memory behind it (see `slo_operator.loop`). The loop decides what is due
(`slo_operator.memory.Persister`: None skips a part); an unchanged memory is not rewritten
here either. Every API failure is raised as `StoreError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s
from kubernetes.client.exceptions import ApiException

from slo_operator.errors import StoreError
from slo_operator.spec import GROUP, PLURAL, VERSION

STATE_ANNOTATION = "latencyslo.io/controller-state"
MERGE_PATCH = "application/merge-patch+json"


def load_memory(annotations: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The controller memory from a LatencySLO's annotations (None when absent or unreadable)."""
    raw = (annotations or {}).get(STATE_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
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
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.request_timeout_s = request_timeout_s
        self._api = k8s.CustomObjectsApi(api)
        self._last_memory = (
            json.dumps(memory, sort_keys=True, separators=(",", ":")) if memory else None
        )

    async def save(
        self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None
    ) -> None:
        try:
            await self._save(status, memory)
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreError(f"saving {self.namespace}/{self.name}: {exc}") from exc

    async def _save(
        self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None
    ) -> None:
        encoded = json.dumps(memory, sort_keys=True, separators=(",", ":")) if memory else None
        if encoded is not None and encoded != self._last_memory:
            await self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                {"metadata": {"annotations": {STATE_ANNOTATION: encoded}}},
                _content_type=MERGE_PATCH,
                _request_timeout=self.request_timeout_s,
            )
            self._last_memory = encoded
        if status is None:
            return
        await self._api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            {"status": dict(status)},
            _content_type=MERGE_PATCH,
            _request_timeout=self.request_timeout_s,
        )
