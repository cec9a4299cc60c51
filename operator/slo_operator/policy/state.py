"""The controller's small memory, carried from one decision to the next (pure, JSON-safe)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ControllerState:
    """Everything `decide` remembers; the operator stores `to_dict()` in the object's status.

    Times are seconds on the caller's clock. A fresh state (`initial_state`, also what a
    restarted operator without a stored state uses) forbids scale-down and variant switches
    until one `scaleDownStabilizationSeconds` window of fresh data has been seen.
    """

    started_at: float
    fresh_since: float | None = None
    """Start of the current unbroken run of fresh observations (None: none yet)."""
    last_decision_at: float | None = None
    last_change_at: float | None = None
    """Last applied change of any knob; the correction factor learns only after a window."""
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    last_variant_change_at: float | None = None
    variant_in_force: str | None = None
    """The variant served since the last decision (for the quality-budget accounting)."""
    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, replicas needed) over the last stabilization window, oldest first."""
    needs: tuple[tuple[float, int], ...] = ()
    """(time, replicas) of the recommendations sized on the rate (not on the measured quantile)
    over the last QUIET_CARRY_WINDOWS stabilization windows: what a quiet spell carries over."""
    carried: tuple[float, int] | None = None
    """(time, replicas) the last quiet spell carried over into the stabilization window."""
    degraded: tuple[tuple[float, float], ...] = ()
    """(start, end) spans served off the preferred variant within the budget window."""
    correction: float = 1.0
    """Learned observed/predicted ratio of the latency quantile (multiplies the model)."""
    correction_samples: int = 0
    rates: tuple[tuple[float, float], ...] = ()
    """(time, sizing rate) of the last six trusted decisions, for the trends."""
    pending_up: tuple[float, int] | None = None
    """(time, replicas) of the last scale-up until that many replicas are ready."""
    startup_s: float | None = None
    """Learned seconds from a scale-up until its replicas are ready (None: not seen yet)."""
    last_p99: float | None = None
    """The previous trusted quantile (a modest breach must be seen twice)."""
    economy_since: float | None = None
    """Start of the current switch off the preferred variant made to save replicas
    (`qualityBudget.costShare`), None when the variant in force bridges or is preferred."""
    last_burst_at: float | None = None
    """The last trusted observation of bursty load (`economy.smooth`): a saving starts only
    after a stabilization window of smooth load."""
    ceiling_at: float | None = None
    """The last decision at which even `replicas.max` replicas of the preferred variant could
    not hold the aim at the rate sized for (learned correction)."""
    ceiling_rate: float | None = None
    """The highest such rate within a stabilization window of `ceiling_at`: the burst a
    variant must hold before it serves ahead of the next one."""
    peak_at: float | None = None
    peak_rate: float | None = None
    """The busiest rate sized for at a trusted decision (`peak_rate`, req/s) and when
    (`peak_at`); forgotten PEAK_MEMORY_S after it was set (`history.note_peak`): the burst a
    quiet spell parks a faster variant for (`hold.park_variant`)."""
    failed_restore: tuple[float, float, float] | None = None
    """(time, rate, observed/predicted ratio) of the last restore of the preferred variant
    that breached: the controller's measurement of what that variant really costs there."""
    profile_factors: tuple[tuple[str, float], ...] = ()
    """(variant, factor) last measured while that variant served alone: its batch time over
    the calibrated profile's (`slo_operator.policy.profiles`), sorted by variant."""
    feedback_at: float | None = None
    """The last decision whose replicas were sized on the measured quantile (step 5)."""
    saving_corrections: tuple[tuple[str, float], ...] = ()
    """(variant, correction) learned like `correction` while that cheaper variant served to
    save replicas (`qualityBudget.costShare`), sorted by variant: replicas sized for it use
    it, not the preferred variant's."""

    # ------------------------------------------------------------------------- helpers
    def degraded_seconds(self, now: float, window_s: float) -> float:
        """Seconds spent off the preferred variant within (now - window_s, now]."""
        lo = now - window_s
        return sum(max(0.0, min(end, now) - max(start, lo)) for start, end in self.degraded)

    def with_degraded_span(self, start: float, end: float, window_s: float) -> ControllerState:
        """Record [start, end] as degraded (merged with a touching span), prune old spans."""
        spans = [s for s in self.degraded if s[1] > end - window_s]
        if end > start:
            if spans and spans[-1][1] >= start - 1e-9:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return replace(self, degraded=tuple(spans))

    def with_profile_factors(self, measured: Mapping[str, float]) -> ControllerState:
        """These factors remembered (each replaces the variant's earlier one)."""
        if not measured:
            return self
        merged = {**dict(self.profile_factors), **dict(measured)}
        return replace(self, profile_factors=tuple(sorted(merged.items())))

    def correction_for(self, variant: str, preferred: str) -> float:
        """The correction replicas of `variant` are sized with: the one learned while it
        served to save replicas, else (and for the preferred variant) `correction`."""
        if variant == preferred:
            return self.correction
        return dict(self.saving_corrections).get(variant, self.correction)

    # ---------------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "startedAt": self.started_at,
            "freshSince": self.fresh_since,
            "lastDecisionAt": self.last_decision_at,
            "lastChangeAt": self.last_change_at,
            "lastScaleUpAt": self.last_scale_up_at,
            "lastScaleDownAt": self.last_scale_down_at,
            "lastVariantChangeAt": self.last_variant_change_at,
            "variantInForce": self.variant_in_force,
            "recommendations": [[t, n] for t, n in self.recommendations],
            "needs": [[t, n] for t, n in self.needs],
            "carried": None if self.carried is None else list(self.carried),
            "degraded": [[s, e] for s, e in self.degraded],
            "correction": self.correction,
            "correctionSamples": self.correction_samples,
            "rates": [[t, r] for t, r in self.rates],
            "pendingUp": None if self.pending_up is None else list(self.pending_up),
            "startupSeconds": self.startup_s,
            "lastP99": self.last_p99,
            "economySince": self.economy_since,
            "lastBurstAt": self.last_burst_at,
            "ceilingAt": self.ceiling_at,
            "ceilingRate": self.ceiling_rate,
            "peakAt": self.peak_at,
            "peakRate": self.peak_rate,
            "failedRestore": None if self.failed_restore is None else list(self.failed_restore),
            "profileFactors": {v: f for v, f in self.profile_factors},
            "savingCorrections": {v: c for v, c in self.saving_corrections},
            "feedbackAt": self.feedback_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControllerState:
        """Rebuild a state from `to_dict()`; raises ValueError naming the bad field."""

        def num(key: str, *, optional: bool = True) -> float | None:
            value = data.get(key)
            if value is None and optional:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"controller state: {key} must be a number, got {value!r}")
            if isinstance(value, int) and abs(value) > _MAX_NUMBER:  # float() would overflow
                raise ValueError(f"controller state: {key} is out of range")
            if not math.isfinite(value):
                raise ValueError(f"controller state: {key} must be finite")
            return float(value)

        version = data.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"controller state: version must be {STATE_VERSION}, got {version!r}")
        started = num("startedAt", optional=False)
        assert started is not None
        try:
            recs = tuple((float(t), int(n)) for t, n in data.get("recommendations", []))
            needs = tuple((float(t), int(n)) for t, n in data.get("needs", []))
            raw_carried = data.get("carried")
            carried = None if raw_carried is None else (float(raw_carried[0]), int(raw_carried[1]))
            degraded = tuple((float(s), float(e)) for s, e in data.get("degraded", []))
            rates = tuple((float(t), float(r)) for t, r in data.get("rates", []))
            raw_pending = data.get("pendingUp")
            pending = None if raw_pending is None else (float(raw_pending[0]), int(raw_pending[1]))
            raw_failed = data.get("failedRestore")
            failed = None if raw_failed is None else _triple(raw_failed)
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise ValueError(f"controller state: malformed list ({exc})") from exc
        lists = [("recommendations", recs), ("needs", needs), ("degraded", degraded)]
        lists += [("rates", rates), ("carried", (carried,) if carried else ())]
        for key, items in (*lists, ("failedRestore", (failed,) if failed else ())):
            if not all(math.isfinite(x) for item in items for x in item):
                raise ValueError(f"controller state: {key} must hold finite numbers")
        variant = data.get("variantInForce")
        if variant is not None and not isinstance(variant, str):
            raise ValueError("controller state: variantInForce must be a string or null")
        factors = _positive_map(data, "profileFactors")
        savings = _positive_map(data, "savingCorrections")
        correction = num("correction") or 1.0
        if correction <= 0:
            raise ValueError("controller state: correction must be > 0")
        return cls(
            started_at=started,
            fresh_since=num("freshSince"),
            last_decision_at=num("lastDecisionAt"),
            last_change_at=num("lastChangeAt"),
            last_scale_up_at=num("lastScaleUpAt"),
            last_scale_down_at=num("lastScaleDownAt"),
            last_variant_change_at=num("lastVariantChangeAt"),
            variant_in_force=variant,
            recommendations=recs,
            needs=needs,
            carried=carried,
            degraded=degraded,
            correction=correction,
            correction_samples=_count(data.get("correctionSamples", 0)),
            rates=rates,
            pending_up=pending,
            startup_s=num("startupSeconds"),
            last_p99=num("lastP99"),
            economy_since=num("economySince"),
            last_burst_at=num("lastBurstAt"),
            ceiling_at=num("ceilingAt"),
            ceiling_rate=num("ceilingRate"),
            peak_at=num("peakAt"),
            peak_rate=num("peakRate"),
            failed_restore=failed,
            profile_factors=factors,
            saving_corrections=savings,
            feedback_at=num("feedbackAt"),
        )


_MAX_NUMBER = 10**300
"""Larger integers are refused: float() of them overflows (a float tops out near 1.8e308)."""


def _positive_map(data: Mapping[str, Any], key: str) -> tuple[tuple[str, float], ...]:
    """The object at `key` ({variant: positive number}) as sorted pairs ({} when absent)."""
    raw = data.get(key) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"controller state: {key} must be an object")
    out: list[tuple[str, float]] = []
    for variant, value in sorted(raw.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"controller state: {key}.{variant} must be a number")
        if isinstance(value, int) and value > _MAX_NUMBER:
            raise ValueError(f"controller state: {key}.{variant} is out of range")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"controller state: {key}.{variant} must be > 0")
        out.append((str(variant), float(value)))
    return tuple(out)


def _triple(raw: Any) -> tuple[float, float, float]:
    if isinstance(raw, str | bytes) or len(raw) != 3:
        raise ValueError("failedRestore must be [time, rate, ratio]")
    return float(raw[0]), float(raw[1]), float(raw[2])


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"controller state: correctionSamples must be a number, got {value!r}")
    if not 0 <= value <= _MAX_NUMBER:  # exact for huge ints, False for NaN and infinities
        raise ValueError("controller state: correctionSamples must be a finite count >= 0")
    return int(value)


def initial_state(now: float) -> ControllerState:
    """The state of a controller that starts (or restarts without memory) at `now`."""
    return ControllerState(started_at=float(now))
