"""Bad values in what the operator reads back (the runtime ConfigMap, the controller-state
annotation) are refused with the field named and never wedge a LatencySLO."""

from __future__ import annotations

import json
import logging

import pytest

from slo_operator.actuate.kubernetes import parse_runtime_config
from slo_operator.actuate.store import STATE_ANNOTATION, load_memory
from slo_operator.loop import ControlLoop
from slo_operator.policy.state import STATE_VERSION, ControllerState
from slo_operator.types import ApplyResult, Observation, ProfileSet, RuntimeConfig, VariantProfile

HUGE = "9" * 400
T0 = 1_800_000_000.0


def doc(window: str = "5", size: str = "32") -> str:
    return f'{{"variant": "full", "batchWindowMs": {window}, "maxBatchSize": {size}}}'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (doc(window="Infinity"), "batchWindowMs"),
        (doc(window="-Infinity"), "batchWindowMs"),
        (doc(window="NaN"), "batchWindowMs"),
        (doc(window="1e400"), "batchWindowMs"),
        (doc(window=HUGE), "batchWindowMs"),
        (doc(window="-1"), "batchWindowMs"),
        (doc(window="1001"), "batchWindowMs"),
        (doc(window="true"), "batchWindowMs"),
        (doc(size="0"), "maxBatchSize"),
        (doc(size="-4"), "maxBatchSize"),
        (doc(size="2.5"), "maxBatchSize"),
        (doc(size="32.0"), "maxBatchSize"),
        (doc(size="Infinity"), "maxBatchSize"),
        (doc(size=HUGE), "maxBatchSize"),
        (doc(size="false"), "maxBatchSize"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
    ],
)
def test_a_bad_runtime_config_raises_value_error_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        parse_runtime_config(text, 1)
    assert len(str(caught.value)) < 200  # a 400-digit number is not echoed whole


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_runtime_config(doc(window="0", size="1"), 2) == RuntimeConfig(2, 0, 1, "full")
    assert parse_runtime_config(doc(window="1000", size="1024"), 2) == RuntimeConfig(
        2, 1000, 1024, "full"
    )


def state(**changes: object) -> dict[str, object]:
    return {"version": STATE_VERSION, "startedAt": T0, **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"startedAt": int(HUGE)}, "startedAt"),
        ({"lastChangeAt": int(HUGE)}, "lastChangeAt"),
        ({"correction": int(HUGE)}, "correction"),
        ({"correctionSamples": float("inf")}, "correctionSamples"),
        ({"correctionSamples": int(HUGE)}, "correctionSamples"),
        ({"rates": [[int(HUGE), 1.0]]}, "malformed list"),
        ({"rates": [[T0, float("inf")]]}, "rates"),
        ({"recommendations": [[T0, float("inf")]]}, "malformed list"),
        ({"profileFactors": {"full": int(HUGE)}}, "profileFactors.full"),
    ],
)
def test_a_huge_number_in_the_controller_state_is_a_value_error(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        ControllerState.from_dict(state(**changes))


def test_an_annotation_nested_too_deeply_reads_as_none() -> None:
    assert load_memory({STATE_ANNOTATION: "[" * 100_000 + "]" * 100_000}) is None


class _Metrics:
    async def observe(self, spec, namespace, ready_replicas, now, ranges=None) -> Observation:
        return Observation(now, 60.0, 100.0, 1500.0, 1.0, ready_replicas)


class _Actuator:
    async def read(self) -> tuple[RuntimeConfig, int]:
        return RuntimeConfig(2, 0, 32, "full"), 2

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        return ApplyResult(replicas_set=True, config_written=True)


class _Store:
    def __init__(self) -> None:
        self.saves: list[tuple[object, object]] = []

    async def save(self, status, memory) -> None:
        self.saves.append((status, memory))


async def test_a_huge_number_in_the_saved_memory_does_not_freeze_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 400-digit number where the loop's memory and the controller's state hold times: the
    loop starts afresh, says why in its log, and reports as usual."""
    store = _Store()
    profiles = ProfileSet(variants={"full": VariantProfile(10.0, 8.0, 0.90)})
    loop = ControlLoop(
        name="sentiment",
        namespace="ml",
        metrics=_Metrics(),
        actuator=_Actuator(),
        profiles=profiles,
        store=store,
    )
    memory = json.loads(
        f'{{"version": 1, "lastStepAt": {HUGE}, '
        f'"attainment": {{"width": 60, "cells": [[1, {HUGE}, 1]]}}, '
        f'"policy": {{"version": {STATE_VERSION}, "startedAt": {HUGE}}}}}'
    )
    with caplog.at_level(logging.WARNING):
        loop.restore({}, memory)
        result = await loop.step(
            {
                "targetRef": {"name": "sentiment-worker"},
                "objective": {"latencyMs": 150, "windowSeconds": 15},
                "variants": {"allowed": ["full"]},
            },
            now=T0,
        )
    assert result.status.current is not None
    assert result.status.current.replicas == 2
    assert store.saves, "the status was not written"
    assert "unreadable" in caplog.text
