"""The ports of the control loop, in one place: what `slo_operator.loop.ControlLoop` is given.

| port | operator | local demo | tests |
| --- | --- | --- | --- |
| `MetricsSource` | `metrics.prometheus.PrometheusSource` | the same, or `slo_local.scrape.DirectScrape` | fakes fed from a simulated plant |
| `Actuator` | `actuate.kubernetes.KubernetesActuator` | `slo_local.actuator.LocalActuator` | fakes |
| `StateStore` | `actuate.store.KubernetesStateStore` | none | in-memory |
| `Recorder` | `opmetrics.OperatorMetrics` | none | `OperatorMetrics` |

Failures cross a port as data or as the exceptions of `slo_operator.errors`, never as text to
parse.
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from slo_operator.policy.trust import Trust
from slo_operator.spec import LatencySLOSpec, LatencySLOStatus
from slo_operator.types import ApplyResult, Decision, Observation, Ranges, RuntimeConfig


@runtime_checkable
class MetricsSource(Protocol):
    """Where observations come from."""

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        """The objective's figures as of `now` (epoch seconds), all evaluated at that instant,
        over `ranges` (None: `slo_operator.policy.default_ranges(spec)`). Never raises: a
        failure is an observation with `error` and `fault` set."""
        ...


@runtime_checkable
class Actuator(Protocol):
    """Reads and applies the runtime configuration."""

    async def read(self) -> tuple[RuntimeConfig, int]:
        """The configuration in force and the number of ready replicas; raises
        `errors.TargetNotFoundError` or another `errors.ActuationError`."""
        ...

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        """Write `target` (absolute values); each knob's outcome is in the result. Raises
        `errors.ActuationError` only when nothing could be attempted."""
        ...


class StateStore(Protocol):
    """Where status and controller memory are persisted (the LatencySLO object)."""

    async def save(
        self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None
    ) -> None:
        """Write the memory (when given), then the status (when given); raises
        `errors.StoreError`."""
        ...


class Recorder(Protocol):
    """Operator metrics sink."""

    def record_step(
        self,
        namespace: str,
        name: str,
        *,
        spec: LatencySLOSpec | None,
        status: LatencySLOStatus,
        decision: Decision | None,
        trust: Trust | None = None,
        duration_s: float,
    ) -> None:
        """One step: the status it reported, the controller's decision (None: none taken) and
        its trust in the observation the decision was taken on (None: no observation)."""
        ...
