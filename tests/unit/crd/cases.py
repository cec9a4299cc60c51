"""A table of good and bad LatencySLO manifests, shared by the agreement and CLI tests.

Each case is a change to a minimal valid manifest, the layer of the API server that must refuse
it (`schema`: the OpenAPI schema, list types and metadata rules; `cel`: a CEL rule; `update`: a
transition rule, which needs the old object) or `None` when it is valid, and the field path the
refusal must name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DELETE: Any = object()
"""A change value: remove the key."""

Layer = Literal["schema", "cel", "update"] | None


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "latencyslo.io/v1alpha1",
        "kind": "LatencySLO",
        "metadata": {"name": "sentiment", "namespace": "ml"},
        "spec": {"targetRef": {"name": "sentiment-worker"}, "objective": {"latencyMs": 150}},
    }


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with dotted paths set (missing parents are created) or deleted."""
    doc = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return doc


DECISION = {
    "time": "2024-05-01T12:00:00Z",
    "action": "ScaleUp",
    "from": {"replicas": 2, "batchWindowMs": 8, "variant": "full"},
    "to": {"replicas": 4, "batchWindowMs": 12, "maxBatchSize": 32, "variant": "quantized"},
    "predictedLatencyMs": 118.0,
    "reason": "p99 212ms > 150ms target at 41 req/s",
    "applied": True,
}
LIMIT_SET = {  # a hold that only wrote the spec's queue wait limit
    **DECISION,
    "action": "Hold",
    "from": {**DECISION["from"], "maxQueueWaitMs": None},
    "to": {**DECISION["from"], "maxQueueWaitMs": 60},
}
CONDITION = {
    "type": "SLOMet",
    "status": "False",
    "reason": "Breached",
    "message": "p99 212ms > 150ms",
    "lastTransitionTime": "2024-05-01T12:00:00Z",
    "observedGeneration": 3,
}
STATUS = {
    "observedGeneration": 3,
    "observed": {
        "latencyMs": 212.4,
        "percentile": 99.0,
        "requestRate": 41.2,
        "samples": 2472,
        "sampledAt": "2024-05-01T12:00:00.5+02:00",
    },
    "current": {
        "replicas": 2,
        "readyReplicas": 2,
        "batchWindowMs": 8,
        "maxBatchSize": 32,
        "variant": "full",
    },
    "lastDecision": DECISION,
    "history": [DECISION],
    "qualityBudget": {"degradedFraction": 0.04},
    "attainment": {"lastHour": 0.997},
    "conditions": [CONDITION, {**CONDITION, "type": "Ready", "status": "True", "reason": "Ok"}],
}


@dataclass(frozen=True)
class Case:
    id: str
    changes: dict[str, Any] = field(default_factory=dict)
    layer: Layer = None
    path: str = ""
    base: str | None = None
    """An example file to start from instead of the minimal manifest."""
    old: dict[str, Any] | None = None
    """Changes to the minimal manifest giving the stored object (an update)."""
    whole: Any = None
    """Replace the whole document (for documents that are not LatencySLO-shaped)."""

    def document(self) -> Any:
        if self.whole is not None:
            return copy.deepcopy(self.whole)
        base = example(self.base) if self.base else minimal()
        return changed(base, self.changes)

    def old_document(self) -> dict[str, Any] | None:
        return None if self.old is None else changed(minimal(), self.old)


LONG = "x" * 1001

GOOD = [
    Case("minimal"),
    Case("example-minimal", base="minimal.yaml"),
    Case("example-full", base="full.yaml"),
    Case("example-recommend", base="recommend.yaml"),
    Case("preferred-omitted-means-first-allowed", {"spec.variants.allowed": ["quantized"]}),
    Case("preferred-null-is-omitted", {"spec.variants.preferred": None}),
    Case("queue-wait-limit", {"spec.batching.maxQueueWaitMs": 60}),
    Case("queue-wait-limit-zero", {"spec.batching.maxQueueWaitMs": 0}),
    Case("queue-wait-limit-null-is-omitted", {"spec.batching.maxQueueWaitMs": None}),
    Case("queue-wait-limit-in-status", {"status.current.maxQueueWaitMs": 60}),
    Case("queue-wait-limit-in-history", {"status.history": [LIMIT_SET]}),
    Case("object-null-takes-default", {"spec.replicas": None, "spec.batching": None}),
    Case("field-null-takes-default", {"spec.replicas.min": None, "spec.replicas.max": 3}),
    Case("label-value-null-is-pruned", {"spec.metrics.labels": {"tier": None, "app": "a"}}),
    Case("integral-float-is-an-integer", {"spec.replicas.max": 4.0}),
    Case("integer-for-a-number", {"spec.objective.percentile": 95}),
    Case("bounds-inclusive", {"spec.objective.percentile": 50, "spec.policy.headroom": 1}),
    Case("replicas-min-equals-max", {"spec.replicas": {"min": 0, "max": 1}}),
    Case("window-min-equals-max", {"spec.batching": {"minWindowMs": 50, "maxWindowMs": 50}}),
    Case("labels-sixteen", {"spec.metrics.labels": {f"l{i}": "v" for i in range(16)}}),
    Case("generate-name", {"metadata.name": DELETE, "metadata.generateName": "sentiment-"}),
    Case("status-full", {"status": STATUS}),
    Case("status-nulls", {"status.observed": {"latencyMs": None}, "status.current": None}),
    Case("update-same-target", old={}),
    Case("update-target-defaults-spelled-out", {"spec.targetRef.kind": "Deployment"}, old={}),
    Case("paused", {"spec.policy.mode": "Paused"}),
    Case("cost-share-whole-budget", {"spec.variants.qualityBudget.costShare": 1}),
]

BAD = [
    # -------------------------------------------------------------- the OpenAPI schema layer
    Case("spec-missing", {"spec": DELETE}, "schema", "spec"),
    Case("spec-not-an-object", {"spec": "hold p99"}, "schema", "spec"),
    Case("target-ref-missing", {"spec.targetRef": DELETE}, "schema", "spec.targetRef"),
    Case("latency-missing", {"spec.objective": {}}, "schema", "spec.objective.latencyMs"),
    Case("latency-null", {"spec.objective.latencyMs": None}, "schema", "spec.objective.latencyMs"),
    Case("target-name-empty", {"spec.targetRef.name": ""}, "schema", "spec.targetRef.name"),
    Case(
        "target-name-uppercase", {"spec.targetRef.name": "Worker"}, "schema", "spec.targetRef.name"
    ),
    Case("latency-zero", {"spec.objective.latencyMs": 0}, "schema", "spec.objective.latencyMs"),
    Case(
        "latency-negative", {"spec.objective.latencyMs": -5}, "schema", "spec.objective.latencyMs"
    ),
    Case(
        "latency-with-unit",
        {"spec.objective.latencyMs": "150ms"},
        "schema",
        "spec.objective.latencyMs",
    ),
    Case(
        "latency-numeric-string",
        {"spec.objective.latencyMs": "150"},
        "schema",
        "spec.objective.latencyMs",
    ),
    Case(
        "percentile-100", {"spec.objective.percentile": 100}, "schema", "spec.objective.percentile"
    ),
    Case(
        "percentile-below-50",
        {"spec.objective.percentile": 49.9},
        "schema",
        "spec.objective.percentile",
    ),
    Case(
        "window-too-short",
        {"spec.objective.windowSeconds": 10},
        "schema",
        "spec.objective.windowSeconds",
    ),
    Case(
        "window-fractional",
        {"spec.objective.windowSeconds": 60.5},
        "schema",
        "spec.objective.windowSeconds",
    ),
    Case(
        "min-rate-negative",
        {"spec.objective.minRequestRate": -1},
        "schema",
        "spec.objective.minRequestRate",
    ),
    Case(
        "histogram-bad-name",
        {"spec.metrics.histogram": "my-histogram"},
        "schema",
        "spec.metrics.histogram",
    ),
    Case(
        "labels-too-many",
        {"spec.metrics.labels": {f"l{i}": "v" for i in range(17)}},
        "schema",
        "spec.metrics.labels",
    ),
    Case(
        "label-value-too-long",
        {"spec.metrics.labels": {"tier": LONG}},
        "schema",
        "spec.metrics.labels[tier]",
    ),
    Case(
        "label-value-boolean",
        {"spec.metrics.labels": {"canary": True}},
        "schema",
        "spec.metrics.labels[canary]",
    ),
    Case("replicas-min-negative", {"spec.replicas.min": -1}, "schema", "spec.replicas.min"),
    Case("replicas-max-zero", {"spec.replicas.max": 0}, "schema", "spec.replicas.max"),
    Case("replicas-max-string", {"spec.replicas.max": "3"}, "schema", "spec.replicas.max"),
    Case("replicas-min-boolean", {"spec.replicas.min": True}, "schema", "spec.replicas.min"),
    Case(
        "window-above-1000",
        {"spec.batching.maxWindowMs": 1001},
        "schema",
        "spec.batching.maxWindowMs",
    ),
    Case(
        "batch-size-zero", {"spec.batching.maxBatchSize": 0}, "schema", "spec.batching.maxBatchSize"
    ),
    Case(
        "queue-wait-limit-negative",
        {"spec.batching.maxQueueWaitMs": -1},
        "schema",
        "spec.batching.maxQueueWaitMs",
    ),
    Case(
        "queue-wait-limit-above-600000",
        {"spec.batching.maxQueueWaitMs": 600_001},
        "schema",
        "spec.batching.maxQueueWaitMs",
    ),
    Case(
        "queue-wait-limit-string",
        {"spec.batching.maxQueueWaitMs": "60"},
        "schema",
        "spec.batching.maxQueueWaitMs",
    ),
    Case(
        "queue-wait-limit-in-history-string",
        {"status.lastDecision": {**DECISION, "to": {**DECISION["to"], "maxQueueWaitMs": "60"}}},
        "schema",
        "status.lastDecision.to.maxQueueWaitMs",
    ),
    Case(
        "queue-wait-limit-fraction",
        {"spec.batching.maxQueueWaitMs": 60.5},
        "schema",
        "spec.batching.maxQueueWaitMs",
    ),
    Case("allowed-empty", {"spec.variants.allowed": []}, "schema", "spec.variants.allowed"),
    Case(
        "allowed-four",
        {"spec.variants.allowed": ["full", "quantized", "distilled", "full"]},
        "schema",
        "spec.variants.allowed",
    ),
    Case(
        "allowed-unknown-variant",
        {"spec.variants.allowed": ["full", "int8"]},
        "schema",
        "spec.variants.allowed[1]",
    ),
    Case(
        "allowed-null-item",
        {"spec.variants.allowed": ["full", None]},
        "schema",
        "spec.variants.allowed[1]",
    ),
    Case(
        "preferred-unknown",
        {"spec.variants.preferred": "tiny"},
        "schema",
        "spec.variants.preferred",
    ),
    Case(
        "degraded-fraction-above-1",
        {"spec.variants.qualityBudget.maxDegradedFraction": 1.5},
        "schema",
        "spec.variants.qualityBudget.maxDegradedFraction",
    ),
    Case(
        "cost-share-above-1",
        {"spec.variants.qualityBudget.costShare": 1.5},
        "schema",
        "spec.variants.qualityBudget.costShare",
    ),
    Case(
        "cost-share-negative",
        {"spec.variants.qualityBudget.costShare": -0.1},
        "schema",
        "spec.variants.qualityBudget.costShare",
    ),
    Case(
        "budget-window-zero",
        {"spec.variants.qualityBudget.windowMinutes": 0},
        "schema",
        "spec.variants.qualityBudget.windowMinutes",
    ),
    Case("mode-unknown", {"spec.policy.mode": "Auto"}, "schema", "spec.policy.mode"),
    Case("mode-lowercase", {"spec.policy.mode": "enforce"}, "schema", "spec.policy.mode"),
    Case("headroom-zero", {"spec.policy.headroom": 0}, "schema", "spec.policy.headroom"),
    Case("headroom-above-1", {"spec.policy.headroom": 1.2}, "schema", "spec.policy.headroom"),
    Case(
        "interval-too-short",
        {"spec.policy.intervalSeconds": 1},
        "schema",
        "spec.policy.intervalSeconds",
    ),
    Case(
        "unknown-spec-field",
        {"spec.prometheusUrl": "http://evil:9090"},
        "schema",
        "spec.prometheusUrl",
    ),
    Case("unknown-nested-field", {"spec.replicas.desired": 3}, "schema", "spec.replicas.desired"),
    Case("misspelt-top-level", {"specs": {}}, "schema", "specs"),
    Case("name-missing", {"metadata.name": DELETE}, "schema", "metadata"),
    Case("name-invalid", {"metadata.name": "Sentiment_1"}, "schema", "metadata.name"),
    Case("namespace-invalid", {"metadata.namespace": "ML.team"}, "schema", "metadata.namespace"),
    Case("api-version-wrong", {"apiVersion": "latencyslo.io/v1"}, "schema", "apiVersion"),
    Case("kind-wrong", {"kind": "LatencySlo"}, "schema", "kind"),
    Case(
        "status-condition-repeated",
        {"status.conditions": [CONDITION, CONDITION]},
        "schema",
        "status.conditions",
    ),
    Case(
        "status-time-not-rfc3339",
        {"status.observed.sampledAt": "2024-05-01 12:00"},
        "schema",
        "status.observed.sampledAt",
    ),
    Case(
        "status-action-unknown",
        {"status.lastDecision": {**DECISION, "action": "Panic"}},
        "schema",
        "status.lastDecision.action",
    ),
    Case(
        "status-history-too-long", {"status.history": [DECISION] * 21}, "schema", "status.history"
    ),
    Case(
        "status-decision-no-reason",
        {"status.lastDecision": {k: v for k, v in DECISION.items() if k != "reason"}},
        "schema",
        "status.lastDecision.reason",
    ),
    # -------------------------------------------------------------------- the CEL rule layer
    Case(
        "replicas-min-above-max",
        {"spec.replicas": {"min": 5, "max": 2}},
        "cel",
        "spec.replicas.min",
    ),
    Case("replicas-min-above-default-max", {"spec.replicas.min": 9}, "cel", "spec.replicas.min"),
    Case(
        "window-min-above-max",
        {"spec.batching": {"minWindowMs": 9, "maxWindowMs": 3}},
        "cel",
        "spec.batching.minWindowMs",
    ),
    Case(
        "window-min-above-default-max",
        {"spec.batching.minWindowMs": 60},
        "cel",
        "spec.batching.minWindowMs",
    ),
    Case(
        "allowed-repeated",
        {"spec.variants.allowed": ["full", "full"]},
        "cel",
        "spec.variants.allowed",
    ),
    Case(
        "preferred-not-allowed",
        {"spec.variants.allowed": ["quantized", "distilled"], "spec.variants.preferred": "full"},
        "cel",
        "spec.variants.preferred",
    ),
    Case(
        "target-kind-statefulset",
        {"spec.targetRef.kind": "StatefulSet"},
        "cel",
        "spec.targetRef.kind",
    ),
    Case(
        "target-api-version-old",
        {"spec.targetRef.apiVersion": "apps/v1beta1"},
        "cel",
        "spec.targetRef.apiVersion",
    ),
    Case(
        "label-namespace",
        {"spec.metrics.labels": {"namespace": "other"}},
        "cel",
        "spec.metrics.labels",
    ),
    Case("label-le", {"spec.metrics.labels": {"le": "0.1"}}, "cel", "spec.metrics.labels"),
    Case(
        "label-key-dash", {"spec.metrics.labels": {"app-name": "x"}}, "cel", "spec.metrics.labels"
    ),
    Case(
        "label-key-reserved",
        {"spec.metrics.labels": {"__name__": "x"}},
        "cel",
        "spec.metrics.labels",
    ),
    Case(
        "label-key-too-long",
        {"spec.metrics.labels": {"k" * 101: "x"}},
        "cel",
        "spec.metrics.labels",
    ),
    Case(
        "label-key-injection",
        {"spec.metrics.labels": {'job="x"} or up{namespace': "y"}},
        "cel",
        "spec.metrics.labels",
    ),
    # ---------------------------------------------------------------- transition rules (update)
    Case(
        "target-renamed",
        {"spec.targetRef.name": "other-worker"},
        "update",
        "spec.targetRef",
        old={},
    ),
]

ALL = GOOD + BAD
