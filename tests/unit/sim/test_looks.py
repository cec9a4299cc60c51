"""Looks between steps in the simulator, as the operator's daemon takes them: on a x4 step the
controller steps before its next interval, and a stationary load brings nothing forward."""

from __future__ import annotations

from slo_operator.model.profiles import REFERENCE_PROFILES
from slo_operator.policy import OperatorLimits
from slo_operator.sim.engine import SimSettings
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.runner import default_spec
from slo_operator.sim.sweep import INITIAL_UTILIZATION, fleet_start, prepare
from slo_operator.sim.workloads import STEP_AT_S

SPEC = default_spec()


def _run(name: str, look_s: float) -> tuple[list[int], dict[str, float]]:
    prep = prepare(name, spec=SPEC, profiles=REFERENCE_PROFILES, settings=SimSettings(),
                   plant=None, seed=0)  # fmt: skip
    start = fleet_start(SPEC, prep.calibration("full"), prep.first_minute_rps, INITIAL_UTILIZATION)
    limits = OperatorLimits(scrape_interval_s=SimSettings().scrape_s, look_interval_s=look_s)
    policy = LatencySLOPolicy(SPEC, prep.profiles, limits=limits)
    trace = prep.simulate(policy, start)
    return [t - prep.warmup_s for t, _ in policy.decisions], prep.score(trace)


def test_a_look_brings_the_step_after_a_x4_step_forward() -> None:
    looked, with_looks = _run("step4", 5.0)
    waited, without = _run("step4", 0.0)
    at = int(STEP_AT_S)
    interval = SPEC.policy.interval_seconds
    first_with = min(t for t in looked if t > at)
    first_without = min(t for t in waited if t > at)
    assert first_without % interval == 0  # without looks, only at the interval
    assert first_with % interval != 0  # a look found the breach between two steps
    assert first_with < first_without
    assert with_looks["slo_attainment_requests"] > without["slo_attainment_requests"]


def test_stationary_load_brings_no_step_forward() -> None:
    looked, _ = _run("steady", 5.0)
    interval = SPEC.policy.interval_seconds
    assert all(t % interval == 0 for t in looked)
    assert len(looked) == len(set(looked)) >= 3600 // interval  # one step per interval
