"""Value types shared by the decision core, the simulator, the adapters and the CLI.

These are the values passed between the parts of the controller (docs/architecture.md): the
controller consumes an `Observation` and the `RuntimeConfig` in force and returns a
`Decision`; metrics sources produce observations; actuators read and apply `RuntimeConfig`s
and report an `ApplyResult`. The ports themselves are in `slo_operator.ports`. All times are
seconds on the clock the caller passes in (wall clock in the operator, simulated time in the
simulator).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from slo_contracts.profiles import ProfileSet, VariantProfile
from slo_operator.spec import Action

__all__ = [
    "ApplyResult",
    "BatchMeasurement",
    "Decision",
    "Fault",
    "Observation",
    "ProfileSet",
    "Ranges",
    "RuntimeConfig",
    "VariantProfile",
]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The three knobs (plus max batch size and queue wait limit) of an inference Deployment."""

    replicas: int
    batch_window_ms: int
    max_batch_size: int
    variant: str
    max_queue_wait_ms: int | None = None
    """The workers' queue wait limit (0: none); None where the spec leaves it to the workers
    (it is then neither written nor compared)."""

    def with_(self, **changes: Any) -> RuntimeConfig:
        return replace(self, **changes)

    def sets_queue_wait(self, current: RuntimeConfig) -> bool:
        """Whether this target sets a queue wait limit `current` does not have (None: left to
        the workers, never a change)."""
        return self.max_queue_wait_ms not in (None, current.max_queue_wait_ms)

    def config_differs(self, current: RuntimeConfig) -> bool:
        """Whether this target's worker configuration (all but replicas) differs from
        `current`'s."""
        rest = self.with_(replicas=current.replicas, max_queue_wait_ms=current.max_queue_wait_ms)
        return rest != current or self.sets_queue_wait(current)

    def config_over(self, current: RuntimeConfig) -> RuntimeConfig:
        """`current` with this target's worker configuration written over it (replicas kept;
        a queue wait limit this target leaves is not written, so `current`'s stays)."""
        wait = self.max_queue_wait_ms
        return self.with_(
            replicas=current.replicas,
            max_queue_wait_ms=current.max_queue_wait_ms if wait is None else wait,
        )

    def differs(self, current: RuntimeConfig) -> bool:
        """Whether this target moves anything from `current` (replicas included)."""
        return self.replicas != current.replicas or self.config_differs(current)

    def queue_wait_words(self) -> str:
        """The queue wait limit for a message: `60ms`, `none` (0) or `unknown` (None)."""
        ms = self.max_queue_wait_ms
        return "unknown" if ms is None else "none" if ms == 0 else f"{ms}ms"

    def worker_payload(self) -> dict[str, Any]:
        """The body of the worker's `PUT /admin/config` (and of the runtime ConfigMap)."""
        body: dict[str, Any] = {
            "variant": self.variant,
            "batchWindowMs": self.batch_window_ms,
            "maxBatchSize": self.max_batch_size,
        }
        if self.max_queue_wait_ms is not None:
            body["maxQueueWaitMs"] = self.max_queue_wait_ms
        return body


@dataclass(frozen=True, slots=True)
class Ranges:
    """The ranges (seconds) over which an observation's figures are measured.

    One set per LatencySLO, from `slo_operator.policy.ControllerParams`: the PromQL builder,
    the direct scrape and the simulator's view measure over these, and the controller reads
    the noise of a rate from the range it was measured over.
    """

    window_s: int
    """The objective's window: the quantile, the request rate, the sample count."""
    recent_s: int
    """The recent request rate (a step the window still hides)."""
    peak_s: int
    """The short rates whose maximum over the window is the peak rate."""
    peak_step_s: int
    """Resolution of the peak's subquery (one short rate every this many seconds)."""


class Fault(StrEnum):
    """Why an observation has no usable latency (also the MetricsAvailable reason)."""

    QUERY_FAILED = "QueryFailed"
    """The source could not be asked (unreachable, timeout, HTTP error, bad answer)."""
    NO_DATA = "NoData"
    """The source answered, without a usable quantile (no series, no requests, NaN)."""
    STALE = "StaleData"
    """The newest sample is older than the staleness limit."""


@dataclass(frozen=True, slots=True)
class BatchMeasurement:
    """The workers' measured batch service time over the window (for the profile factors)."""

    batch_ms_by_variant: Mapping[str, float]
    """Mean model time of one batch, ms, per variant that served in the window."""
    mean_batch_size: float | None
    """Mean batch size over the window (all variants together: the histogram has no variant
    label); None when unknown."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What the metrics source saw over the objective's window.

    `latency_ms` is the latency at the objective's percentile. None, NaN or infinity mean
    "no data"; `error` says why when the source failed, `fault` what kind of
    failure it was. `age_seconds` is how old
    the newest sample is. `ready_replicas` comes from the actuator (Deployment status or local
    processes), not from Prometheus.
    """

    at: float
    latency_ms: float | None
    request_rate: float | None
    samples: float | None
    age_seconds: float | None
    ready_replicas: int
    error: str | None = None
    recent_request_rate: float | None = None
    """Requests per second over a short recent range (`ranges.recent_s`), when the
    source can tell; the policy sizes for it when it clearly exceeds `request_rate` (beyond
    Poisson noise), so that a load step is not hidden by the long objective window.
    None = unknown (optional)."""
    peak_request_rate: float | None = None
    """The highest request rate over any short range (`ranges.peak_s`) within the objective's
    window, e.g. `max_over_time(sum(rate(<histogram>_count[30s]))[<window>s:15s])`. A
    quantile over the window is set by its busiest seconds, so the policy sizes replicas for
    it when known. None = unknown (optional)."""
    ranges: Ranges | None = None
    """The ranges these figures were measured over (None: the controller's own)."""
    batch: BatchMeasurement | None = None
    """Measured batch service times, for the per-variant profile factors (optional)."""
    fault: Fault | None = None
    """The kind of failure behind `error` (None with an error: `Fault.NO_DATA`)."""
    served_latency_ms: float | None = None
    """The latency at the objective's percentile over the requests the workers did not
    refuse (`outcome!="refused"`: queue full, over the queue wait limit, not ready). A
    refused request counts in the histogram's `+Inf` bucket, so a few percent of refusals
    put `latency_ms` at the top edge whatever the model's error: this one measures the model
    apart from them (the request rate counts the refused ones, and sizes for them). None:
    the source cannot tell; NaN: nothing was served in the window (in both cases the
    controller reads `latency_ms`, `model_latency_ms`)."""

    @classmethod
    def failed(
        cls,
        now: float,
        ready_replicas: int,
        error: str,
        fault: Fault,
        ranges: Ranges | None = None,
    ) -> Observation:
        """An observation without any figure: the source failed (`error` says why)."""
        return cls(
            at=now,
            latency_ms=None,
            request_rate=None,
            samples=None,
            age_seconds=None,
            ready_replicas=ready_replicas,
            error=error,
            ranges=ranges,
            fault=fault,
        )

    @property
    def has_latency(self) -> bool:
        return (
            self.latency_ms is not None and math.isfinite(self.latency_ms) and self.latency_ms >= 0
        )

    @property
    def model_latency_ms(self) -> float | None:
        """The quantile that measures the model's error: `served_latency_ms` where the source
        tells it and something was served, else `latency_ms` (with nothing served there is
        no error to measure apart, and the whole quantile reads as before: every request
        refused is a breach at the top edge)."""
        served = self.served_latency_ms
        if served is not None and math.isfinite(served) and served >= 0:
            return served
        return self.latency_ms if self.has_latency else None

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
    predicted_latency_ms: float | None = None
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
