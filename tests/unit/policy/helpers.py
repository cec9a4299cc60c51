"""Builders shared by the policy tests (profiles are built here, never loaded from disk)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from slo_operator.model import predict
from slo_operator.policy import ControllerState, initial_state
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Observation, ProfileSet, RuntimeConfig, VariantProfile

PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(alpha_ms=3.25, beta_ms=1.55, accuracy=0.876),
        "quantized": VariantProfile(alpha_ms=1.81, beta_ms=0.89, accuracy=0.863),
        "distilled": VariantProfile(alpha_ms=1.08, beta_ms=0.62, accuracy=0.871),
    },
    source="tests",
)
NOW = 10_000.0


def make_spec(**sections: dict[str, Any]) -> LatencySLOSpec:
    """A spec with latencyMs 100, replicas 1..16 and the given section overrides."""
    raw: dict[str, Any] = {
        "targetRef": {"name": "w"},
        "objective": {"latencyMs": 100},
        "replicas": {"min": 1, "max": 16},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return LatencySLOSpec.model_validate(raw)


SPEC = make_spec()


def cfg(
    replicas: int = 2, window: int = 0, variant: str = "full", batch: int = 32
) -> RuntimeConfig:
    return RuntimeConfig(replicas, window, batch, variant)


def model_p99(rate: float, config: RuntimeConfig, profiles: ProfileSet = PROFILES) -> float:
    return predict(
        profiles.variants[config.variant],
        rate,
        config.replicas,
        config.batch_window_ms,
        config.max_batch_size,
    ).p99_ms


def obs(
    rate: float | None = 600.0,
    p99: float | None = None,
    ready: int = 2,
    age: float | None = 2.0,
    samples: float | None = None,
    error: str | None = None,
    at: float = NOW,
    current: RuntimeConfig | None = None,
) -> Observation:
    """An observation; p99 defaults to what the model predicts for `current` at `rate`."""
    if p99 is None and rate is not None and current is not None:
        p99 = model_p99(rate, current.with_(replicas=ready))
    if samples is None and rate is not None and math.isfinite(rate):
        samples = rate * 60
    return Observation(
        at=at,
        p99_ms=p99,
        request_rate=rate,
        samples=samples,
        age_seconds=age,
        ready_replicas=ready,
        error=error,
        recent_request_rate=rate,
    )


def settled(now: float = NOW, **changes: Any) -> ControllerState:
    """A controller that has seen fresh data for long (no restart guard in force)."""
    base = replace(initial_state(0.0), fresh_since=0.0, last_decision_at=now - 15.0)
    return replace(base, **changes)
