"""A target near the service time's own tail: the replicas needed are then very sensitive
to the rate (the quantile barely moves with the replicas), and stationary load must still
bring no more changes than the issue's G6 allows (4 replica changes and 2 variant switches
an hour)."""

from __future__ import annotations

from typing import Any

import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.sweep import prepare, run_ours
from slo_operator.spec import LatencySLOSpec

G6_REPLICA_CHANGES = 4
G6_VARIANT_SWITCHES = 2


def _spec(latency_ms: float) -> LatencySLOSpec:
    return LatencySLOSpec.model_validate({
        "targetRef": {"name": "simulated"},
        "objective": {"latencyMs": latency_ms},
        "replicas": {"min": 1, "max": 16},
    })  # fmt: skip


def _steady_hour(latency_ms: float, seed: int) -> tuple[dict[str, Any], float]:
    """Ours' figures on the simulator's `steady` workload at `latencyMs`, and its hours."""
    profiles, _ = default_profiles()
    prep = prepare("steady", spec=_spec(latency_ms), profiles=profiles, settings=SimSettings(),
                   plant=measured_plant(MEASURED_PROFILE), seed=seed)  # fmt: skip
    return run_ours(prep), (prep.duration - prep.warmup_s) / 3600.0


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
@pytest.mark.parametrize(("latency_ms", "seed"), [(50.0, 0), (55.0, 0), (65.0, 0)])
def test_stationary_load_at_a_tight_target_does_not_flap(latency_ms: float, seed: int) -> None:
    """At 50 ms (the shipped CPU profile's `full` p99 alone is about 35-40 ms) the rates sized
    for, read every 15 s from overlapping one-minute windows, wander by a few percent; read as
    a calm fall, they released a replica that the aim ordered back minutes later (21 replica
    changes in the hour on seed 0 at 50 ms, 12 at 65 ms). A fall must exceed the Poisson noise
    of the window's rate (`history.trend_floor`). At 55 ms the sized rate's wander (the
    recent rate 2 standard deviations over the window's) added a sixth replica that a "fall"
    released a minute later, three times (6 changes): no shortened scale-down within a
    stabilization window of a scale-up."""
    m, hours = _steady_hour(latency_ms, seed)
    assert m["replica_changes"] / hours <= G6_REPLICA_CHANGES, m["replica_changes"]
    assert m["violating_windows"] == 0


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_stationary_load_where_replicas_max_is_at_the_edge_keeps_its_variant() -> None:
    """At 45 ms sixteen replicas of `full` hold the target but sit at the aim's edge: the
    rate they "did not hold" lately was this load's own noise, and `full` was switched out
    ahead of a burst that never came, 6 times in the hour on seed 1 (G6 allows 2). On
    smooth load a variant is degraded above the target only."""
    m, hours = _steady_hour(45.0, seed=1)
    assert m["variant_switches"] / hours <= G6_VARIANT_SWITCHES, m["variant_switches"]
    assert m["violating_windows"] == 0
