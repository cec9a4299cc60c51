"""Pure builders for what the operator reports: conditions, decision records, Events, ledgers.

No I/O here. The control loop (`slo_operator.loop`) calls these to turn one step into the
LatencySLO's status (docs/crd.md) and the Events to post; the unit tests call them directly.

- Conditions follow metav1.Condition: `lastTransitionTime` changes only when `status` changes;
  `reason`, `message` and `observedGeneration` are refreshed every step.
- Event reasons are exactly those of docs/crd.md, Events (`EventReason`); every message
  names the numbers.
- `TimeShare` is a bounded sliding-window ledger (at most `buckets` entries whatever the
  window), JSON-serialisable so it survives operator restarts; it backs `attainment.lastHour`
  and `qualityBudget.degradedFraction`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from slo_operator.spec import (
    HISTORY_LIMIT,
    VARIANTS,
    Action,
    Condition,
    ConditionType,
    ConfigSnapshot,
    DecisionRecord,
)
from slo_operator.types import Decision, RuntimeConfig

REASON_LIMIT = 1024
CONDITION_ORDER: tuple[ConditionType, ...] = (
    ConditionType.READY,
    ConditionType.SLO_MET,
    ConditionType.METRICS_AVAILABLE,
    ConditionType.QUALITY_DEGRADED,
    ConditionType.CONFLICT,
)


class EventReason(StrEnum):
    """Reasons of the Events posted on a LatencySLO (docs/crd.md)."""

    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    BATCH_WINDOW_CHANGED = "BatchWindowChanged"
    VARIANT_DEGRADED = "VariantDegraded"
    VARIANT_RESTORED = "VariantRestored"
    RECOMMENDED = "Recommended"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    SLO_BREACHED = "SLOBreached"
    SLO_RECOVERED = "SLORecovered"
    CONFLICT_DETECTED = "ConflictDetected"


EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class Event:
    """One Kubernetes Event to post on the LatencySLO."""

    type: EventType
    reason: EventReason
    message: str


def timestamp(now: float) -> dt.datetime:
    """Seconds since the epoch as an aware UTC datetime, whole seconds (metav1.Time)."""
    return dt.datetime.fromtimestamp(math.floor(now), tz=dt.UTC)


def clip(text: str, limit: int = REASON_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------ conditions


def set_condition(
    conditions: Sequence[Condition],
    type_: ConditionType | str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    *,
    now: float,
    generation: int | None,
) -> list[Condition]:
    """Conditions with `type_` set; its transition time moves only when `status` changes."""
    previous = next((c for c in conditions if c.type == str(type_)), None)
    changed = previous is None or previous.status != status
    condition = Condition(
        type=str(type_),
        status=status,
        reason=reason,
        message=clip(message, 32768),
        last_transition_time=timestamp(now) if changed else previous.last_transition_time,
        observed_generation=generation,
    )
    result = [c for c in conditions if c.type != str(type_)] + [condition]
    order = {str(t): i for i, t in enumerate(CONDITION_ORDER)}
    return sorted(result, key=lambda c: (order.get(c.type, len(order)), c.type))


def condition_status(conditions: Iterable[Condition], type_: ConditionType | str) -> str | None:
    """The status ("True"/"False"/"Unknown") of a condition, None when absent."""
    for condition in conditions:
        if condition.type == str(type_):
            return condition.status
    return None


def became(
    before: Iterable[Condition],
    after: Iterable[Condition],
    type_: ConditionType | str,
    status: str,
) -> bool:
    """True when the condition has `status` now and did not before (or was absent)."""
    return condition_status(after, type_) == status and condition_status(before, type_) != status


# ------------------------------------------------------------------------------- decisions


def snapshot(config: RuntimeConfig) -> ConfigSnapshot:
    return ConfigSnapshot(
        replicas=config.replicas,
        batch_window_ms=config.batch_window_ms,
        max_batch_size=config.max_batch_size,
        max_queue_wait_ms=config.max_queue_wait_ms,
        variant=config.variant,  # type: ignore[arg-type]
    )


def config_of(snap: ConfigSnapshot, fallback_batch: int) -> RuntimeConfig:
    return RuntimeConfig(
        replicas=snap.replicas,
        batch_window_ms=snap.batch_window_ms,
        max_batch_size=snap.max_batch_size if snap.max_batch_size is not None else fallback_batch,
        max_queue_wait_ms=snap.max_queue_wait_ms,
        variant=snap.variant,
    )


def decision_record(
    decision: Decision,
    current: RuntimeConfig,
    *,
    now: float,
    applied: bool,
    reason: str | None = None,
) -> DecisionRecord:
    return DecisionRecord(
        time=timestamp(now),
        action=decision.action,
        from_=snapshot(current),
        to=snapshot(decision.target),
        predicted_latency_ms=(
            round(decision.predicted_latency_ms, 3)
            if decision.predicted_latency_ms is not None
            and math.isfinite(decision.predicted_latency_ms)
            else None
        ),
        reason=clip(reason if reason is not None else decision.reason),
        applied=applied,
    )


def push_history(
    history: Sequence[DecisionRecord], record: DecisionRecord, limit: int = HISTORY_LIMIT
) -> list[DecisionRecord]:
    """Newest first, at most `limit` entries."""
    return [record, *history][:limit]


def same_change(a: DecisionRecord | None, b: DecisionRecord | None) -> bool:
    """Two records that propose the same move (from and to equal)."""
    if a is None or b is None:
        return False
    return a.from_ == b.from_ and a.to == b.to


# ---------------------------------------------------------------------------------- events


def _variant_rank(variant: str, order: Sequence[str]) -> int:
    ranking = list(order) + [v for v in VARIANTS if v not in order]
    return ranking.index(variant) if variant in ranking else len(ranking)


def describe_change(before: RuntimeConfig, after: RuntimeConfig) -> str:
    """`replicas 2->4, window 8->12ms, variant full->quantized` (only what moves)."""
    parts = []
    if before.replicas != after.replicas:
        parts.append(f"replicas {before.replicas}->{after.replicas}")
    if before.batch_window_ms != after.batch_window_ms:
        parts.append(f"batch window {before.batch_window_ms}->{after.batch_window_ms}ms")
    if before.max_batch_size != after.max_batch_size:
        parts.append(f"max batch size {before.max_batch_size}->{after.max_batch_size}")
    if after.sets_queue_wait(before):
        parts.append(f"queue wait limit {before.queue_wait_words()}->{after.queue_wait_words()}")
    if before.variant != after.variant:
        parts.append(f"variant {before.variant}->{after.variant}")
    return ", ".join(parts) or "no change"


def change_events(
    before: RuntimeConfig,
    after: RuntimeConfig,
    reason: str,
    *,
    deployment: str,
    variant_order: Sequence[str] = VARIANTS,
) -> list[Event]:
    """One Event per knob that moved, in the order replicas, batching, variant."""
    events: list[Event] = []
    why = f": {reason}" if reason else ""
    if after.replicas > before.replicas:
        events.append(
            Event(
                "Normal",
                EventReason.SCALED_UP,
                clip(
                    f"Scaled {deployment} from {before.replicas} to {after.replicas} replicas{why}"
                ),
            )
        )
    elif after.replicas < before.replicas:
        events.append(
            Event(
                "Normal",
                EventReason.SCALED_DOWN,
                clip(
                    f"Scaled {deployment} from {before.replicas} to {after.replicas} replicas{why}"
                ),
            )
        )
    limit = after.sets_queue_wait(before)
    if limit or (before.batch_window_ms, before.max_batch_size) != (
        after.batch_window_ms,
        after.max_batch_size,
    ):
        wait = (
            f", queue wait limit {before.queue_wait_words()} -> {after.queue_wait_words()}"
            if limit
            else ""
        )
        events.append(
            Event(
                "Normal",
                EventReason.BATCH_WINDOW_CHANGED,
                clip(
                    f"Batch window {before.batch_window_ms}ms -> {after.batch_window_ms}ms, "
                    f"max batch size {before.max_batch_size} -> {after.max_batch_size}"
                    f"{wait}{why}"
                ),
            )
        )
    if before.variant != after.variant:
        worse = _variant_rank(after.variant, variant_order) > _variant_rank(
            before.variant, variant_order
        )
        events.append(
            Event(
                "Normal",
                EventReason.VARIANT_DEGRADED if worse else EventReason.VARIANT_RESTORED,
                clip(f"Variant {before.variant} -> {after.variant}{why}"),
            )
        )
    return events


def recommended_event(before: RuntimeConfig, after: RuntimeConfig, reason: str) -> Event:
    return Event(
        "Normal",
        EventReason.RECOMMENDED,
        clip(
            f"Recommend mode, nothing changed: would set {describe_change(before, after)}: {reason}"
        ),
    )


def metrics_unavailable_event(error: str, current: RuntimeConfig | None) -> Event:
    holding = (
        f"; holding replicas={current.replicas}, window={current.batch_window_ms}ms, "
        f"variant={current.variant}"
        if current is not None
        else "; holding the current configuration"
    )
    return Event("Warning", EventReason.METRICS_UNAVAILABLE, clip(f"{error}{holding}"))


def slo_breached_event(p_ms: float, target_ms: float, rate: float | None, pct: float) -> Event:
    at = f" at {rate:.3g} req/s" if rate is not None else ""
    return Event(
        "Warning",
        EventReason.SLO_BREACHED,
        f"p{pct:g} {p_ms:.1f}ms > {target_ms:g}ms target{at}",
    )


def slo_recovered_event(p_ms: float, target_ms: float, rate: float | None, pct: float) -> Event:
    at = f" at {rate:.3g} req/s" if rate is not None else ""
    return Event(
        "Normal",
        EventReason.SLO_RECOVERED,
        f"p{pct:g} {p_ms:.1f}ms <= {target_ms:g}ms target{at}",
    )


def conflict_event(message: str) -> Event:
    return Event("Warning", EventReason.CONFLICT_DETECTED, clip(message))


# ---------------------------------------------------------------------------------- ledger


class TimeShare:
    """Share of time a flag was true over a sliding window, in at most `buckets` buckets.

    `add(start, end, flag)` credits the interval to fixed-width time buckets (width =
    window / buckets, at least 1s); `share(now)` is true-time / observed-time over the
    window ending at `now` (None when nothing was observed). Intervals not added (no data)
    do not count either way.
    """

    def __init__(self, window_s: float, buckets: int = 60) -> None:
        self.window_s = float(window_s)
        self.width = max(1.0, self.window_s / buckets)
        self._data: dict[int, list[float]] = {}

    def add(self, start: float, end: float, flag: bool) -> None:
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            return
        t = start
        while t < end:
            index = math.floor(t / self.width)
            edge = min(end, (index + 1) * self.width)
            cell = self._data.setdefault(index, [0.0, 0.0])
            cell[1] += edge - t
            if flag:
                cell[0] += edge - t
            t = edge
        self._trim(end)

    def _trim(self, now: float) -> None:
        oldest = math.floor((now - self.window_s) / self.width)
        for index in [i for i in self._data if i < oldest]:
            del self._data[index]

    def share(self, now: float) -> float | None:
        oldest = math.floor((now - self.window_s) / self.width)
        true = total = 0.0
        for index, (t, n) in self._data.items():
            if index >= oldest:
                true += t
                total += n
        if total <= 0:
            return None
        return min(1.0, max(0.0, true / total))

    def resize(self, window_s: float, buckets: int = 60) -> TimeShare:
        """The same ledger for another window (a spec change); history is kept if compatible."""
        if math.isclose(window_s, self.window_s):
            return self
        fresh = TimeShare(window_s, buckets)
        if math.isclose(fresh.width, self.width):
            fresh._data = dict(self._data)
        return fresh

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window_s,
            "width": self.width,
            "cells": [[i, round(t, 3), round(n, 3)] for i, (t, n) in sorted(self._data.items())],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, window_s: float) -> TimeShare:
        ledger = cls(window_s)
        if not data:
            return ledger
        try:
            if not math.isclose(float(data["width"]), ledger.width):
                return ledger
            ledger._data = {int(i): [float(t), float(n)] for i, t, n in data["cells"]}
        except (KeyError, TypeError, ValueError):
            return cls(window_s)
        return ledger

    def __len__(self) -> int:
        return len(self._data)


def is_hold(decision: Decision) -> bool:
    return decision.action is Action.HOLD
