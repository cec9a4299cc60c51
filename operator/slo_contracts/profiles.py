"""Performance profiles: measured batch service time per model variant (profile JSON).

`latencyslo calibrate` (the worker side) writes a `ProfileSet` as JSON; the controller reads
it and predicts latency from it. The JSON layout is a contract (docs/contracts.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slo_contracts.batch_times import BatchTimes


@dataclass(frozen=True, slots=True)
class VariantProfile:
    """Measured service time of one variant: one batch of size b takes alpha + beta * b ms.

    `accuracy` is the held-out accuracy of the variant in [0, 1] (None when unknown), used to
    report the quality cost of serving it.
    """

    alpha_ms: float
    beta_ms: float
    accuracy: float | None = None

    def batch_ms(self, batch_size: float) -> float:
        return self.alpha_ms + self.beta_ms * batch_size


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """Profiles of every variant of a model, with where they were measured."""

    variants: Mapping[str, VariantProfile]
    device: str = "cpu"
    threads: int | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    batch_times: BatchTimes | None = None
    """Every timed run behind the fit, with its spread (optional; see batch_times.py)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "threads": self.threads,
            "source": self.source,
            "variants": {name: asdict(p) for name, p in self.variants.items()},
            **({"extra": dict(self.extra)} if self.extra else {}),
            **({"batch_times": self.batch_times.to_json()} if self.batch_times else {}),
        }

    def scaled(
        self, scale: Mapping[str, float], *, source: str, extra: Mapping[str, Any]
    ) -> ProfileSet:
        """These profiles with each variant's batch time (alpha and beta, and the measured
        runs) multiplied by its factor in `scale` (1 when absent); `extra` is added to this
        set's own."""
        variants = {
            name: VariantProfile(
                alpha_ms=p.alpha_ms * scale.get(name, 1.0),
                beta_ms=p.beta_ms * scale.get(name, 1.0),
                accuracy=p.accuracy,
            )
            for name, p in self.variants.items()
        }
        return ProfileSet(
            variants=variants,
            device=self.device,
            threads=self.threads,
            source=f"{self.source} {source}".strip(),
            extra={**dict(self.extra), **dict(extra)},
            batch_times=self.batch_times.scaled(scale) if self.batch_times else None,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProfileSet:
        variants = {
            name: VariantProfile(
                alpha_ms=float(v["alpha_ms"]),
                beta_ms=float(v["beta_ms"]),
                accuracy=None if v.get("accuracy") is None else float(v["accuracy"]),
            )
            for name, v in data["variants"].items()
        }
        return cls(
            variants=variants,
            device=str(data.get("device", "cpu")),
            threads=data.get("threads"),
            source=str(data.get("source", "")),
            extra=dict(data.get("extra", {})),
            batch_times=None
            if data.get("batch_times") is None
            else BatchTimes.from_json(data["batch_times"]),
        )

    @classmethod
    def load(cls, path: str | Path) -> ProfileSet:
        return cls.from_json(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
