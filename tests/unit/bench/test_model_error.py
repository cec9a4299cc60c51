"""bench/pareto.py's prediction error: the learned profile factor read from the run's batches."""

from __future__ import annotations

from types import ModuleType

import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.profiles import default_profiles
from tests.unit.bench.scripts import load


@pytest.fixture(scope="module")
def pareto() -> ModuleType:
    return load("pareto.py", "pareto_bench_model_error")


def test_on_the_models_own_plant_the_learned_factor_is_one(pareto: ModuleType) -> None:
    """Batches drawn from the profile's own line (5 % jitter): the factor the controller
    learns from them is 1 within the jitter, and the fitted prediction is the model's."""
    profiles, _ = default_profiles()
    rows = pareto.prediction_error(profiles, None, SimSettings(), loads=(0.3,))
    assert {r["variant"] for r in rows} == set(profiles.variants)
    for r in rows:
        assert r["fitted_factor"] == pytest.approx(1.0, abs=0.05)
        assert r["fitted_p99_ms"] == pytest.approx(r["predicted_p99_ms"], rel=0.1)
