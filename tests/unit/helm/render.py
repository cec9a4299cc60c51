"""Render the Helm chart offline with helm-python-sdk (the Helm library, no helm binary).

Shared by the chart tests here and the monitoring tests in tests/integration/monitoring.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "helm" / "latencyslo"
RELEASE = "latencyslo"
NAMESPACE = "latencyslo-system"


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two values mappings (override wins), like `helm -f a -f b`."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MONITORING_ON: dict[str, Any] = {
    "monitoring": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}

OFFLINE_TOKEN: dict[str, Any] = {"demo": {"adminToken": {"value": "offline-render-token"}}}
"""An offline render has no cluster to keep a generated admin token in: the demo value sets
give one (as `helm template` users must; `helm install` generates and keeps it)."""

GPU_WORKER: dict[str, Any] = {
    "name": "sentiment-gpu",
    "namespace": "ml",
    "image": {"repository": "registry.example.com/ml/sentiment-worker", "tag": "1.4.0"},
    "device": "cuda",
    "modelDir": "/models/sentiment",
    "resources": {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": 1},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": 1},
    },
    "runtimeClassName": "nvidia",
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "sentiment-models"}}],
    "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    "env": [
        {"name": "LATENCYSLO_FRONTENDS", "value": "4"},
        {"name": "LATENCYSLO_CUDA_GRAPHS", "value": "true"},
    ],
    "drainDelaySeconds": 0,
}
"""A user's own worker on a GPU node: the example of docs/install.md."""

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "demo": merge({"demo": {"enabled": True}}, OFFLINE_TOKEN),
    "namespaced": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "namespaced-demo": merge(
        {"operator": {"watchNamespaces": [NAMESPACE, "team-a"]}, "demo": {"enabled": True}},
        OFFLINE_TOKEN,
    ),
    "monitoring": MONITORING_ON,
    # what hack/kind-up.sh installs (tests/e2e/values-e2e.yaml, namespace-scoped)
    "kind-e2e": merge(
        yaml.safe_load((REPO / "tests" / "e2e" / "values-e2e.yaml").read_text()),
        merge({"operator": {"watchNamespaces": [NAMESPACE]}}, OFFLINE_TOKEN),
    ),
    # a user's own GPU worker next to the operator (docs/install.md)
    "gpu-workers": {"workers": [GPU_WORKER]},
    "everything": {
        **MONITORING_ON,
        "operator": {"watchNamespaces": [NAMESPACE]},
        "demo": {"enabled": True, "adminToken": {"value": "s3cret-token"}},
        "serviceAccount": {"annotations": {"example.com/role": "latencyslo"}},
    },
}
"""Named value sets every chart test renders."""


def render_manifests(
    values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), exactly as `helm template`."""
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.render(dict(values or {}), name=RELEASE, namespace=namespace, is_install=True)


def iter_objects(manifests: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield doc


def render_objects(
    values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (templates only; the CRD lives in crds/)."""
    return list(iter_objects(render_manifests(values, namespace=namespace)))


@functools.cache
def render_value_set(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(render_objects(VALUE_SETS[name]))


def find(objects: Any, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: Any, kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def chart_crds() -> list[dict[str, Any]]:
    """The CRD objects in the chart's crds/ folder."""
    with helm.Chart.load(CHART_DIR) as chart:
        return [doc for crd in chart.crds for doc in yaml.safe_load_all(crd["data"]) if doc]


def rendered_rule_groups(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The PrometheusRule's groups (a plain Prometheus rule file's `groups`)."""
    objects = render_objects(merge(MONITORING_ON, values or {}))
    return list(one(objects, "PrometheusRule")["spec"]["groups"])


def rendered_dashboard(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Grafana dashboard as the chart ships it in its ConfigMap."""
    objects = render_objects(merge(MONITORING_ON, values or {}))
    cm = one(objects, "ConfigMap", f"{RELEASE}-dashboard")
    return dict(json.loads(cm["data"]["latencyslo.json"]))
