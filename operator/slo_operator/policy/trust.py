"""Trust: may the controller act on an observation? One rule for the controller, the status
report (SLOMet, the attainment ledger) and the demo's log (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from slo_operator.policy.params import ControllerParams
from slo_operator.types import Fault, Observation


@dataclass(frozen=True, slots=True)
class Trust:
    """What an observation may be used for."""

    latency: bool
    """The quantile may be acted on (fresh, enough traffic, samples in the window)."""
    rate: bool
    """The request rate may be acted on (it may add replicas even without a quantile)."""
    fresh: bool
    """Recent data without an error (low traffic included): it counts toward the run of
    fresh data that scale-down and variant switches wait for after a start or an outage."""
    why: str = ""
    """Why the latency is not trusted ("" when it is)."""
    fault: Fault | None = None
    """The metrics fault behind it, when the data itself is missing, failed or stale."""

    @property
    def quiet(self) -> bool:
        """Fresh data without a fault whose quantile is not trusted: traffic below
        minRequestRate (the load is known to be light, not unknown)."""
        return self.fresh and self.fault is None and not self.latency


def assess(params: ControllerParams, obs: Observation) -> Trust:
    """Trust in `obs` under `params` (staleness limit, minRequestRate)."""
    age = obs.age_seconds
    known_age = age is not None and math.isfinite(age)
    fresh = not obs.error and age is not None and known_age and age <= params.stale_after_s
    if obs.error:
        fault = obs.fault or Fault.NO_DATA
        return Trust(False, False, False, f"metrics unavailable ({obs.error})", fault)
    if not known_age:
        return Trust(False, False, False, "metrics age unknown", Fault.NO_DATA)
    assert age is not None
    if age > params.stale_after_s:
        return Trust(False, False, False, f"metrics stale ({age:.0f}s old)", Fault.STALE)
    if not obs.has_rate:
        return Trust(False, False, fresh, "no request rate", Fault.NO_DATA)
    assert obs.request_rate is not None
    floor = params.spec.objective.min_request_rate
    if obs.request_rate < floor or obs.request_rate <= 0:
        why = f"low traffic ({obs.request_rate:.2f} req/s < minRequestRate {floor:g})"
        return Trust(False, False, fresh, why)
    if not obs.has_latency:
        return Trust(False, True, fresh, "no latency quantile (NaN or missing)", Fault.NO_DATA)
    if obs.samples is not None and (not math.isfinite(obs.samples) or obs.samples < 1):
        return Trust(False, True, fresh, "no samples in the window", Fault.NO_DATA)
    return Trust(True, True, fresh)


def served_nothing(params: ControllerParams, obs: Observation, span_s: float) -> bool:
    """`obs` shows that no request completed in the last `span_s` seconds: a range that
    covers them measured a rate of zero. Only fresh data shows it (`Trust.fresh`; the caller
    asks that first: missing, failed or stale data shows nothing)."""
    ranges = obs.ranges or params.ranges
    measured = ((obs.recent_request_rate, ranges.recent_s), (obs.request_rate, ranges.window_s))
    return any(rate == 0.0 and span_s <= range_s for rate, range_s in measured)
