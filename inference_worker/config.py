"""The worker's runtime configuration: `{"variant", "batchWindowMs", "maxBatchSize",
"maxQueueWaitMs"}`.

The same JSON document is the body of `PUT /admin/config`, the answer of `GET /admin/config`
and the runtime-config file (the operator's ConfigMap). `parse_update` validates a document
against the variants the worker knows and returns the new configuration, or raises
`ConfigError` naming the field and the rule; nothing is applied on error.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from slo_contracts.runtime import MAX_BATCH_SIZE, MAX_QUEUE_WAIT_MS, MAX_WINDOW_MS

FIELDS = ("variant", "batchWindowMs", "maxBatchSize", "maxQueueWaitMs")


class ConfigError(ValueError):
    """An invalid runtime configuration; `field` names the offending field ('' for the body)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    variant: str
    batch_window_ms: float
    max_batch_size: int
    max_queue_wait_ms: float = 0.0
    """Longest wait in the queue beyond the batch window before a request is refused unrun
    (0: no limit)."""

    @property
    def batch_window_s(self) -> float:
        return self.batch_window_ms / 1000.0

    @property
    def max_queue_wait_s(self) -> float:
        return self.max_queue_wait_ms / 1000.0

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "batchWindowMs": _number(self.batch_window_ms),
            "maxBatchSize": self.max_batch_size,
            "maxQueueWaitMs": _number(self.max_queue_wait_ms),
        }

    def window_label(self) -> str:
        return str(_number(self.batch_window_ms))

    def queue_wait_label(self) -> str:
        return str(_number(self.max_queue_wait_ms))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _show(value: Any) -> str:
    """A short description of a client's value for an error message (never a huge repr)."""
    if isinstance(value, str):
        return repr(value[:64] + ("..." if len(value) > 64 else ""))
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    return type(value).__name__


def parse_update(data: Any, current: RuntimeSettings, variants: Collection[str]) -> RuntimeSettings:
    """Validate a (possibly partial) config document; omitted fields keep their value."""
    if not isinstance(data, Mapping):
        raise ConfigError("", "the body must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown field; allowed fields are {list(FIELDS)}")
    if not data:
        raise ConfigError("", f"give at least one of {list(FIELDS)}")
    changes: dict[str, Any] = {}
    if "variant" in data:
        variant = data["variant"]
        if not isinstance(variant, str) or variant not in variants:
            raise ConfigError("variant", f"{_show(variant)} is not one of {sorted(variants)}")
        changes["variant"] = variant
    if "batchWindowMs" in data:
        window = data["batchWindowMs"]
        if (
            not isinstance(window, int | float)
            or isinstance(window, bool)
            or not 0 <= window <= MAX_WINDOW_MS  # compares huge ints exactly, False for NaN
            or not math.isfinite(window)
        ):
            raise ConfigError("batchWindowMs", f"must be a number in 0..{MAX_WINDOW_MS}")
        changes["batch_window_ms"] = float(window)
    if "maxBatchSize" in data:
        size = data["maxBatchSize"]
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
            raise ConfigError("maxBatchSize", f"must be an integer in 1..{MAX_BATCH_SIZE}")
        changes["max_batch_size"] = size
    if "maxQueueWaitMs" in data:
        wait = data["maxQueueWaitMs"]
        if (
            not isinstance(wait, int | float)
            or isinstance(wait, bool)
            or not 0 <= wait <= MAX_QUEUE_WAIT_MS
            or not math.isfinite(wait)
        ):
            raise ConfigError(
                "maxQueueWaitMs", f"must be a number in 0..{MAX_QUEUE_WAIT_MS} (0: no limit)"
            )
        changes["max_queue_wait_ms"] = float(wait)
    return replace(current, **changes)
