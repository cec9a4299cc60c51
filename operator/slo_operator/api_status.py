"""The status of a LatencySLO (written by the operator only) as pydantic models: what was
observed, the configuration in force, the decisions with their reasons, the quality budget,
attainment and conditions. `spec` re-exports every name."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from slo_operator.api_types import (
    CONDITIONS_LIMIT,
    HISTORY_LIMIT,
    ApiBool,
    ApiFloat,
    ApiInt,
    ApiModel,
    Timestamp,
    VariantName,
    api_float,
    api_int,
)


class Action(StrEnum):
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    WIDEN_WINDOW = "WidenWindow"
    NARROW_WINDOW = "NarrowWindow"
    DEGRADE_VARIANT = "DegradeVariant"
    RESTORE_VARIANT = "RestoreVariant"
    HOLD = "Hold"


class ObservedStatus(ApiModel):
    """What the last observation showed."""

    latency_ms: ApiFloat | None = Field(
        None, description="Observed latency at `percentile`, ms; null = no data."
    )
    percentile: ApiFloat | None = Field(
        None,
        description="The percentile `latencyMs` is measured at: the objective's (99 means p99).",
    )
    request_rate: ApiFloat | None = Field(None, description="Observed requests per second.")
    samples: ApiFloat | None = Field(None, description="Requests counted in the window.")
    sampled_at: Timestamp | None = Field(None, description="When the observation was taken.")


class CurrentStatus(ApiModel):
    """The configuration in force."""

    replicas: ApiInt | None = Field(None, description="Desired replicas of the Deployment.")
    ready_replicas: ApiInt | None = Field(None, description="Ready replicas of the Deployment.")
    batch_window_ms: ApiInt | None = Field(None, description="Batch window pushed to workers, ms.")
    max_batch_size: ApiInt | None = Field(None, description="Max batch size pushed to workers.")
    max_queue_wait_ms: ApiInt | None = Field(
        None,
        description="Queue wait limit pushed to workers, ms (0: none); absent: the workers' own.",
    )
    variant: VariantName | None = Field(None, description="Active model variant.")


class ConfigSnapshot(ApiModel):
    """A configuration as recorded in a decision."""

    replicas: ApiInt = Field(..., description="Replicas.")
    batch_window_ms: ApiInt = Field(..., description="Batch window, ms.")
    max_batch_size: ApiInt | None = Field(None, description="Max batch size.")
    max_queue_wait_ms: ApiInt | None = Field(
        None, description="Queue wait limit, ms (0: none); absent: the workers' own."
    )
    variant: VariantName = Field(..., description="Model variant.")


class DecisionRecord(ApiModel):
    """One decision of the controller, with its reason."""

    time: Timestamp = Field(..., description="When the decision was taken.")
    action: Action = Field(..., description="The main action of the decision.")
    from_: ConfigSnapshot | None = Field(
        None, alias="from", description="Configuration before the decision."
    )
    to: ConfigSnapshot | None = Field(None, description="Configuration chosen.")
    predicted_latency_ms: ApiFloat | None = Field(
        None, description="Predicted latency at the objective's percentile for `to`, ms."
    )
    reason: str = Field(..., max_length=1024, description="Why, in words.")
    applied: ApiBool = Field(..., description="Whether it was applied (false in Recommend mode).")


class QualityBudgetStatus(ApiModel):
    """How much of the quality budget is spent."""

    degraded_fraction: ApiFloat = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the budget window spent serving off the preferred variant.",
    )


class AttainmentStatus(ApiModel):
    """How often the SLO was met."""

    # Bounds of an optional value go inside the union, before the validator: elsewhere
    # pydantic's JSON Schema renders them as raw `ge`/`le` keys instead of minimum/maximum.
    last_hour: Annotated[float, Field(ge=0, le=1), BeforeValidator(api_float)] | None = Field(
        None, description="Share of intervals in the last hour that met the SLO."
    )


class ConditionType(StrEnum):
    READY = "Ready"
    SLO_MET = "SLOMet"
    METRICS_AVAILABLE = "MetricsAvailable"
    QUALITY_DEGRADED = "QualityDegraded"
    CONFLICT = "Conflict"


class Condition(ApiModel):
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
    observed_generation: Annotated[int, Field(ge=0), BeforeValidator(api_int)] | None = Field(
        None, description="metadata.generation the condition was set for."
    )


class LatencySLOStatus(ApiModel):
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
