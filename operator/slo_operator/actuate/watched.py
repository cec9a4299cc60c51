"""What the operator's watches already hold: the targets' Deployments and runtime ConfigMaps.

Reading each target's Deployment and ConfigMap by name at every step was the largest share of
the operator's CPU with a thousand LatencySLOs (two GETs per object per interval, most of
them returning what the previous step read). The operator keeps both in watch-fed indexes
instead (kopf indexes, `handlers.py`), as the HPA controller reads from informer caches:
one list at start, then only changes.

- **Deployments** of the namespaces served, each slimmed to what a step reads: its
  `resourceVersion`, `spec.replicas`, `spec.selector` and `status.readyReplicas`.
- **ConfigMaps labelled `app.kubernetes.io/managed-by: latencyslo-operator`** only (a
  server-side label selector): the runtime ConfigMaps this operator created. A ConfigMap of
  the runtime name without that label (someone else's, or none at all) is not in the index,
  and the actuator reads it by name as before, so a foreign ConfigMap is still seen and
  refused.

A watch lags the API server by the time an event takes to arrive: a read from the index may
predate a write made a moment ago. Nothing is written from it blindly: every write reads the
object fresh and compares (compare-and-swap, `actuate/kubernetes.py`), and a mismatch is
reported and decided again at the next step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "latencyslo-operator"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
"""The label selector of the runtime ConfigMaps the operator watches."""


class WatchedObjects(Protocol):
    """Objects by (namespace, name) as the watches last saw them; None: not watched or not
    seen (the caller reads the API server)."""

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...


def slim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Deployment a step reads (a few hundred bytes kept per Deployment)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": {"replicas": spec.get("replicas"), "selector": _plain(spec.get("selector"))},
        "status": {"readyReplicas": status.get("readyReplicas")},
    }


def slim_configmap(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A runtime ConfigMap as the actuator reads it (metadata and data); None when it does not
    carry the operator's label (a label selector is a filter the server may not apply)."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": _plain(labels),
            "ownerReferences": _plain(meta.get("ownerReferences") or []),
        },
        "data": _plain(body.get("data") or {}),
    }


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf hands out live views of its bodies)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
