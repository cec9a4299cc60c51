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

import re
import types
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

GROUP = "latencyslo.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LatencySLO"
PLURAL = "latencyslos"
SINGULAR = "latencyslo"
SHORT_NAMES = ("lslo",)
CATEGORIES = ("all", "latencyslo")

VARIANTS: tuple[str, ...] = ("full", "quantized", "distilled")
"""Every variant name the API knows, best quality first (the default degrade order)."""

VariantName = Literal["full", "quantized", "distilled"]

HISTORY_LIMIT = 20

# Prometheus naming rules: https://prometheus.io/docs/concepts/data_model/
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""A `format: date-time` string as the API server accepts it in status."""

LABELS_LIMIT = 16
LABEL_NAME_MAX = 100
CONDITIONS_LIMIT = 16


# ---------------------------------------------------------------------- value types (wire)


def _api_int(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _api_float(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _api_bool(value: Any) -> Any:
    if isinstance(value, str | bytes | int | float) and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be a valid boolean")
    return value


_RFC3339 = re.compile(RFC3339_PATTERN)
_LABEL_NAME = re.compile(LABEL_NAME_PATTERN)


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise PydanticCustomError(
        "datetime_type", "Input should be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
    )


ApiInt = Annotated[int, BeforeValidator(_api_int)]
"""An integer as the API server reads it: no strings, no booleans; 2.0 is 2."""
ApiFloat = Annotated[float, BeforeValidator(_api_float)]
"""A number as the API server reads it: no strings, no booleans."""
ApiBool = Annotated[bool, BeforeValidator(_api_bool)]
"""A boolean as the API server reads it: true or false only."""
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""A `format: date-time` field: an RFC 3339 string on the wire."""


def _admits_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _admits_none(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_admits_none(arg) for arg in get_args(annotation))
    if origin is Literal:
        return None in get_args(annotation)
    return False


class _Model(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected, assignment validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _prune_nulls(cls, data: Any) -> Any:
        """Drop `null` where the field is not nullable, as the API server does before defaulting."""
        if not isinstance(data, dict):
            return data
        pruned = dict(data)
        for name, field in cls.model_fields.items():
            for key in {name, field.alias or name}:
                if key not in pruned:
                    continue
                value = pruned[key]
                if value is None and not _admits_none(field.annotation):
                    del pruned[key]
                elif isinstance(value, dict) and get_origin(field.annotation) is dict:
                    value_type = get_args(field.annotation)[1]
                    if not _admits_none(value_type):
                        pruned[key] = {k: v for k, v in value.items() if v is not None}
        return pruned


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# --------------------------------------------------------------------------------------- spec


TARGET_KIND_MESSAGE = "targetRef.kind must be Deployment: only Deployments can be steered"
TARGET_API_VERSION_MESSAGE = "targetRef.apiVersion must be apps/v1"


class TargetRef(_Model):
    """The inference Deployment this LatencySLO steers (same namespace as the LatencySLO)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self == oldSelf", "targetRef is immutable; delete and recreate the LatencySLO"
                ),
                _cel("self.kind == 'Deployment'", TARGET_KIND_MESSAGE, ".kind"),
                _cel("self.apiVersion == 'apps/v1'", TARGET_API_VERSION_MESSAGE, ".apiVersion"),
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


class Objective(_Model):
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
            "controller holds instead of acting."
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


class MetricsSpec(_Model):
    """Where the latency histogram lives in Prometheus."""

    # Structural CRD schemas have no patternProperties or propertyNames: map keys are checked by
    # a CEL rule (and by the validator below, with the same message).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"!has(self.labels) || self.labels.all(k, size(k) <= {LABEL_NAME_MAX} && "
                    f"k.matches('{LABEL_NAME_PATTERN}') && !k.startsWith('__'))",
                    LABELS_NAME_MESSAGE,
                    ".labels",
                ),
                _cel(
                    "!has(self.labels) || !('namespace' in self.labels)",
                    LABELS_NAMESPACE_MESSAGE,
                    ".labels",
                ),
                _cel("!has(self.labels) || !('le' in self.labels)", LABELS_LE_MESSAGE, ".labels"),
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
            if len(name) > LABEL_NAME_MAX or not _LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(LABELS_NAME_MESSAGE)
        if "namespace" in labels:
            raise ValueError(LABELS_NAMESPACE_MESSAGE)
        if "le" in labels:
            raise ValueError(LABELS_LE_MESSAGE)
        return labels


class ReplicaBounds(_Model):
    """Bounds on the Deployment's replicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self.min <= self.max", "replicas.min must be <= replicas.max", ".min"),
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


class Batching(_Model):
    """Bounds on the dynamic-batching knobs pushed to the workers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minWindowMs <= self.maxWindowMs",
                    "batching.minWindowMs must be <= batching.maxWindowMs",
                    ".minWindowMs",
                ),
            ]
        }
    )

    min_window_ms: ApiInt = Field(
        0, ge=0, le=1000, description="Smallest batch window in milliseconds (0 = no waiting)."
    )
    max_window_ms: ApiInt = Field(
        50, ge=0, le=1000, description="Largest batch window in milliseconds, min <= max <= 1000."
    )
    max_batch_size: ApiInt = Field(
        32, ge=1, le=1024, description="Most requests in one batch, 1..1024."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Batching:
        if self.min_window_ms > self.max_window_ms:
            raise ValueError("batching.minWindowMs must be <= batching.maxWindowMs")
        return self


class QualityBudget(_Model):
    """How much time the service may spend off its preferred variant."""

    max_degraded_fraction: ApiFloat = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of time (0..1) allowed off the preferred variant within the window.",
    )
    window_minutes: ApiInt = Field(
        60, ge=1, le=10080, description="Length of the quality-budget window in minutes."
    )


class Variants(_Model):
    """Which model variants the controller may serve."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.allowed.all(v, self.allowed.exists_one(w, w == v))",
                    "variants.allowed must not repeat a variant",
                    ".allowed",
                ),
                _cel(
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
            "first entry of allowed."
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


class Mode(StrEnum):
    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"
    PAUSED = "Paused"


class PolicySpec(_Model):
    """How the controller acts: mode, headroom, cadence and stability settings."""

    mode: Mode = Field(
        Mode.ENFORCE,
        description=(
            "Enforce applies decisions; Recommend decides and reports in status and Events but "
            "changes nothing; Paused holds everything."
        ),
    )
    headroom: ApiFloat = Field(
        0.8,
        gt=0,
        le=1,
        description="Aim at headroom * latencyMs so that noise does not breach the target.",
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
        description="Least seconds on a variant before it is changed again.",
    )


class LatencySLOSpec(_Model):
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


# ------------------------------------------------------------------------------------- status


class Action(StrEnum):
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    WIDEN_WINDOW = "WidenWindow"
    NARROW_WINDOW = "NarrowWindow"
    DEGRADE_VARIANT = "DegradeVariant"
    RESTORE_VARIANT = "RestoreVariant"
    HOLD = "Hold"


class ObservedStatus(_Model):
    """What the last observation showed."""

    p99_ms: ApiFloat | None = Field(
        None, description="Observed latency at the objective's percentile, ms; null = no data."
    )
    request_rate: ApiFloat | None = Field(None, description="Observed requests per second.")
    samples: ApiFloat | None = Field(None, description="Requests counted in the window.")
    sampled_at: Timestamp | None = Field(None, description="When the observation was taken.")


class CurrentStatus(_Model):
    """The configuration in force."""

    replicas: ApiInt | None = Field(None, description="Desired replicas of the Deployment.")
    ready_replicas: ApiInt | None = Field(None, description="Ready replicas of the Deployment.")
    batch_window_ms: ApiInt | None = Field(None, description="Batch window pushed to workers, ms.")
    max_batch_size: ApiInt | None = Field(None, description="Max batch size pushed to workers.")
    variant: VariantName | None = Field(None, description="Active model variant.")


class ConfigSnapshot(_Model):
    """A configuration as recorded in a decision."""

    replicas: ApiInt = Field(..., description="Replicas.")
    batch_window_ms: ApiInt = Field(..., description="Batch window, ms.")
    max_batch_size: ApiInt | None = Field(None, description="Max batch size.")
    variant: VariantName = Field(..., description="Model variant.")


class DecisionRecord(_Model):
    """One decision of the controller, with its reason."""

    time: Timestamp = Field(..., description="When the decision was taken.")
    action: Action = Field(..., description="The main action of the decision.")
    from_: ConfigSnapshot | None = Field(
        None, alias="from", description="Configuration before the decision."
    )
    to: ConfigSnapshot | None = Field(None, description="Configuration chosen.")
    predicted_p99_ms: ApiFloat | None = Field(
        None, description="Predicted latency at the objective's percentile for `to`, ms."
    )
    reason: str = Field(..., max_length=1024, description="Why, in words.")
    applied: ApiBool = Field(..., description="Whether it was applied (false in Recommend mode).")


class QualityBudgetStatus(_Model):
    """How much of the quality budget is spent."""

    degraded_fraction: ApiFloat = Field(
        0.0, ge=0, le=1, description="Share of the budget window spent off the preferred variant."
    )


class AttainmentStatus(_Model):
    """How often the SLO was met."""

    # Bounds of an optional value go inside the union, before the validator: elsewhere
    # pydantic's JSON Schema renders them as raw `ge`/`le` keys instead of minimum/maximum.
    last_hour: Annotated[float, Field(ge=0, le=1), BeforeValidator(_api_float)] | None = Field(
        None, description="Share of intervals in the last hour that met the SLO."
    )


class ConditionType(StrEnum):
    READY = "Ready"
    SLO_MET = "SLOMet"
    METRICS_AVAILABLE = "MetricsAvailable"
    QUALITY_DEGRADED = "QualityDegraded"
    CONFLICT = "Conflict"


class Condition(_Model):
    """A metav1.Condition."""

    type: str = Field(..., max_length=316, description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(..., description="True, False, Unknown.")
    reason: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason.",
    )
    message: str = Field("", max_length=32768, description="Human-readable message.")
    last_transition_time: Timestamp = Field(..., description="When status last changed.")
    observed_generation: Annotated[int, Field(ge=0), BeforeValidator(_api_int)] | None = Field(
        None, description="metadata.generation the condition was set for."
    )


class LatencySLOStatus(_Model):
    """Observed state, written by the operator."""

    observed_generation: ApiInt | None = Field(None, description="Last generation reconciled.")
    observed: ObservedStatus | None = Field(None, description="The last observation.")
    current: CurrentStatus | None = Field(None, description="The configuration in force.")
    last_decision: DecisionRecord | None = Field(None, description="The last decision.")
    pending: DecisionRecord | None = Field(
        None,
        description=(
            "A change recorded before it is applied; a restarted operator finishes it instead "
            "of deciding twice. Cleared once applied."
        ),
    )
    history: list[DecisionRecord] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
        description=f"The last {HISTORY_LIMIT} decisions that changed something, newest first.",
    )
    quality_budget: QualityBudgetStatus | None = Field(None, description="Quality budget spent.")
    attainment: AttainmentStatus | None = Field(None, description="SLO attainment.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=CONDITIONS_LIMIT,
        # metav1.Condition convention: a list keyed by type (one entry per type; server-side
        # apply merges by type).
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description=(
            "Conditions in metav1.Condition form, one per type: Ready, SLOMet, MetricsAvailable, "
            "QualityDegraded, Conflict."
        ),
    )

    @field_validator("conditions")
    @classmethod
    def _one_per_type(cls, conditions: list[Condition]) -> list[Condition]:
        types_seen = [condition.type for condition in conditions]
        if len(set(types_seen)) != len(types_seen):
            raise ValueError("status.conditions must not repeat a type")
        return conditions


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


class LatencySLO(_Model):
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
