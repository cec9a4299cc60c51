"""Status building: conditions (transition times), decision records, history bound, Events text,
and the sliding-window ledger."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo_operator import status as s
from slo_operator.errors import QueryError
from slo_operator.metrics.prometheus import Sample, parse_observation
from slo_operator.spec import HISTORY_LIMIT, Action, ConditionType, LatencySLOStatus
from slo_operator.types import Decision, RuntimeConfig

T0 = 1_800_000_000.0


def cfg(replicas=2, window=8, batch=32, variant="full") -> RuntimeConfig:
    return RuntimeConfig(replicas, window, batch, variant)


def test_transition_time_moves_only_when_status_changes() -> None:
    first = s.set_condition([], "SLOMet", "True", "WithinTarget", "ok", now=T0, generation=1)
    same = s.set_condition(
        first, "SLOMet", "True", "WithinTarget", "still ok", now=T0 + 60, generation=2
    )
    flipped = s.set_condition(
        same, "SLOMet", "False", "Breached", "bad", now=T0 + 120, generation=2
    )
    assert first[0].last_transition_time == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert same[0].last_transition_time == first[0].last_transition_time
    assert (same[0].message, same[0].observed_generation) == ("still ok", 2)
    assert flipped[0].last_transition_time == dt.datetime.fromtimestamp(T0 + 120, dt.UTC)
    assert (flipped[0].status, flipped[0].reason) == ("False", "Breached")


def test_conditions_keep_a_fixed_order_and_one_per_type() -> None:
    conditions = []
    for type_ in reversed(s.CONDITION_ORDER):
        conditions = s.set_condition(conditions, type_, "True", "R", "", now=T0, generation=1)
    conditions = s.set_condition(conditions, "Ready", "False", "R", "", now=T0, generation=1)
    assert [c.type for c in conditions] == [str(t) for t in s.CONDITION_ORDER]


def test_conditions_are_valid_metav1_conditions() -> None:
    conditions = s.set_condition(
        [], ConditionType.READY, "Unknown", "NoData", "x" * 40000, now=T0, generation=None
    )
    status = LatencySLOStatus(conditions=conditions)
    dumped = status.model_dump(by_alias=True, mode="json")["conditions"][0]
    assert set(dumped) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert dumped["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert len(dumped["message"]) == 32768


def test_became() -> None:
    a = s.set_condition([], "Conflict", "False", "NoConflict", "", now=T0, generation=1)
    b = s.set_condition(a, "Conflict", "True", "HorizontalPodAutoscaler", "", now=T0, generation=1)
    assert s.became(a, b, "Conflict", "True")
    assert not s.became(b, b, "Conflict", "True")
    assert s.became([], b, "Conflict", "True")


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ({"latency": QueryError("cannot connect to http://p")}, "QueryFailed"),
        ({"rate": QueryError("timed out after 5s")}, "QueryFailed"),
        ({"age": [Sample({}, 75.0)]}, "StaleData"),
        ({"latency": []}, "NoData"),
        ({"latency": [Sample({}, math.nan)]}, "NoData"),
    ],
)
def test_metrics_reason(outcome: dict, reason: str) -> None:
    """The MetricsAvailable reason is the observation's typed fault, never parsed text."""
    results = {
        "latency": [Sample({}, 0.05)],
        "rate": [Sample({}, 10.0)],
        "samples": [Sample({}, 100.0)],
        "age": [Sample({}, 2.0)],
        **outcome,
    }
    obs = parse_observation(now=T0, ready_replicas=1, max_age_s=60.0, **results)
    assert obs.fault is not None
    assert obs.fault.value == reason


def test_decision_record() -> None:
    decision = Decision(
        action=Action.DEGRADE_VARIANT,
        target=cfg(4, 12, variant="quantized"),
        reason="x" * 2000,
        predicted_latency_ms=118.04567,
    )
    record = s.decision_record(decision, cfg(), now=T0, applied=True)
    wire = record.model_dump(by_alias=True, mode="json")
    assert wire["action"] == "DegradeVariant"
    assert wire["from"] == {
        "replicas": 2,
        "batchWindowMs": 8,
        "maxBatchSize": 32,
        "maxQueueWaitMs": None,
        "variant": "full",
    }
    assert wire["to"]["variant"] == "quantized"
    assert wire["predictedLatencyMs"] == 118.046
    assert len(wire["reason"]) == 1024
    assert wire["reason"].endswith("...")
    assert wire["applied"] is True


def test_a_decision_records_the_queue_wait_limit() -> None:
    """A hold that only sets the spec's limit shows it: from the workers' own to the spec's."""
    target = cfg().with_(max_queue_wait_ms=60)
    record = s.decision_record(Decision(Action.HOLD, target, "hold"), cfg(), now=T0, applied=True)
    wire = record.model_dump(by_alias=True, mode="json")
    assert (wire["from"]["maxQueueWaitMs"], wire["to"]["maxQueueWaitMs"]) == (None, 60)
    assert s.config_of(record.to, 16) == target  # read back whole: an interrupted step
    LatencySLOStatus(history=[record])


def test_history_is_bounded_newest_first() -> None:
    history = []
    for i in range(HISTORY_LIMIT + 7):
        record = s.decision_record(
            Decision(Action.SCALE_UP, cfg(i + 1), f"step {i}"), cfg(i), now=T0 + i, applied=True
        )
        history = s.push_history(history, record)
    assert len(history) == HISTORY_LIMIT
    assert history[0].reason == f"step {HISTORY_LIMIT + 6}"
    assert history[-1].reason == "step 7"
    LatencySLOStatus(history=history)  # the API's bound holds


def test_same_change() -> None:
    a = s.decision_record(Decision(Action.SCALE_UP, cfg(4), "a"), cfg(2), now=T0, applied=False)
    b = s.decision_record(Decision(Action.SCALE_UP, cfg(4), "b"), cfg(2), now=T0 + 9, applied=False)
    c = s.decision_record(Decision(Action.SCALE_UP, cfg(5), "c"), cfg(2), now=T0, applied=False)
    assert s.same_change(a, b)
    assert not s.same_change(a, c)
    assert not s.same_change(a, None)


# ---------------------------------------------------------------------------------- events


def reasons(events) -> list[str]:
    return [str(e.reason) for e in events]


def test_one_event_per_knob() -> None:
    events = s.change_events(
        cfg(2, 8, variant="full"),
        cfg(4, 12, variant="quantized"),
        "p99 212ms > 150ms",
        deployment="sentiment-worker",
    )
    assert reasons(events) == ["ScaledUp", "BatchWindowChanged", "VariantDegraded"]
    assert events[0].message == ("Scaled sentiment-worker from 2 to 4 replicas: p99 212ms > 150ms")
    assert events[1].message == (
        "Batch window 8ms -> 12ms, max batch size 32 -> 32: p99 212ms > 150ms"
    )
    assert events[2].message == "Variant full -> quantized: p99 212ms > 150ms"
    assert all(e.type == "Normal" for e in events)


def test_the_queue_wait_limit_is_an_event_and_a_change_only_where_set() -> None:
    before = cfg(2, 8)
    events = s.change_events(
        before, before.with_(max_queue_wait_ms=60), "as the spec sets", deployment="d"
    )
    assert reasons(events) == ["BatchWindowChanged"]
    assert events[0].message == (
        "Batch window 8ms -> 8ms, max batch size 32 -> 32, queue wait limit unknown -> 60ms: "
        "as the spec sets"
    )
    zero = s.describe_change(before.with_(max_queue_wait_ms=60), before.with_(max_queue_wait_ms=0))
    assert zero == "queue wait limit 60ms->none"
    # left to the workers (None): no change, whatever they run
    assert s.change_events(before.with_(max_queue_wait_ms=60), before, "", deployment="d") == []
    assert s.describe_change(before.with_(max_queue_wait_ms=60), before) == "no change"


def test_scale_down_and_restore() -> None:
    events = s.change_events(
        cfg(4, variant="distilled"), cfg(3, variant="quantized"), "", deployment="d"
    )
    assert reasons(events) == ["ScaledDown", "VariantRestored"]
    assert events[0].message == "Scaled d from 4 to 3 replicas"


def test_degrade_order_follows_allowed() -> None:
    events = s.change_events(
        cfg(variant="distilled"),
        cfg(variant="full"),
        "r",
        deployment="d",
        variant_order=["distilled", "full"],
    )
    assert reasons(events) == ["VariantDegraded"]


def test_no_change_no_event() -> None:
    assert s.change_events(cfg(), cfg(), "r", deployment="d") == []


def test_other_event_texts() -> None:
    rec = s.recommended_event(cfg(2), cfg(5, 12), "p99 400ms > 150ms")
    assert (rec.type, str(rec.reason)) == ("Normal", "Recommended")
    assert rec.message == (
        "Recommend mode, nothing changed: would set replicas 2->5, batch window 8->12ms: "
        "p99 400ms > 150ms"
    )
    warn = s.metrics_unavailable_event("Prometheus query failed: cannot connect", cfg())
    assert (warn.type, str(warn.reason)) == ("Warning", "MetricsUnavailable")
    assert warn.message == (
        "Prometheus query failed: cannot connect; holding replicas=2, window=8ms, variant=full"
    )
    breach = s.slo_breached_event(212.44, 150, 41.2, 99)
    assert (breach.type, breach.message) == ("Warning", "p99 212.4ms > 150ms target at 41.2 req/s")
    ok = s.slo_recovered_event(120.0, 150, None, 99.9)
    assert (ok.type, ok.message) == ("Normal", "p99.9 120.0ms <= 150ms target")
    conflict = s.conflict_event("HorizontalPodAutoscaler h also scales Deployment d")
    assert (conflict.type, str(conflict.reason)) == ("Warning", "ConflictDetected")


def test_event_reasons_are_the_api_list() -> None:
    assert {str(r) for r in s.EventReason} == {
        "ScaledUp", "ScaledDown", "BatchWindowChanged", "VariantDegraded", "VariantRestored",
        "Recommended", "MetricsUnavailable", "SLOBreached", "SLORecovered", "ConflictDetected",
    }  # fmt: skip


# ---------------------------------------------------------------------------------- ledger


def test_time_share() -> None:
    ledger = s.TimeShare(3600)
    ledger.add(T0, T0 + 30, True)
    ledger.add(T0 + 30, T0 + 40, False)
    assert ledger.share(T0 + 40) == pytest.approx(0.75)
    ledger.add(T0 + 40, T0 + 40, True)  # empty interval: nothing
    assert ledger.share(T0 + 40) == pytest.approx(0.75)
    assert s.TimeShare(60).share(T0) is None


def test_time_share_forgets_outside_the_window() -> None:
    ledger = s.TimeShare(600, buckets=10)
    ledger.add(T0, T0 + 60, False)
    ledger.add(T0 + 700, T0 + 760, True)
    assert ledger.share(T0 + 760) == 1.0


def test_time_share_round_trips() -> None:
    ledger = s.TimeShare(3600)
    ledger.add(T0, T0 + 90, True)
    ledger.add(T0 + 90, T0 + 100, False)
    again = s.TimeShare.from_json(ledger.to_json(), 3600)
    assert again.share(T0 + 100) == pytest.approx(ledger.share(T0 + 100))
    assert s.TimeShare.from_json({"width": 1, "cells": "junk"}, 3600).share(T0) is None
    assert s.TimeShare.from_json(ledger.to_json(), 60).share(T0 + 100) is None  # other width


@given(st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 300), st.booleans()), max_size=60))
def test_time_share_is_bounded(intervals) -> None:
    ledger = s.TimeShare(3600, buckets=60)
    t = T0
    for gap, length, flag in intervals:
        t += gap
        ledger.add(t, t + length, flag)
        t += length
        share = ledger.share(t)
        assert share is None or 0.0 <= share <= 1.0
        assert len(ledger) <= 62
