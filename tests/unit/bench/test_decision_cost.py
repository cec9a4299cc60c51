"""bench/decision_cost.py: every controller step of a run is timed, and the step is put back."""

from __future__ import annotations

from slo_operator.policy import controller
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.runner import run_scenario
from tests.unit.bench.scripts import load


def test_every_step_is_timed_once_and_the_step_is_restored() -> None:
    cost = load("decision_cost.py", "decision_cost_under_test")
    before = controller.Controller.step
    spent, computed, memoized = cost.timed_steps("step", 1)
    assert controller.Controller.step is before
    profiles, source = load_profiles(None)
    run = run_scenario(
        "step", policies=["latencyslo"], profiles=profiles, seed=0, plant=measured_plant(source)
    ).runs["latencyslo"]
    assert len(spent) == len(run.controller.decisions)  # one timing per decision
    assert all(ms > 0 for ms in spent)
    assert computed > 0
    assert memoized > 0
    row = cost.summary([3.0, 1.0, 2.0, 10.0], 8, 2)
    assert (row["steps"], row["median_ms"], row["mean_ms"], row["p95_ms"]) == (4, 2.5, 4.0, 10.0)
    assert (row["predictions_computed_per_step"], row["predictions_memoized_per_step"]) == (2, 0.5)
