"""The product's claim on the x2 step, end to end in the simulator (one seed; the full
comparison with 5 seeds is bench/simulate_all.py)."""

from __future__ import annotations

import numpy as np
import pytest

from slo_operator.model.profiles import REFERENCE_PROFILES
from slo_operator.sim.runner import run_scenario
from slo_operator.sim.workloads import STEP_AT_S


@pytest.mark.slow
def test_step_is_bridged_by_the_fast_knobs_before_new_replicas_are_ready() -> None:
    result = run_scenario(
        "step", policies=["latencyslo", "keda"], profiles=REFERENCE_PROFILES, seed=0
    )
    ours, keda = result.runs["latencyslo"], result.runs["keda"]
    m = ours.metrics
    # the controller sees the step only at its next interval (15 s, worst-case phase): with
    # this profile 2x overflows the queues meanwhile, hence 98 % and not 99 % here
    assert m["slo_attainment_requests"] >= 0.98
    assert 0 < m["recovery_seconds"] <= 30
    step = int(STEP_AT_S)
    recovered = step + int(m["recovery_seconds"])
    # no new replica was ready before the p99 was back under the target
    assert np.all(ours.trace.ready[step:recovered] == ours.trace.ready[step - 1])
    assert m["variant_switches"] >= 1
    # and a replica-only autoscaler does worse on the same arrivals
    assert keda.metrics["recovery_seconds"] > m["recovery_seconds"]
    assert keda.metrics["slo_attainment_requests"] < m["slo_attainment_requests"]
