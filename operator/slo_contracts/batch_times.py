"""Measured batch service times with their spread: every timed run, not only a median.

`latencyslo calibrate` times each variant `repeats` times at a few batch sizes and keeps every
run, in the order it was measured. The profile's `alpha_ms + beta_ms * b` is the controller's
mean model; these samples are what the worker really did (spread, drift and the occasional
stall of a shared machine), so a simulator can draw service times from them instead.

JSON (the profile's `batch_times` field, see docs/contracts.md):

```json
{"tokens": 16, "batch_sizes": [1, 2, 4, 8, 16, 32],
 "ms": {"full": [[13.9, 14.2, ...], [22.0, ...], ...], "distilled": [...]}}
```

`ms[variant][i]` holds every timed run (milliseconds) at `batch_sizes[i]`.

Pure: standard library only.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STALL_FACTOR = 2.0
"""A run is a stall when it takes more than this many times the median at its batch size."""


class BatchTimesError(ValueError):
    """Invalid `batch_times` JSON; the message names the field."""


@dataclass(frozen=True, slots=True)
class BatchTimes:
    """Every measured batch service time (ms) per variant and batch size."""

    batch_sizes: tuple[int, ...]
    ms: Mapping[str, tuple[tuple[float, ...], ...]]
    tokens: int | None = None

    def __post_init__(self) -> None:
        sizes = self.batch_sizes
        if not sizes:
            raise BatchTimesError("batch_times.batch_sizes: must not be empty")
        if any(not isinstance(b, int) or b < 1 for b in sizes) or list(sizes) != sorted(set(sizes)):
            raise BatchTimesError(
                "batch_times.batch_sizes: must be distinct positive integers in increasing order"
            )
        for name, rows in self.ms.items():
            if len(rows) != len(sizes):
                raise BatchTimesError(
                    f"batch_times.ms.{name}: needs one list per batch size ({len(sizes)}), "
                    f"got {len(rows)}"
                )
            for i, row in enumerate(rows):
                if not row or any(not math.isfinite(x) or x <= 0 for x in row):
                    raise BatchTimesError(
                        f"batch_times.ms.{name}[{i}]: must be a non-empty list of positive times"
                    )

    def samples(self, variant: str, batch_size: int) -> tuple[float, ...]:
        """Every run measured at exactly `batch_size` (KeyError when it was not measured)."""
        try:
            return self.ms[variant][self.batch_sizes.index(batch_size)]
        except ValueError:
            raise KeyError(f"batch size {batch_size} was not measured") from None

    def median(self, variant: str, batch_size: int) -> float:
        return statistics.median(self.samples(variant, batch_size))

    def stall_fraction(self, variant: str, factor: float = STALL_FACTOR) -> float:
        """Share of all runs of `variant` that took more than `factor` x their size's median."""
        rows = self.ms[variant]
        stalls = sum(sum(x > factor * statistics.median(r) for x in r) for r in rows)
        return stalls / sum(len(r) for r in rows)

    def typical_ms(self, variant: str, batch_size: float) -> float:
        """The median batch time at `batch_size`: linear between the measured sizes, extended
        along the last two above them, the smallest size's below them."""
        sizes = self.batch_sizes
        meds = [statistics.median(r) for r in self.ms[variant]]
        if len(sizes) == 1 or batch_size <= sizes[0]:
            return meds[0]
        i = min(bisect.bisect_left(sizes, batch_size), len(sizes) - 1)
        b0, b1, t0, t1 = sizes[i - 1], sizes[i], meds[i - 1], meds[i]
        return max(t0 + (t1 - t0) * (batch_size - b0) / (b1 - b0), meds[0])

    def draw(self, variant: str, batch_size: int, rng: random.Random) -> float:
        """One service time for a batch of `batch_size`: a run picked at random from the
        nearest measured size, scaled by the ratio of the typical times of the two sizes (the
        run itself when the size was measured). Spread and stalls come with the run."""
        sizes = self.batch_sizes
        i = min(range(len(sizes)), key=lambda k: (abs(sizes[k] - batch_size), sizes[k]))
        run = rng.choice(self.ms[variant][i])
        if sizes[i] == batch_size:
            return run
        return run * self.typical_ms(variant, batch_size) / self.typical_ms(variant, sizes[i])

    def scaled(self, scale: Mapping[str, float]) -> BatchTimes:
        """Every run of a variant multiplied by its factor in `scale` (1 when absent)."""
        return BatchTimes(
            batch_sizes=self.batch_sizes,
            ms={
                name: tuple(tuple(x * scale.get(name, 1.0) for x in r) for r in rows)
                for name, rows in self.ms.items()
            },
            tokens=self.tokens,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "batch_sizes": list(self.batch_sizes),
            "ms": {name: [list(r) for r in rows] for name, rows in self.ms.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> BatchTimes:
        if not isinstance(data, Mapping):
            raise BatchTimesError("batch_times: must be an object")
        sizes = data.get("batch_sizes")
        ms = data.get("ms")
        tokens = data.get("tokens")
        if not isinstance(sizes, Sequence) or isinstance(sizes, str):
            raise BatchTimesError("batch_times.batch_sizes: must be a list of integers")
        if not isinstance(ms, Mapping) or not ms:
            raise BatchTimesError("batch_times.ms: must map each variant to its runs")
        if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
            raise BatchTimesError("batch_times.tokens: must be a positive integer or null")
        rows: dict[str, tuple[tuple[float, ...], ...]] = {}
        for name, value in ms.items():
            if not isinstance(value, Sequence) or any(
                not isinstance(r, Sequence) or isinstance(r, str) for r in value
            ):
                raise BatchTimesError(f"batch_times.ms.{name}: must be a list of lists of ms")
            try:
                rows[str(name)] = tuple(tuple(float(x) for x in r) for r in value)
            except (TypeError, ValueError):
                raise BatchTimesError(f"batch_times.ms.{name}: times must be numbers") from None
        return cls(batch_sizes=tuple(sizes), ms=rows, tokens=tokens)
