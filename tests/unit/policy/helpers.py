"""Builders shared by the policy tests (profiles are built here, never loaded from disk)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from slo_operator.model import predict
from slo_operator.policy import ControllerState, decide, initial_state
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Decision, Observation, ProfileSet, RuntimeConfig, VariantProfile

PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(alpha_ms=3.25, beta_ms=1.55, accuracy=0.876),
        "quantized": VariantProfile(alpha_ms=1.81, beta_ms=0.89, accuracy=0.863),
        "distilled": VariantProfile(alpha_ms=1.08, beta_ms=0.62, accuracy=0.871),
    },
    source="tests",
)
FLAT = ProfileSet(
    variants={"full": VariantProfile(alpha_ms=30.0, beta_ms=2.0, accuracy=0.9)}, source="tests"
)
"""A service time that dominates the quantile, which barely moves with the replicas: at 300
req/s six replicas hold 79 ms, eight 76 ms, fourteen 73 ms (the aim is 80 ms)."""
NOW = 10_000.0


def make_spec(**sections: dict[str, Any]) -> LatencySLOSpec:
    """A spec with latencyMs 100, replicas 1..16, headroom 0.8 (the aim of 80 ms the tests'
    figures are worked at, whatever the default is) and the given section overrides."""
    raw: dict[str, Any] = {
        "targetRef": {"name": "w"},
        "objective": {"latencyMs": 100},
        "replicas": {"min": 1, "max": 16},
        "policy": {"headroom": 0.8},
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
    ).latency_ms


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
        latency_ms=p99,
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


@dataclass
class Loop:
    """What a closed loop of `decide` against the plant below did, one entry per interval."""

    times: list[float] = field(default_factory=list)
    configs: list[RuntimeConfig] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def changes(self) -> list[tuple[float, RuntimeConfig, RuntimeConfig]]:
        out = []
        for k in range(1, len(self.configs)):
            if self.configs[k] != self.configs[k - 1]:
                out.append((self.times[k], self.configs[k - 1], self.configs[k]))
        return out


def assert_no_oscillation(changes: list[tuple[float, RuntimeConfig, RuntimeConfig]]) -> None:
    """At most 4 replica changes and 2 variant switches (an hour of stationary load), and no
    replica reversal within 5 minutes."""
    replica_moves = [
        (t, b.replicas - a.replicas) for t, a, b in changes if a.replicas != b.replicas
    ]
    variant_moves = [t for t, a, b in changes if a.variant != b.variant]
    assert len(replica_moves) <= 4, replica_moves
    assert len(variant_moves) <= 2, variant_moves
    for (t0, d0), (t1, d1) in itertools.pairwise(replica_moves):
        assert not (d0 * d1 < 0 and t1 - t0 < 300), replica_moves  # no reversal within 5 min


def closed_loop(
    rate_at: Callable[[float], float],
    seconds: float,
    *,
    noise: float = 0.0,
    seed: int = 0,
    start: RuntimeConfig | None = None,
    spec: LatencySLOSpec = SPEC,
    startup_s: float = 30.0,
    plant_factor: float = 1.0,
    slowdown: Callable[[RuntimeConfig], float] | None = None,
    profiles: ProfileSet = PROFILES,
) -> Loop:
    """decide() every interval against a plant: the observed p99 is the model's p99 at the
    true rate on the ready replicas (times `plant_factor`, a plant slower than the model,
    and log-normal noise; `slowdown` of the configuration in force slows it further, as
    shared cores do), the rate has Poisson noise, ordered replicas are ready startup_s later,
    a variant switch acts at once."""
    rng = random.Random(seed)
    current = start or RuntimeConfig(max(1, math.ceil(rate_at(0) / 450)), 0, 32, "full")
    ready, ready_at = current.replicas, 0.0
    # a controller that has run at `current` on fresh data for a while: its stabilization
    # history holds that many replicas (not an empty history, which no running loop has)
    window = spec.policy.scale_down_stabilization_seconds
    history = tuple((t, current.replicas) for t in range(-int(window), 0, 15))
    state = replace(initial_state(-1000.0), fresh_since=-1000.0, recommendations=history)
    loop = Loop()
    t = 0.0
    while t < seconds:
        t += spec.policy.interval_seconds
        if t >= ready_at:
            ready = current.replicas
        rate = rate_at(t)
        seen = max(0.0, rate + rng.gauss(0, math.sqrt(rate * 60) / 60))
        p99 = model_p99(rate, current.with_(replicas=max(ready, 1)), profiles) * plant_factor
        p99 *= slowdown(current) if slowdown else 1.0
        p99 *= rng.lognormvariate(0, noise)
        p99 = min(p99, 2000.0)  # the histogram's last finite edge
        o = Observation(t, p99, seen, seen * 60, 3.0, ready, recent_request_rate=rate)
        decision, state = decide(spec, o, current, profiles, state, t)
        if decision.apply and decision.target != current:
            if decision.target.replicas > current.replicas:
                ready_at = t + startup_s
            else:
                ready = min(ready, decision.target.replicas)
            current = decision.target
        loop.times.append(t)
        loop.configs.append(current)
        loop.ready.append(ready)
        loop.p99.append(p99)
        loop.decisions.append(decision)
    return loop
