"""Learning the per-variant profile factors: the calibrated profiles scaled to the batch times
the workers measure while serving (pure).

The calibrated `ProfileSet` says how long one batch of size b takes per variant
(`alpha + beta * b`), measured on an idle machine. Serving, the same batches take longer (HTTP
on the same cores, busy neighbours, sparse batches). An observation may carry the mean batch
service time per variant and the mean batch size over the window (`BatchMeasurement`); each
measured variant's alpha and beta are scaled by measured / predicted (at the measured mean
batch size), clamped to `SCALE_LIMITS`.

Variants without traffic keep the factor last measured for them while they served alone (a
fast variant's factor says little about a slow one's: a fixed per-batch cost weighs more on a
short batch, so borrowing it can keep the preferred variant from ever being restored after a
bridge; and the batch-size histogram has no variant label, so only a window served by one
variant gives that variant's own mean batch size); variants never measured alone take the
median factor of the measured ones (same hardware, same contention). For the same reason a
window served by several variants (a bridge, a restore) keeps each variant's factor measured
alone where there is one: its mean batch size mixes both variants' batches (a bridge's short
batches and the breach's long ones), and a factor read against it would take a backlog's
batch time for the preferred variant's and order replicas for it. Those remembered factors
are part of the controller's state (`ControllerState.profile_factors`), so a restart keeps them.
A window with no measurement (no batch served, or one whose quantile the controller does not
act on: traffic below minRequestRate, stale or missing data) predicts with the remembered
factors; without any, the calibrated profiles are used as they are.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from slo_operator.types import BatchMeasurement, ProfileSet

SCALE_LIMITS = (0.2, 5.0)


@dataclass(frozen=True, slots=True)
class ProfileFit:
    """The profiles one step predicts with, and where their factors came from."""

    profiles: ProfileSet
    scale: Mapping[str, float]
    """The factor applied to each variant (empty: the calibrated profiles as they are)."""
    measured_alone: Mapping[str, float]
    """The factor of the one variant that served alone in the window (empty otherwise)."""


def measured_factors(
    baseline: ProfileSet,
    measurement: BatchMeasurement,
    limits: tuple[float, float] = SCALE_LIMITS,
) -> dict[str, float]:
    """measured / predicted batch time per measured variant, clamped to `limits`."""
    size = measurement.mean_batch_size
    if size is None or not math.isfinite(size) or size <= 0:
        return {}
    factors: dict[str, float] = {}
    for variant, measured in measurement.batch_ms_by_variant.items():
        profile = baseline.variants.get(variant)
        if profile is None or not math.isfinite(measured) or measured <= 0:
            continue
        predicted = profile.batch_ms(size)
        if predicted <= 0:
            continue
        factors[variant] = min(max(measured / predicted, limits[0]), limits[1])
    return factors


def fit_profiles(
    baseline: ProfileSet,
    measurement: BatchMeasurement | None,
    remembered: Mapping[str, float],
) -> ProfileFit:
    """The profiles for this step (see module docs)."""
    factors = measured_factors(baseline, measurement) if measurement is not None else {}
    if not factors:  # nothing measured now: what each variant was last measured at alone
        if not remembered:
            return ProfileFit(baseline, {}, {})
        median = statistics.median(remembered.values())
        return _fit(baseline, {name: remembered.get(name, median) for name in baseline.variants})
    median = statistics.median(factors.values())
    # one variant measured: its own factor first; several (one mean batch size for all of
    # them): what each measured alone first
    first, then = (factors, remembered) if len(factors) == 1 else (remembered, factors)
    scale = {name: first.get(name, then.get(name, median)) for name in baseline.variants}
    return _fit(baseline, scale, dict(factors) if len(factors) == 1 else {})


def _fit(
    baseline: ProfileSet, scale: dict[str, float], alone: dict[str, float] | None = None
) -> ProfileFit:
    return ProfileFit(
        profiles=baseline.scaled(
            scale, source="scaled to measured batch times", extra={"scale": dict(scale)}
        ),
        scale=scale,
        measured_alone=alone or {},
    )


def scale_profiles(
    baseline: ProfileSet,
    batch_ms_by_variant: Mapping[str, float],
    mean_batch_size: float | None,
    *,
    remembered: Mapping[str, float] | None = None,
) -> ProfileSet | None:
    """`fit_profiles` as a plain function: the scaled profiles, or None when nothing is
    measured or remembered."""
    fit = fit_profiles(
        baseline, BatchMeasurement(dict(batch_ms_by_variant), mean_batch_size), remembered or {}
    )
    return fit.profiles if fit.scale else None
