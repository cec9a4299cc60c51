"""The simulated worker's batch service times: what the worker really does, not the model.

The controller predicts with a line, `alpha_ms + beta_ms * b` per variant. The plant the
simulator runs instead draws every batch's time from measurements:

- the median time of each batch size, as `latencyslo calibrate` measured it (the profile's
  `extra.median_ms`, one entry per batch size 1..N; the fitted line is off it by up to 15 %
  on the shipped profile), the line only beyond the measured sizes;
- times a draw from the measured spread: the ratio of a timed batch to the median of its
  batch size (`BatchSpread`), which carries the right-skewed spread and the occasional
  stall of a real worker on a real machine. A size's draws pool its own samples with those of
the nearest measured sizes until there are at least `MIN_POOL` (the spread does not depend
on the size measurably, and a tail read from 60 samples is one sample wide).

`BatchSpread` comes from the profile's own `batch_times` (every run `latencyslo calibrate`
timed, docs/contracts.md) when it has them, else from a JSON document `{"ratios": {VARIANT:
{SIZE: [ratio, ...]}}}` (what `bench/batch_spread.py` writes; the shipped
`sim/data/batch_spread_cpu.json`). A batch
size without its own samples takes the nearest measured size's; a variant without samples
takes the pooled samples of the others.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slo_contracts.batch_times import BatchTimes
from slo_operator.types import ProfileSet

DEFAULT_SPREAD = Path(__file__).resolve().parent / "data" / "batch_spread_cpu.json"
MIN_POOL = 200


@dataclass(frozen=True)
class BatchSpread:
    """Measured batch time over the median of the same variant and batch size."""

    ratios: Mapping[str, Mapping[int, tuple[float, ...]]]
    source: str = ""

    def __post_init__(self) -> None:
        if not self.ratios:
            raise ValueError("batch spread: no variant has samples")
        for variant, per in self.ratios.items():
            if not per:
                raise ValueError(f"batch spread: variant {variant!r} has no batch size")
            for size, rs in per.items():
                if size < 1 or not rs or any(not (r > 0 and math.isfinite(r)) for r in rs):
                    raise ValueError(
                        f"batch spread: {variant!r} size {size}: ratios must be positive"
                    )

    def samples(self, variant: str, size: int) -> tuple[float, ...]:
        """The ratios for a batch of `size` of `variant` (sorted)."""
        per = self.ratios.get(variant)
        if per is None:  # pooled over the variants measured, size by size
            pooled: dict[int, list[float]] = {}
            for other in self.ratios.values():
                for s, rs in other.items():
                    pooled.setdefault(s, []).extend(rs)
            per = {s: tuple(v) for s, v in pooled.items()}
        pooled_here: list[float] = []
        for s in sorted(per, key=lambda s: (abs(s - size), s)):
            pooled_here.extend(per[s])
            if len(pooled_here) >= MIN_POOL:
                break
        return tuple(sorted(pooled_here))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], source: str = "") -> BatchSpread:
        raw = doc.get("ratios")
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source or 'batch spread'}: needs a 'ratios' object")
        ratios = {
            str(v): {int(s): tuple(float(x) for x in rs) for s, rs in per.items()}
            for v, per in raw.items()
        }
        return cls(ratios, source)

    @classmethod
    def from_batch_times(cls, times: BatchTimes, source: str = "") -> BatchSpread:
        """Every run over the median of its variant and size."""
        ratios: dict[str, dict[int, tuple[float, ...]]] = {}
        for variant in times.ms:
            per: dict[int, tuple[float, ...]] = {}
            for size in times.batch_sizes:
                runs = times.samples(variant, size)
                med = times.median(variant, size)
                per[size] = tuple(r / med for r in runs)
            ratios[variant] = per
        return cls(ratios, source)

    @classmethod
    def load(cls, path: str | Path) -> BatchSpread:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable batch-spread JSON ({exc})") from exc
        return cls.from_document(doc, str(path))


@dataclass(frozen=True)
class Plant:
    """Batch service times of the simulated worker: medians per size and a spread."""

    medians_ms: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Per variant, the measured median of batch sizes 1..N (index 0 is size 1)."""
    spread: BatchSpread | None = None
    source: str = ""

    def median_ms(self, variant: str, size: int, profiles: ProfileSet) -> float:
        """The median time of one batch: measured where it was, the line beyond."""
        med = self.medians_ms.get(variant)
        if med is not None and 1 <= size <= len(med):
            return float(med[size - 1])
        prof = profiles.variants[variant]
        line = prof.alpha_ms + prof.beta_ms * size
        if med:  # beyond the measured sizes: the line, continued from the last median
            n = len(med)
            return float(med[-1]) + prof.beta_ms * (size - n) if size > n else line
        return line

    def ratio_table(self, variant: str, max_batch: int) -> list[tuple[float, ...]]:
        """Per batch size 0..max_batch, the ratios to draw from ((1.0,) without a spread)."""
        if self.spread is None:
            return [(1.0,)] * (max_batch + 1)
        return [(1.0,)] + [self.spread.samples(variant, b) for b in range(1, max_batch + 1)]


def profile_medians(path: str | Path) -> dict[str, tuple[float, ...]]:
    """The per-size medians `latencyslo calibrate` stores in a profile's `extra` (if any)."""
    doc = json.loads(Path(path).read_text())
    extra = doc.get("extra") or {}
    sizes: Sequence[int] = extra.get("batch_sizes") or []
    medians: Mapping[str, Sequence[float]] = extra.get("median_ms") or {}
    out: dict[str, tuple[float, ...]] = {}
    for variant, values in medians.items():
        # only a contiguous 1..N series maps to sizes by position
        if list(sizes) == list(range(1, len(values) + 1)):
            out[variant] = tuple(float(v) for v in values)
    return out


def measured_plant(profile_path: str | Path | None, spread_path: str | Path | None = None) -> Plant:
    """The plant from a profile file's medians and a measured spread: `spread_path` when
    given, else the profile's own `batch_times`, else the shipped spread."""
    medians = profile_medians(profile_path) if profile_path else {}
    times = ProfileSet.load(profile_path).batch_times if profile_path else None
    if spread_path is not None:
        spread = BatchSpread.load(spread_path)
    elif times is not None:
        spread = BatchSpread.from_batch_times(times, f"{profile_path} (batch_times)")
    else:
        spread = BatchSpread.load(DEFAULT_SPREAD)
    if times is not None and not medians:  # the medians of the measured sizes, interpolated
        top = max(times.batch_sizes)
        medians = {v: tuple(times.typical_ms(v, b) for b in range(1, top + 1)) for v in times.ms}
    parts = []
    if medians:
        parts.append(f"per-size medians of {profile_path}")
    if spread is not None:
        parts.append(f"spread of {spread.source}")
    return Plant(medians, spread, "; ".join(parts) or "the profile's line")
