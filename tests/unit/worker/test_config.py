"""Runtime-config validation: the admin PUT body, the runtime-config file."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_worker.config import ConfigError, RuntimeSettings, parse_update

VARIANTS = ("full", "quantized", "distilled")
CURRENT = RuntimeSettings("full", 5.0, 32)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"variant": "quantized"}, RuntimeSettings("quantized", 5.0, 32)),
        ({"batchWindowMs": 0}, RuntimeSettings("full", 0.0, 32)),
        ({"batchWindowMs": 2.5}, RuntimeSettings("full", 2.5, 32)),
        ({"batchWindowMs": 1000}, RuntimeSettings("full", 1000.0, 32)),
        ({"maxBatchSize": 1}, RuntimeSettings("full", 5.0, 1)),
        (
            {"variant": "distilled", "batchWindowMs": 8, "maxBatchSize": 1024},
            RuntimeSettings("distilled", 8.0, 1024),
        ),
        ({"maxQueueWaitMs": 60}, RuntimeSettings("full", 5.0, 32, 60.0)),
        ({"maxQueueWaitMs": 0}, RuntimeSettings("full", 5.0, 32, 0.0)),
        ({"maxQueueWaitMs": 600_000}, RuntimeSettings("full", 5.0, 32, 600_000.0)),
    ],
)
def test_valid_updates(body: dict[str, Any], expected: RuntimeSettings) -> None:
    assert parse_update(body, CURRENT, VARIANTS) == expected


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ([], "", "JSON object"),
        ("full", "", "JSON object"),
        ({}, "", "at least one"),
        ({"variant": "tiny"}, "variant", "not one of"),
        ({"variant": 3}, "variant", "not one of"),
        ({"batchWindowMs": -1}, "batchWindowMs", "0..1000"),
        ({"batchWindowMs": 1000.5}, "batchWindowMs", "0..1000"),
        ({"batchWindowMs": "5"}, "batchWindowMs", "number"),
        ({"batchWindowMs": True}, "batchWindowMs", "number"),
        ({"batchWindowMs": float("nan")}, "batchWindowMs", "number"),
        ({"batchWindowMs": float("inf")}, "batchWindowMs", "number"),
        ({"batchWindowMs": -float("inf")}, "batchWindowMs", "number"),
        ({"batchWindowMs": 10**400}, "batchWindowMs", "0..1000"),  # OverflowError before
        ({"batchWindowMs": -(10**400)}, "batchWindowMs", "0..1000"),
        ({"maxBatchSize": -3}, "maxBatchSize", "1..1024"),
        ({"maxBatchSize": 10**400}, "maxBatchSize", "1..1024"),
        ({"maxBatchSize": float("inf")}, "maxBatchSize", "integer"),
        ({"variant": [[[["deep"]]]]}, "variant", "list is not one of"),
        ({"variant": "x" * 10000}, "variant", "..."),
        ({"maxBatchSize": 0}, "maxBatchSize", "1..1024"),
        ({"maxBatchSize": 1025}, "maxBatchSize", "1..1024"),
        ({"maxBatchSize": 8.0}, "maxBatchSize", "integer"),
        ({"maxBatchSize": False}, "maxBatchSize", "integer"),
        ({"variant": "full", "replicas": 3}, "replicas", "unknown field"),
        ({"maxQueueWaitMs": -1}, "maxQueueWaitMs", "0..600000"),
        ({"maxQueueWaitMs": 600_001}, "maxQueueWaitMs", "0..600000"),
        ({"maxQueueWaitMs": "60"}, "maxQueueWaitMs", "number"),
        ({"maxQueueWaitMs": True}, "maxQueueWaitMs", "number"),
        ({"maxQueueWaitMs": float("nan")}, "maxQueueWaitMs", "number"),
        ({"maxQueueWaitMs": 10**400}, "maxQueueWaitMs", "0..600000"),
    ],
)
def test_invalid_updates_name_the_field(body: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_update(body, CURRENT, VARIANTS)
    assert info.value.field == field
    assert words in info.value.reason


def test_json_round_trip_keeps_integers_integral() -> None:
    assert RuntimeSettings("full", 5.0, 32).to_json() == {
        "variant": "full",
        "batchWindowMs": 5,
        "maxBatchSize": 32,
        "maxQueueWaitMs": 0,
    }
    assert RuntimeSettings("full", 2.5, 32, 60.5).to_json()["maxQueueWaitMs"] == 60.5
    assert RuntimeSettings("full", 2.5, 32).window_label() == "2.5"


@given(
    window=st.floats(min_value=0, max_value=1000, allow_nan=False),
    size=st.integers(min_value=1, max_value=1024),
    variant=st.sampled_from(VARIANTS),
    wait=st.floats(min_value=0, max_value=600_000, allow_nan=False),
)
def test_every_in_range_document_is_accepted_and_round_trips(
    window: float, size: int, variant: str, wait: float
) -> None:
    body = {"variant": variant, "batchWindowMs": window, "maxBatchSize": size,
            "maxQueueWaitMs": wait}  # fmt: skip
    new = parse_update(body, CURRENT, VARIANTS)
    assert parse_update(new.to_json(), CURRENT, VARIANTS) == new


def test_error_messages_stay_short() -> None:
    with pytest.raises(ConfigError) as info:
        parse_update({"variant": "x" * 60000}, CURRENT, VARIANTS)
    assert len(str(info.value)) < 300
