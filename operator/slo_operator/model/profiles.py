"""The fallback performance profile of the demo model (pure constants).

Until the worker's measured profile (`slo_operator/profiles/demo-cpu.json`, written by
`latencyslo calibrate`) ships, the simulator falls back on these REFERENCE figures: the
demo model family at 2 torch threads, 16 tokens, batch 1 and batch 16 (full ~4.8/28 ms,
int8 quantized ~2.7/16 ms, distilled ~1.7/11 ms; held-out accuracy 87.6/86.3/87.1 %),
fitted to `alpha + beta * b` through those two points. They are reference numbers from the
project's plan, not a measurement of this machine.
"""

from __future__ import annotations

from slo_operator.types import ProfileSet, VariantProfile


def two_point_profile(
    ms_at_1: float, ms_at_16: float, accuracy: float | None = None
) -> VariantProfile:
    """The line through (1, ms_at_1) and (16, ms_at_16)."""
    beta = (ms_at_16 - ms_at_1) / 15.0
    return VariantProfile(alpha_ms=ms_at_1 - beta, beta_ms=beta, accuracy=accuracy)


REFERENCE_PROFILES = ProfileSet(
    variants={
        "full": two_point_profile(4.8, 28.0, 0.876),
        "quantized": two_point_profile(2.7, 16.0, 0.863),
        "distilled": two_point_profile(1.7, 11.0, 0.871),
    },
    device="cpu",
    threads=2,
    source="reference figures of the demo model (2 threads, 16 tokens); not measured here",
)
