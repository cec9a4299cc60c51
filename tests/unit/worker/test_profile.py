"""The shipped demo profile (written by `latencyslo calibrate`) is what the policy reads."""

from __future__ import annotations

from pathlib import Path

import pytest

import slo_operator
from slo_operator.types import ProfileSet

PROFILE = Path(slo_operator.__file__).parent / "profiles" / "demo-cpu.json"


def test_demo_profile_loads_and_orders_the_variants() -> None:
    profiles = ProfileSet.load(PROFILE)
    assert set(profiles.variants) == {"full", "quantized", "distilled"}
    assert profiles.device == "cpu"
    assert profiles.threads == 1
    assert "calibrate" in profiles.source
    for name, p in profiles.variants.items():
        assert p.beta_ms > 0, name
        assert p.batch_ms(1) > 0, name
        assert p.accuracy is not None
        assert 0.5 < p.accuracy <= 1
        assert profiles.extra["fit"][name]["r2"] > 0.9
    v = profiles.variants
    for b in (1, 16):
        assert v["distilled"].batch_ms(b) < v["quantized"].batch_ms(b) < v["full"].batch_ms(b)


def test_demo_profile_orders_quality_and_keeps_every_run() -> None:
    profiles = ProfileSet.load(PROFILE)
    v = profiles.variants
    accuracy = {name: p.accuracy or 0.0 for name, p in v.items()}
    assert accuracy["full"] > accuracy["quantized"] > accuracy["distilled"]
    bt = profiles.batch_times
    assert bt is not None
    assert bt.batch_sizes == (1, 2, 4, 8, 16, 32)
    assert bt.tokens == profiles.extra["tokens"]
    for name, p in v.items():
        for b in bt.batch_sizes:
            assert len(bt.samples(name, b)) >= 30, (name, b)
        # the fitted line and the kept runs come from the same measurement
        assert p.batch_ms(16) == pytest.approx(bt.median(name, 16), rel=0.25), name


GPU_PROFILE = PROFILE.with_name("demo-gpu.json")


def test_gpu_profile_is_a_calibration_on_cuda_with_graphs() -> None:
    profiles = ProfileSet.load(GPU_PROFILE)
    assert set(profiles.variants) == {"full", "quantized", "distilled"}
    assert profiles.device == "cuda"
    assert "calibrate" in profiles.source
    assert profiles.extra["cuda_graphs"] is True
    bt = profiles.batch_times
    assert bt is not None
    v = profiles.variants
    for name, p in v.items():
        assert p.beta_ms > 0, name
        assert p.alpha_ms > 0, name
        assert profiles.extra["fit"][name]["r2"] > 0.9
        for b in bt.batch_sizes:
            assert len(bt.samples(name, b)) >= 30, (name, b)
        assert p.batch_ms(16) == pytest.approx(bt.median(name, 16), rel=0.25), name
    # on the GPU the fixed cost per batch is large: a batch of 32 costs under 8 batches of 1
    for name, p in v.items():
        assert p.batch_ms(32) < 8 * p.batch_ms(1), name
    for b in (1, 16):
        assert v["distilled"].batch_ms(b) < v["quantized"].batch_ms(b) < v["full"].batch_ms(b)
