"""The LatencySLO API (latencyslo.io/v1alpha1) as pydantic models: the single source of truth.

Python code uses snake_case attributes; the wire format (Kubernetes objects, YAML, JSON) is
camelCase through aliases, exactly as in the API contract. `model_dump(by_alias=True)` gives
the Kubernetes shape. Every field carries a description: the CRD's OpenAPI schema is generated
from these models (see `slo_operator.crd`), so the descriptions are what `kubectl explain`
shows.

Cross-field rules live next to the model they constrain, twice: as a pydantic validator (what
the operator runs) and as a CEL rule in `x-kubernetes-validations` (what the API server and
`latencyslo validate` run), with the same message. Tests keep the verdicts equal on a table of
manifests (tests/unit/crd).

The models read values the way the API server does, so that a manifest is accepted here
exactly when the API server accepts it:
- numbers and booleans are never parsed from strings (`"5"` is not an integer), and a boolean
  is not a number; an integral float such as `2.0` is an integer, as in Kubernetes;
- `null` for a field that is not nullable means "omitted" (the API server prunes such nulls and
  then applies the default), also inside maps;
- timestamps are RFC 3339 strings (or `datetime` objects in Python).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from slo_contracts.runtime import MAX_BATCH_SIZE, MAX_QUEUE_WAIT_MS, MAX_WINDOW_MS
from slo_operator.api_status import Action as Action
from slo_operator.api_status import AttainmentStatus as AttainmentStatus
from slo_operator.api_status import Condition as Condition
from slo_operator.api_status import ConditionType as ConditionType
from slo_operator.api_status import ConfigSnapshot as ConfigSnapshot
from slo_operator.api_status import CurrentStatus as CurrentStatus
from slo_operator.api_status import DecisionRecord as DecisionRecord
from slo_operator.api_status import LatencySLOStatus as LatencySLOStatus
from slo_operator.api_status import ObservedStatus as ObservedStatus
from slo_operator.api_status import QualityBudgetStatus as QualityBudgetStatus
from slo_operator.api_types import API_VERSION as API_VERSION
from slo_operator.api_types import CATEGORIES as CATEGORIES
from slo_operator.api_types import CONDITIONS_LIMIT as CONDITIONS_LIMIT
from slo_operator.api_types import DNS1123_LABEL_PATTERN as DNS1123_LABEL_PATTERN
from slo_operator.api_types import DNS1123_SUBDOMAIN_PATTERN as DNS1123_SUBDOMAIN_PATTERN
from slo_operator.api_types import GROUP as GROUP
from slo_operator.api_types import HISTORY_LIMIT as HISTORY_LIMIT
from slo_operator.api_types import KIND as KIND
from slo_operator.api_types import LABEL_NAME as LABEL_NAME
from slo_operator.api_types import LABEL_NAME_MAX as LABEL_NAME_MAX
from slo_operator.api_types import LABEL_NAME_PATTERN as LABEL_NAME_PATTERN
from slo_operator.api_types import LABELS_LIMIT as LABELS_LIMIT
from slo_operator.api_types import METRIC_NAME_PATTERN as METRIC_NAME_PATTERN
from slo_operator.api_types import PLURAL as PLURAL
from slo_operator.api_types import RFC3339_PATTERN as RFC3339_PATTERN
from slo_operator.api_types import SHORT_NAMES as SHORT_NAMES
from slo_operator.api_types import SINGULAR as SINGULAR
from slo_operator.api_types import VARIANTS as VARIANTS
from slo_operator.api_types import VERSION as VERSION
from slo_operator.api_types import ApiBool as ApiBool
from slo_operator.api_types import ApiFloat as ApiFloat
from slo_operator.api_types import ApiInt as ApiInt
from slo_operator.api_types import ApiModel as ApiModel
from slo_operator.api_types import Timestamp as Timestamp
from slo_operator.api_types import VariantName as VariantName
from slo_operator.api_types import cel_rule as cel_rule

# --------------------------------------------------------------------------------------- spec


TARGET_KIND_MESSAGE = "targetRef.kind must be Deployment: only Deployments can be steered"
TARGET_API_VERSION_MESSAGE = "targetRef.apiVersion must be apps/v1"


class TargetRef(ApiModel):
    """The inference Deployment this LatencySLO steers (same namespace as the LatencySLO)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "self == oldSelf", "targetRef is immutable; delete and recreate the LatencySLO"
                ),
                cel_rule("self.kind == 'Deployment'", TARGET_KIND_MESSAGE, ".kind"),
                cel_rule("self.apiVersion == 'apps/v1'", TARGET_API_VERSION_MESSAGE, ".apiVersion"),
            ]
        }
    )

    # Typed as literals for Python; on the wire plain strings checked by the CEL rules above, so
    # that a wrong kind gets the same message from the API server and from pydantic.
    api_version: Annotated[
        Literal["apps/v1"], WithJsonSchema({"type": "string", "maxLength": 253})
    ] = Field("apps/v1", description="API version of the target; only apps/v1 is supported.")
    kind: Annotated[Literal["Deployment"], WithJsonSchema({"type": "string", "maxLength": 63})] = (
        Field("Deployment", description="Kind of the target; only Deployment is supported.")
    )
    name: str = Field(
        ...,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
        description="Name of the Deployment in the LatencySLO's own namespace.",
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _deployment(cls, kind: Any) -> Any:
        if kind != "Deployment":
            raise ValueError(TARGET_KIND_MESSAGE)
        return kind

    @field_validator("api_version", mode="before")
    @classmethod
    def _apps_v1(cls, api_version: Any) -> Any:
        if api_version != "apps/v1":
            raise ValueError(TARGET_API_VERSION_MESSAGE)
        return api_version


class Objective(ApiModel):
    """The latency objective: the `percentile` of request latency over `windowSeconds`."""

    percentile: ApiFloat = Field(
        99.0,
        ge=50,
        lt=100,
        description="Latency percentile to hold, 50 <= percentile < 100 (99 means p99).",
    )
    latency_ms: ApiFloat = Field(
        ...,
        gt=0,
        le=600_000,
        description="Target latency in milliseconds for that percentile (> 0).",
    )
    window_seconds: ApiInt = Field(
        60,
        ge=15,
        le=3600,
        description="Window of the quantile in seconds (the PromQL rate range), 15..3600.",
    )
    min_request_rate: ApiFloat = Field(
        1.0,
        ge=0,
        le=1_000_000,
        description=(
            "Requests per second below which an observed percentile is not trusted: the "
            "controller holds instead of acting, but may park the fastest allowed variant for "
            "a burst of the last hour that the replicas in force would not hold (idle time "
            "spends no quality budget); after an hour below it, it restores the preferred "
            "variant and returns to replicas.min (at least one replica)."
        ),
    )


LABELS_NAMESPACE_MESSAGE = (
    "metrics.labels must not set 'namespace': the LatencySLO's own namespace is always used"
)
LABELS_LE_MESSAGE = "metrics.labels must not set 'le': it is the histogram's bucket label"
LABELS_NAME_MESSAGE = (
    f"metrics.labels keys must be Prometheus label names ({LABEL_NAME_PATTERN[1:-1]}, at most "
    f"{LABEL_NAME_MAX} characters, not starting with '__')"
)


class MetricsSpec(ApiModel):
    """Where the latency histogram lives in Prometheus."""

    # Structural CRD schemas have no patternProperties or propertyNames: map keys are checked by
    # a CEL rule (and by the validator below, with the same message).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    f"!has(self.labels) || self.labels.all(k, size(k) <= {LABEL_NAME_MAX} && "
                    f"k.matches('{LABEL_NAME_PATTERN}') && !k.startsWith('__'))",
                    LABELS_NAME_MESSAGE,
                    ".labels",
                ),
                cel_rule(
                    "!has(self.labels) || !('namespace' in self.labels)",
                    LABELS_NAMESPACE_MESSAGE,
                    ".labels",
                ),
                cel_rule(
                    "!has(self.labels) || !('le' in self.labels)", LABELS_LE_MESSAGE, ".labels"
                ),
            ]
        }
    )

    histogram: str = Field(
        "inference_request_duration_seconds",
        min_length=1,
        max_length=200,
        pattern=METRIC_NAME_PATTERN,
        description="Base name of the request-latency histogram (without _bucket), in seconds.",
    )
    labels: dict[str, Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict,
        max_length=LABELS_LIMIT,
        description=(
            "Extra exact-match label matchers added to every query (at most "
            f"{LABELS_LIMIT}; keys are Prometheus label names not starting with '__'). The "
            "namespace matcher is always the LatencySLO's own namespace and cannot be set "
            "here; 'le' cannot be set either."
        ),
    )

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if len(name) > LABEL_NAME_MAX or not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(LABELS_NAME_MESSAGE)
        if "namespace" in labels:
            raise ValueError(LABELS_NAMESPACE_MESSAGE)
        if "le" in labels:
            raise ValueError(LABELS_LE_MESSAGE)
        return labels


class ReplicaBounds(ApiModel):
    """Bounds on the Deployment's replicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule("self.min <= self.max", "replicas.min must be <= replicas.max", ".min"),
            ]
        }
    )

    min: ApiInt = Field(
        1,
        ge=0,
        le=1000,
        description=(
            "Fewest replicas, 0 <= min <= max. At 0 the Deployment can be scaled to zero, and "
            "with no pods there is no latency histogram and no request rate: nothing brings it "
            "back but a change of spec or traffic seen by other means. Keep it >= 1 to serve."
        ),
    )
    max: ApiInt = Field(
        8,
        ge=1,
        le=1000,
        description="Most replicas; also capped by the operator's hard replica cap.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.min > self.max:
            raise ValueError("replicas.min must be <= replicas.max")
        return self


class Batching(ApiModel):
    """Bounds on the dynamic-batching knobs pushed to the workers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "self.minWindowMs <= self.maxWindowMs",
                    "batching.minWindowMs must be <= batching.maxWindowMs",
                    ".minWindowMs",
                ),
            ]
        }
    )

    min_window_ms: ApiInt = Field(
        0,
        ge=0,
        le=MAX_WINDOW_MS,
        description="Smallest batch window in milliseconds (0 = no waiting).",
    )
    max_window_ms: ApiInt = Field(
        50,
        ge=0,
        le=MAX_WINDOW_MS,
        description="Largest batch window in milliseconds, min <= max <= 1000.",
    )
    max_batch_size: ApiInt = Field(
        32, ge=1, le=MAX_BATCH_SIZE, description="Most requests in one batch, 1..1024."
    )
    max_queue_wait_ms: Annotated[ApiInt, Ge(0), Le(MAX_QUEUE_WAIT_MS)] | None = Field(
        None,
        description=(
            "Longest wait in a worker's queue beyond the batch window, ms, before a request is "
            "answered 503 unrun (it would be late anyway); 0 = no limit. The operator keeps "
            "every worker at it; when omitted, each keeps its own (--max-queue-wait-ms)."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> Batching:
        if self.min_window_ms > self.max_window_ms:
            raise ValueError("batching.minWindowMs must be <= batching.maxWindowMs")
        return self


class QualityBudget(ApiModel):
    """How much time the service may spend serving off its preferred variant."""

    max_degraded_fraction: ApiFloat = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "Share of the window's time (0..1) in which a variant other than the preferred "
            "one may serve requests. Time in which no request completes is not counted."
        ),
    )
    window_minutes: ApiInt = Field(
        60, ge=1, le=10080, description="Length of the quality-budget window in minutes."
    )
    cost_share: ApiFloat = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Share (0..1) of the budget that may be spent to save replicas: on a smooth rise "
            "of the load, the best allowed variant below the preferred one that holds the aim "
            "serves on the replicas in force instead of more replicas of the preferred one, "
            "until that share is spent or the load turns bursty. The rest stays for bridging "
            "bursts. 0 spends the budget only on bridging."
        ),
    )


class Variants(ApiModel):
    """Which model variants the controller may serve."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "self.allowed.all(v, self.allowed.exists_one(w, w == v))",
                    "variants.allowed must not repeat a variant",
                    ".allowed",
                ),
                cel_rule(
                    "!has(self.preferred) || self.preferred in self.allowed",
                    "variants.preferred must be one of variants.allowed",
                    ".preferred",
                ),
            ]
        }
    )

    allowed: list[VariantName] = Field(
        default_factory=lambda: list(VARIANTS),
        min_length=1,
        max_length=len(VARIANTS),
        # atomic: the list is an ordered preference owned by one writer, not a set to merge
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
        description=(
            "Variants the controller may serve, best quality first (this order is the degrade "
            "order). A non-empty subset of full, quantized, distilled, without repeats."
        ),
    )
    preferred: VariantName | None = Field(
        None,
        description=(
            "The variant served whenever the SLO allows; must be in allowed. When omitted, the "
            "first entry of allowed. Bridges and savings use the variants after it in allowed; "
            "those before it are never served."
        ),
    )
    quality_budget: QualityBudget = Field(
        default_factory=QualityBudget,
        description="Limit on the time spent on a variant other than the preferred one.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Variants:
        if len(set(self.allowed)) != len(self.allowed):
            raise ValueError("variants.allowed must not repeat a variant")
        if self.preferred is not None and self.preferred not in self.allowed:
            raise ValueError("variants.preferred must be one of variants.allowed")
        return self

    @property
    def effective_preferred(self) -> str:
        """The preferred variant, defaulting to the best allowed one."""
        return self.preferred if self.preferred is not None else self.allowed[0]

    @property
    def ladder(self) -> list[str]:
        """The variants the controller serves: the preferred one, then the allowed ones
        below it in the degrade order. One above the preferred (better quality, slower) is
        never chosen: it would bridge nothing and spend the quality budget."""
        pref = self.effective_preferred
        return self.allowed[self.allowed.index(pref) :]


class Mode(StrEnum):
    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"
    PAUSED = "Paused"


class PolicySpec(ApiModel):
    """How the controller acts: mode, headroom, cadence and stability settings."""

    mode: Mode = Field(
        Mode.ENFORCE,
        description=(
            "Enforce applies decisions; Recommend decides and reports in status and Events but "
            "changes nothing; Paused holds everything."
        ),
    )
    headroom: ApiFloat = Field(
        0.85,
        gt=0,
        le=1,
        description=(
            "Aim at headroom * latencyMs, and hold latencyMs at the rate / headroom, so that "
            "noise and a rise do not breach the target."
        ),
    )
    interval_seconds: ApiInt = Field(
        15, ge=5, le=300, description="Seconds between two reconciliations, 5..300."
    )
    scale_up_cooldown_seconds: ApiInt = Field(
        30, ge=0, le=3600, description="Least seconds between two scale-ups."
    )
    scale_down_stabilization_seconds: ApiInt = Field(
        300,
        ge=0,
        le=3600,
        description=(
            "A scale-down happens only if fewer replicas would have sufficed during this whole "
            "window (like the HPA's stabilization window); one replica per step."
        ),
    )
    variant_min_dwell_seconds: ApiInt = Field(
        120,
        ge=0,
        le=3600,
        description=(
            "Least seconds on a variant before it is changed again, except to bridge a "
            "measured breach (as an HPA never delays a scale-up): restoring the preferred "
            "variant and degrading on a prediction wait for it."
        ),
    )


class LatencySLOSpec(ApiModel):
    """Desired state: hold the latency objective of targetRef at the lowest cost."""

    target_ref: TargetRef = Field(..., description="The inference Deployment to steer.")
    objective: Objective = Field(..., description="The latency objective to hold.")
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec, description="Where the latency histogram lives."
    )
    replicas: ReplicaBounds = Field(
        default_factory=ReplicaBounds, description="Bounds on the replica count."
    )
    batching: Batching = Field(
        default_factory=Batching, description="Bounds on the dynamic-batching knobs."
    )
    variants: Variants = Field(
        default_factory=Variants, description="Which model variants may be served."
    )
    policy: PolicySpec = Field(
        default_factory=PolicySpec, description="How and how often the controller acts."
    )

    @property
    def target_latency_ms(self) -> float:
        return self.objective.latency_ms

    @property
    def aim_latency_ms(self) -> float:
        """The latency the controller aims at: headroom * target."""
        return self.policy.headroom * self.objective.latency_ms

    @property
    def quantile(self) -> float:
        """The objective's percentile as a quantile in [0, 1)."""
        return self.objective.percentile / 100.0


class ObjectMeta(BaseModel):
    """The part of metadata that validation looks at; the rest passes through."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)
    namespace: str | None = Field(None, max_length=63, pattern=DNS1123_LABEL_PATTERN)
    generate_name: str | None = Field(None, alias="generateName", max_length=253)
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    @model_validator(mode="after")
    def _named(self) -> ObjectMeta:
        if not self.name and not self.generate_name:
            raise ValueError("metadata.name (or metadata.generateName) is required")
        return self


class LatencySLO(ApiModel):
    """A whole LatencySLO object, as `kubectl apply` would send it."""

    api_version: Literal["latencyslo.io/v1alpha1"] = Field(
        ..., description="latencyslo.io/v1alpha1"
    )
    kind: Literal["LatencySLO"] = Field(..., description="LatencySLO")
    metadata: ObjectMeta
    spec: LatencySLOSpec
    status: LatencySLOStatus | None = None


def parse_spec(raw: dict[str, Any]) -> LatencySLOSpec:
    """Parse a `spec` mapping as it comes from the API server (camelCase)."""
    return LatencySLOSpec.model_validate(raw)
