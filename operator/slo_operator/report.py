"""The report of one control step (pure): facts in, the LatencySLO's status and Events out.

`build_report(facts)` fills the status (docs/crd.md): observed figures, the configuration in force,
the decision record and history, the quality budget and attainment, the five conditions; and
the Events of condition transitions (SLO breached / recovered, metrics unavailable, conflict)
before the Events of the change itself. `invalid_spec_status` is the report of a spec that does
not validate. Nothing here performs I/O or reads a clock; the loop gathers the facts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from slo_operator import status as st
from slo_operator.conflicts import Conflict
from slo_operator.spec import (
    AttainmentStatus,
    ConditionType,
    CurrentStatus,
    DecisionRecord,
    LatencySLOSpec,
    LatencySLOStatus,
    Mode,
    ObservedStatus,
    QualityBudgetStatus,
)
from slo_operator.types import Fault, Observation, RuntimeConfig


@dataclass(frozen=True, slots=True)
class ReadyOverride:
    """The Ready condition when the step says more than "reconciling" (status, reason, why)."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything one step found out, as the report needs it."""

    spec: LatencySLOSpec
    previous: LatencySLOStatus
    now: float
    generation: int | None
    observation: Observation | None
    in_force: RuntimeConfig | None
    ready_replicas: int
    conflict: Conflict | None
    ready: ReadyOverride | None
    record: DecisionRecord | None
    """This step's decision (None: no decision was taken)."""
    history: DecisionRecord | None
    """The entry this step adds to the history (a change made, or a new recommendation)."""
    change_events: tuple[st.Event, ...]
    degraded_fraction: float
    attainment: float | None
    breached: bool
    """Whether an SLOBreached Event is outstanding (from the memory)."""
    pending: DecisionRecord | None = None
    """A recorded change still to be finished (kept while the target cannot be read)."""


@dataclass(frozen=True, slots=True)
class Report:
    status: LatencySLOStatus
    events: tuple[st.Event, ...]
    breached: bool
    """Whether an SLOBreached Event is outstanding after this step."""


def build_report(facts: Facts) -> Report:
    """The status and Events of one step (see module docs)."""
    # shallow: every field below is replaced whole (conditions and history by new lists),
    # never changed in place, so the previous status' parts can be shared
    status = facts.previous.model_copy()
    status.observed_generation = facts.generation
    status.pending = facts.pending
    if facts.record is not None:
        status.last_decision = _same_or_new(facts.previous.last_decision, facts.record)
    if facts.history is not None:
        status.history = st.push_history(status.history, facts.history)
    _fill(status, facts)
    _conditions(status, facts)
    events, breached = _transitions(facts, status)
    return Report(status, tuple(events) + facts.change_events, breached)


def _same_or_new(previous: DecisionRecord | None, record: DecisionRecord) -> DecisionRecord:
    """A decision that repeats the last one (same action, configurations, reason, prediction
    to 0.1 ms) keeps the record of when it was first taken: a steady hold does not rewrite
    the status."""
    if previous is None:
        return record

    def key(r: DecisionRecord) -> DecisionRecord:
        p = r.predicted_latency_ms
        return r.model_copy(
            update={"time": None, "predicted_latency_ms": round(p, 1) if p is not None else None}
        )

    return previous if key(previous) == key(record) else record


def _fill(status: LatencySLOStatus, facts: Facts) -> None:
    obs = facts.observation
    if obs is not None:
        p = obs.latency_ms if obs.has_latency else None
        status.observed = ObservedStatus(
            latency_ms=round(p, 3) if p is not None else None,
            percentile=facts.spec.objective.percentile,
            request_rate=_rounded(obs.request_rate),
            samples=_rounded(obs.samples),
            sampled_at=st.timestamp(obs.at),
        )
    if facts.in_force is not None:
        cfg = facts.in_force
        status.current = CurrentStatus(
            replicas=cfg.replicas,
            ready_replicas=facts.ready_replicas,
            batch_window_ms=cfg.batch_window_ms,
            max_batch_size=cfg.max_batch_size,
            max_queue_wait_ms=cfg.max_queue_wait_ms,
            variant=cfg.variant,  # type: ignore[arg-type]
        )
    status.quality_budget = QualityBudgetStatus(degraded_fraction=round(facts.degraded_fraction, 4))
    attained = facts.attainment
    status.attainment = AttainmentStatus(
        last_hour=round(attained, 4) if attained is not None else None
    )


def _conditions(status: LatencySLOStatus, facts: Facts) -> None:
    spec = facts.spec

    def put(type_: ConditionType, value: str, reason: str, message: str) -> None:
        status.conditions = st.set_condition(
            status.conditions,
            type_,
            value,  # type: ignore[arg-type]
            reason,
            message,
            now=facts.now,
            generation=facts.generation,
        )

    mode = spec.policy.mode
    if facts.ready is not None:
        put(ConditionType.READY, facts.ready.status, facts.ready.reason, facts.ready.message)
    else:
        last = status.last_decision
        summary = f"{last.action.value}: {last.reason}" if last is not None else "no decision"
        reason = {
            Mode.ENFORCE: "Reconciling",
            Mode.RECOMMEND: "Recommending",
            Mode.PAUSED: "Paused",
        }[mode]
        put(ConditionType.READY, "True", reason, f"{mode.value} mode; {summary}")

    if facts.conflict is not None:
        put(ConditionType.CONFLICT, "True", facts.conflict.reason, facts.conflict.message)
    else:
        put(ConditionType.CONFLICT, "False", "NoConflict", "no other controller scales the target")

    obs = facts.observation
    if obs is not None:
        _metrics_conditions(put, spec, obs)

    if facts.in_force is not None:
        preferred = spec.variants.effective_preferred
        budget = spec.variants.quality_budget
        spent = status.quality_budget.degraded_fraction if status.quality_budget else 0.0
        usage = (
            f"{spent:.0%} of the last {budget.window_minutes} minutes off {preferred} "
            f"(budget {budget.max_degraded_fraction:.0%})"
        )
        if facts.in_force.variant != preferred:
            put(
                ConditionType.QUALITY_DEGRADED,
                "True",
                "DegradedVariant",
                f"serving {facts.in_force.variant} instead of {preferred}; {usage}",
            )
        else:
            put(
                ConditionType.QUALITY_DEGRADED,
                "False",
                "PreferredVariant",
                f"serving {preferred}; {usage}",
            )


def _metrics_conditions(put: Any, spec: LatencySLOSpec, obs: Observation) -> None:
    target = spec.objective.latency_ms
    pct = spec.objective.percentile
    if obs.error is not None or not obs.has_latency:
        error = obs.error or "no latency data"
        reason = (obs.fault or Fault.NO_DATA).value
        put(ConditionType.METRICS_AVAILABLE, "False", reason, error)
        put(ConditionType.SLO_MET, "Unknown", "NoData", f"no usable latency data: {error}")
        return
    age = obs.age_seconds
    aged = f", newest sample {age:.0f}s old" if age is not None else ""
    put(
        ConditionType.METRICS_AVAILABLE,
        "True",
        "MetricsFresh",
        f"p{pct:g} from {_count(obs.samples)} requests in {spec.objective.window_seconds}s{aged}",
    )
    rate = obs.request_rate or 0.0
    p = obs.latency_ms or 0.0
    if rate < spec.objective.min_request_rate:
        put(
            ConditionType.SLO_MET,
            "Unknown",
            "LowRequestRate",
            f"{rate:.3g} req/s < minRequestRate {spec.objective.min_request_rate:g}: "
            f"p{pct:g} {p:.1f}ms is not trusted",
        )
    elif p <= target:
        put(
            ConditionType.SLO_MET,
            "True",
            "WithinTarget",
            f"p{pct:g} {p:.1f}ms <= {target:g}ms at {rate:.3g} req/s",
        )
    else:
        put(
            ConditionType.SLO_MET,
            "False",
            "Breached",
            f"p{pct:g} {p:.1f}ms > {target:g}ms at {rate:.3g} req/s",
        )


def _transitions(facts: Facts, status: LatencySLOStatus) -> tuple[list[st.Event], bool]:
    events: list[st.Event] = []
    before, after = facts.previous.conditions, status.conditions
    obs = facts.observation
    if facts.conflict is not None and st.became(before, after, ConditionType.CONFLICT, "True"):
        events.append(st.conflict_event(facts.conflict.message))
    if obs is not None and st.became(before, after, ConditionType.METRICS_AVAILABLE, "False"):
        events.append(st.metrics_unavailable_event(obs.error or "no latency data", facts.in_force))
    breached = facts.breached
    slo = st.condition_status(after, ConditionType.SLO_MET)
    if obs is not None and obs.latency_ms is not None:
        spec = facts.spec
        args = (
            obs.latency_ms,
            spec.objective.latency_ms,
            obs.request_rate,
            spec.objective.percentile,
        )
        if slo == "False" and not breached:
            breached = True
            events.append(st.slo_breached_event(*args))
        elif slo == "True" and breached:
            breached = False
            events.append(st.slo_recovered_event(*args))
    return events, breached


def invalid_spec_status(
    previous: LatencySLOStatus | Mapping[str, Any] | None,
    error: ValidationError,
    *,
    now: float,
    generation: int | None,
) -> LatencySLOStatus:
    """The status for a spec that does not validate: Ready=False (InvalidSpec), rest kept."""
    if isinstance(previous, LatencySLOStatus):
        status = previous.model_copy(deep=True)
    else:
        try:
            status = LatencySLOStatus.model_validate(dict(previous or {}))
        except ValidationError:
            status = LatencySLOStatus()
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
    )
    status.observed_generation = generation
    status.conditions = st.set_condition(
        status.conditions,
        ConditionType.READY,
        "False",
        "InvalidSpec",
        f"spec rejected, nothing done: {problems}",
        now=now,
        generation=generation,
    )
    return status


def _rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _count(value: float | None) -> str:
    return "?" if value is None or not math.isfinite(value) else f"{value:.0f}"
