"""The runtime ConfigMap's document (`config.json`, docs/contracts.md): its name, parsing and
rendering, with the worker's own bounds."""

from __future__ import annotations

import json
from typing import Any

from slo_contracts.runtime import MAX_BATCH_SIZE, MAX_QUEUE_WAIT_MS, MAX_WINDOW_MS
from slo_operator.spec import VARIANTS
from slo_operator.types import RuntimeConfig

CONFIG_KEY = "config.json"


def configmap_name(deployment: str) -> str:
    """The runtime-config ConfigMap of a Deployment (docs/contracts.md)."""
    return f"{deployment}-latencyslo"


def parse_runtime_config(text: str, replicas: int) -> RuntimeConfig:
    """`config.json` (or a worker's `GET /admin/config` body) as a RuntimeConfig; raises
    ValueError naming the field for anything the worker itself would refuse (docs/contracts.md:
    `batchWindowMs` a finite number in 0..1000, `maxBatchSize` an integer in 1..1024,
    `maxQueueWaitMs`, where present, a finite number in 0..600000)."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ValueError("runtime config: nested too deeply") from exc
    if not isinstance(data, dict):
        raise ValueError("runtime config is not a JSON object")
    variant = data.get("variant")
    if variant not in VARIANTS:
        raise ValueError(f"runtime config: unknown variant {variant!r}")
    window = data.get("batchWindowMs")
    size = data.get("maxBatchSize")
    if (
        isinstance(window, bool)
        or not isinstance(window, int | float)
        or not 0 <= window <= MAX_WINDOW_MS  # exact for huge ints, False for NaN
    ):
        raise ValueError(
            f"runtime config: batchWindowMs must be a number in 0..{MAX_WINDOW_MS}, got "
            f"{_short(window)}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise ValueError(
            f"runtime config: maxBatchSize must be an integer in 1..{MAX_BATCH_SIZE}, got "
            f"{_short(size)}"
        )
    wait = data.get("maxQueueWaitMs")
    if wait is not None and (
        isinstance(wait, bool)
        or not isinstance(wait, int | float)
        or not 0 <= wait <= MAX_QUEUE_WAIT_MS
    ):
        raise ValueError(
            f"runtime config: maxQueueWaitMs must be a number in 0..{MAX_QUEUE_WAIT_MS}, got "
            f"{_short(wait)}"
        )
    return RuntimeConfig(
        replicas=replicas,
        batch_window_ms=round(window),
        max_batch_size=size,
        variant=str(variant),
        max_queue_wait_ms=None if wait is None else round(wait),
    )


def _short(value: Any) -> str:
    """A value for an error message, at most 40 characters (a 5,000-digit number is cut)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def render_runtime_config(config: RuntimeConfig) -> str:
    return json.dumps(config.worker_payload(), sort_keys=True)
