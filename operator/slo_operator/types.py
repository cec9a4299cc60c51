"""Value types shared by the decision core, the simulator, the adapters and the CLI.

These are the contracts between the parts of the controller (see docs/architecture in the
README): the policy consumes an `Observation`, the `RuntimeConfig` in force and the
`VariantProfile`s, and returns a `Decision`. Metrics sources produce observations and
profiles; actuators read and apply `RuntimeConfig`s. All times are seconds on the clock the
caller passes in (wall clock in the operator, simulated time in the simulator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from slo_contracts.profiles import ProfileSet, VariantProfile
from slo_operator.spec import Action, LatencySLOSpec

__all__ = [
    "Actuator",
    "ApplyResult",
    "Decision",
    "MetricsSource",
    "Observation",
    "ProfileSet",
    "RuntimeConfig",
    "VariantProfile",
]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The three knobs (plus max batch size) of an inference Deployment."""

    replicas: int
    batch_window_ms: int
    max_batch_size: int
    variant: str

    def with_(self, **changes: Any) -> RuntimeConfig:
        return replace(self, **changes)

    def worker_payload(self) -> dict[str, Any]:
        """The body of the worker's `PUT /admin/config` (and of the runtime ConfigMap)."""
        return {
            "variant": self.variant,
            "batchWindowMs": self.batch_window_ms,
            "maxBatchSize": self.max_batch_size,
        }


@dataclass(frozen=True, slots=True)
class Observation:
    """What the metrics source saw over the objective's window.

    `p99_ms` is the latency at the objective's percentile (named p99 for brevity). None, NaN or
    infinity mean "no data"; `error` says why when the source failed. `age_seconds` is how old
    the newest sample is. `ready_replicas` comes from the actuator (Deployment status or local
    processes), not from Prometheus.
    """

    at: float
    p99_ms: float | None
    request_rate: float | None
    samples: float | None
    age_seconds: float | None
    ready_replicas: int
    error: str | None = None
    recent_request_rate: float | None = None
    """Requests per second over a short recent range (about one `intervalSeconds`), when the
    source can tell; the policy sizes for it when it clearly exceeds `request_rate` (beyond
    Poisson noise), so that a load step is not hidden by the long objective window.
    None = unknown (optional)."""
    peak_request_rate: float | None = None
    """The highest request rate over any short range (about 10 s) within the objective's
    window, e.g. `max_over_time(sum(rate(<histogram>_count[10s]))[<window>s:5s])`. A
    quantile over the window is set by its busiest seconds, so the policy sizes replicas for
    it when known. None = unknown (optional)."""

    @property
    def has_latency(self) -> bool:
        return self.p99_ms is not None and math.isfinite(self.p99_ms) and self.p99_ms >= 0

    @property
    def has_rate(self) -> bool:
        return (
            self.request_rate is not None
            and math.isfinite(self.request_rate)
            and self.request_rate >= 0
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The controller's answer for one interval.

    `target` is the configuration to move to (equal to the current one for a hold);
    `action` is the main action (Hold when nothing changes); `actions` lists every knob moved;
    `apply` is False in Recommend and Paused modes and for holds; `reason` is always set.
    """

    action: Action
    target: RuntimeConfig
    reason: str
    predicted_p99_ms: float | None = None
    actions: tuple[Action, ...] = ()
    apply: bool = True

    @property
    def is_hold(self) -> bool:
        return self.action is Action.HOLD


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an actuator did with a target configuration."""

    replicas_set: bool
    config_written: bool
    pods_total: int = 0
    pods_acknowledged: int = 0
    errors: tuple[str, ...] = ()


@runtime_checkable
class MetricsSource(Protocol):
    """Port: where observations and measured profiles come from (Prometheus, direct scrape)."""

    async def observe(
        self, spec: LatencySLOSpec, namespace: str, ready_replicas: int, now: float
    ) -> Observation:
        """The objective's figures as of `now` (epoch seconds), all evaluated at that instant."""
        ...

    async def profiles(self, spec: LatencySLOSpec, namespace: str) -> ProfileSet | None: ...


@runtime_checkable
class Actuator(Protocol):
    """Port: reads and applies the runtime configuration (Kubernetes, local processes)."""

    async def read(self) -> tuple[RuntimeConfig, int]:
        """The configuration in force and the number of ready replicas."""
        ...

    async def apply(self, target: RuntimeConfig) -> ApplyResult: ...
