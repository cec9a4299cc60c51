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
