"""The queueing model predicts what the simulator measures (the online correction factor
only has to absorb the rest)."""

from __future__ import annotations

import numpy as np
import pytest

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.model import histogram_quantile, max_throughput_rps, predict
from slo_operator.model.profiles import REFERENCE_PROFILES
from slo_operator.sim.engine import SimSettings, Simulation
from slo_operator.types import RuntimeConfig
from tests.unit.sim.helpers import Hold, poisson


@pytest.mark.parametrize("variant", ["full", "distilled"])
@pytest.mark.parametrize("window", [0, 5])
@pytest.mark.parametrize("load", [0.3, 0.6, 0.85])
@pytest.mark.parametrize("replicas", [1, 3])
def test_model_within_25_percent_of_the_simulator(
    variant: str, window: int, load: float, replicas: int
) -> None:
    prof = REFERENCE_PROFILES.variants[variant]
    rate = load * max_throughput_rps(prof, 32) * replicas
    seconds = 60
    arrivals = poisson(rate, seconds, seed=11)
    sim = Simulation(
        arrivals,
        np.random.default_rng(12).random(len(arrivals)),
        seconds,
        REFERENCE_PROFILES,
        RuntimeConfig(replicas, window, 32, variant),
        100.0,
        SimSettings(queue_limit=1 << 20),
    )
    trace = sim.run(Hold())
    measured = histogram_quantile(0.99, LATENCY_BUCKETS_MS, trace.hist[5:].sum(0).tolist())
    predicted = predict(prof, rate, replicas, window, 32).latency_ms
    assert predicted == pytest.approx(measured, rel=0.25)
