"""A x4 step's first look sees a quantile far above the target and sizes replicas on it at
the 4x clamp, up to `replicas.max`; with a large `replicas.max` those replicas must not be
held for a whole stabilization window once the load has settled and the fleet holds the
aim (`feedback.feedback_refuted`)."""

from __future__ import annotations

import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.sweep import INITIAL_UTILIZATION, fleet_start, prepare
from slo_operator.sim.workloads import STEP_AT_S
from slo_operator.spec import LatencySLOSpec

SPEC = LatencySLOSpec.model_validate({
    "targetRef": {"name": "simulated"},
    "objective": {"latencyMs": 100},
    "replicas": {"min": 1, "max": 64},
})  # fmt: skip


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_the_replicas_a_step_ordered_on_the_quantile_are_released_once_it_settles() -> None:
    """Before the rule: 64 replicas from the step (300 s) to 615 s, then one fewer each
    interval (46,534 replica-seconds on seed 0; about seven hold the target)."""
    profiles, _ = default_profiles()
    prep = prepare("step4", spec=SPEC, profiles=profiles, settings=SimSettings(),
                   plant=measured_plant(MEASURED_PROFILE), seed=0)  # fmt: skip
    start = fleet_start(SPEC, prep.calibration("full"), prep.first_minute_rps, INITIAL_UTILIZATION)
    trace = prep.simulate(LatencySLOPolicy(SPEC, profiles), start)
    step = prep.warmup_s + int(STEP_AT_S)
    assert trace.desired[step + 30 : step + 60].max() == 64  # the clamp ordered replicas.max
    assert trace.desired[step + 240] <= 16  # released within four minutes, not held
    assert prep.score(trace)["violating_windows"] <= 4
