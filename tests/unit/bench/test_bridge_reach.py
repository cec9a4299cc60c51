"""bench/bridge_reach.py: how large a step the fast knobs carry, from the controller's model."""

from __future__ import annotations

from types import ModuleType

import pytest

from slo_operator.model.queueing import predict
from slo_operator.sim.runner import default_spec
from slo_operator.types import ProfileSet, VariantProfile
from tests.unit.bench.scripts import load

SPEC = default_spec()  # 100 ms target, 0.8 headroom, maxBatchSize 32


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load("bridge_reach.py", "bridge_reach_bench")


def family(full: tuple[float, float], fast: tuple[float, float]) -> ProfileSet:
    v = {
        "full": VariantProfile(alpha_ms=full[0], beta_ms=full[1], accuracy=0.93),
        "quantized": VariantProfile(alpha_ms=fast[0], beta_ms=fast[1], accuracy=0.92),
        "distilled": VariantProfile(alpha_ms=fast[0], beta_ms=fast[1], accuracy=0.90),
    }
    return ProfileSet(variants=v, source="tests")


def test_the_rate_found_holds_the_latency_and_a_little_more_does_not(bench: ModuleType) -> None:
    profiles = family((3.25, 1.55), (1.08, 0.62))
    prof = profiles.variants["full"]
    rate = bench.rate_at(profiles, "full", SPEC, 80.0, 1.0)
    assert predict(prof, rate, 1, 0.0, 32, SPEC.quantile).latency_ms <= 80.0
    assert predict(prof, rate * 1.02, 1, 0.0, 32, SPEC.quantile).latency_ms > 80.0
    # a model twice too optimistic: half the latency budget, a lower rate
    assert bench.rate_at(profiles, "full", SPEC, 80.0, 2.0) < rate


def test_same_speed_variants_reach_only_the_headroom(bench: ModuleType) -> None:
    same = bench.reach(SPEC, family((3.25, 1.55), (3.25, 1.55)))
    assert 1.0 < same["reach"] < 1.5  # the aim's margin, nothing from the variants
    faster = bench.reach(SPEC, family((3.25, 1.55), (0.5, 0.3)))
    assert faster["reach"] > 3 * same["reach"]


def test_a_large_fixed_cost_per_batch_bounds_the_reach_by_the_per_request_cost(
    bench: ModuleType,
) -> None:
    """GPU-like: a batch of 32 costs about 4x a batch of one; no variant, at any batch size,
    serves more than 1 / beta_ms, so the reach stays small however the budget is spent."""
    out = bench.reach(SPEC, family((6.0, 0.6), (4.2, 0.5)))
    for row in out["variants"].values():
        assert row["rps_at_target"] <= row["rps_at_max_batch"] <= row["rps_any_batch"]
    assert out["reach"] < 2.0
