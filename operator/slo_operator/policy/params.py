"""The controller's parameters: one frozen object per LatencySLO, the one source of every range,
bound and limit that the controller, the metrics sources and the simulator use.

```python
params = ControllerParams.build(spec, OperatorLimits(max_replicas=32, max_data_age_s=60))
```

`spec` is the LatencySLO's spec; `OperatorLimits` is what the operator-wide settings add (the
hard replica cap, the staleness limit, the scrape interval the ranges assume). The spec kept in
the parameters is the *effective* one: `replicas.max` already clamped to the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from slo_operator.spec import LatencySLOSpec, ReplicaBounds
from slo_operator.types import Ranges, RuntimeConfig

DEFAULT_SCRAPE_INTERVAL_S = 15.0
"""The Prometheus scrape interval the operator's ranges assume (Prometheus' usual 15 s)."""
DEFAULT_LOOK_INTERVAL_S = 5.0
"""Seconds between two looks at the metrics between steps (`Controller.urgent`)."""
MIN_PEAK_RANGE_S = 10
"""The shortest range of the peak's short rates (shorter rates are mostly noise)."""


def default_ranges(
    spec: LatencySLOSpec, scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
) -> Ranges:
    """The measurement ranges for `spec` when data is scraped every `scrape_interval_s`.

    A rate needs two scrapes in its range: the recent rate spans one interval and at least two
    scrapes, the peak's short rates at least two scrapes and `MIN_PEAK_RANGE_S`; none is
    longer than the window. The peak's subquery steps half its range."""
    window = int(spec.objective.window_seconds)
    two_scrapes = round(2 * scrape_interval_s)
    recent = min(window, max(int(spec.policy.interval_seconds), two_scrapes))
    peak = min(window, max(MIN_PEAK_RANGE_S, two_scrapes))
    return Ranges(window_s=window, recent_s=recent, peak_s=peak, peak_step_s=max(1, peak // 2))


@dataclass(frozen=True, slots=True)
class OperatorLimits:
    """The operator-wide part of the parameters (settings, never a field of a LatencySLO)."""

    max_replicas: int | None = None
    """Hard cap on replicas (`--max-replicas`): the spec's replicas.max is clamped to it."""
    max_data_age_s: float | None = None
    """Newest sample older than this -> stale (`--max-data-age`); None: two intervals, and
    never less than 30 s."""
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
    """How often the metrics are scraped (sets the shortest usable rate ranges)."""
    look_interval_s: float = DEFAULT_LOOK_INTERVAL_S
    """Seconds between two looks at the metrics between steps (0: no looks)."""


@dataclass(frozen=True, slots=True)
class ControllerParams:
    """Everything the controller is told, derived once from the spec and the limits."""

    spec: LatencySLOSpec
    """The effective spec (replicas.max clamped to the operator's cap)."""
    ranges: Ranges
    stale_after_s: float
    """Data older than this is stale: not trusted, and it breaks the run of fresh data."""
    gap_s: float
    """A pause between two decisions longer than this (a restart, an outage) resets trust;
    a change recorded as pending longer ago than this expires instead of being replayed."""
    limits: OperatorLimits

    @classmethod
    def build(cls, spec: LatencySLOSpec, limits: OperatorLimits | None = None) -> ControllerParams:
        limits = limits or OperatorLimits()
        interval = float(spec.policy.interval_seconds)
        stale = limits.max_data_age_s
        return cls(
            spec=_capped(spec, limits.max_replicas),
            ranges=default_ranges(spec, limits.scrape_interval_s),
            stale_after_s=stale if stale is not None else max(30.0, 2.0 * interval),
            gap_s=max(60.0, 3.0 * interval),
            limits=limits,
        )

    @property
    def look_s(self) -> float | None:
        """Seconds between two looks between steps: never shorter than the scrape interval
        (nothing new to see); None when looks are off or would be no shorter than a step."""
        look = self.limits.look_interval_s
        if look <= 0:
            return None
        look = max(look, self.limits.scrape_interval_s)
        return look if look < self.spec.policy.interval_seconds else None

    @property
    def pending_expiry_s(self) -> float:
        """A change recorded as pending longer ago than this is dropped, not replayed."""
        return self.gap_s

    def bounded(self, config: RuntimeConfig) -> RuntimeConfig:
        """The nearest configuration inside the bounds (user intent beats every rule)."""
        spec = self.spec
        return RuntimeConfig(
            replicas=min(max(config.replicas, spec.replicas.min), spec.replicas.max),
            batch_window_ms=min(
                max(config.batch_window_ms, spec.batching.min_window_ms),
                spec.batching.max_window_ms,
            ),
            max_batch_size=spec.batching.max_batch_size,
            variant=(  # a variant above the preferred one is slower: off the ladder too
                config.variant
                if config.variant in spec.variants.ladder
                else spec.variants.effective_preferred
            ),
            # None where the spec leaves it to the workers: then neither written nor compared
            max_queue_wait_ms=spec.batching.max_queue_wait_ms,
        )


def _capped(spec: LatencySLOSpec, cap: int | None) -> LatencySLOSpec:
    if cap is None or spec.replicas.max <= cap:
        return spec
    bounds = ReplicaBounds(min=min(spec.replicas.min, cap), max=cap)
    return spec.model_copy(update={"replicas": bounds})
