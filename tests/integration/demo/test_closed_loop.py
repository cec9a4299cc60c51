"""The closed loop, for real: the operator's controller holds the SLO through a x2 load step.

Real worker processes (the demo model, one torch thread each), a real Prometheus scraping
them, the operator's `ControlLoop` and policy acting through the `LocalActuator`, and the
demo's open-loop Poisson load: a warm-up at the starting rate, x2 a quarter of the way in,
then back to the starting rate (so the run scales up, and restores quality after bridging
with a cheaper variant). Judged on what the clients measured, not on what the controller saw:

- the 99th percentile of the recorded request latencies is back under the target within
  30 s of the step (the first 5-second bin after the breach whose requests met the
  objective; the simulator's stricter episode rule, three good bins in a row, is reported;
  a breach that starts 30 s or more after the step is another episode, not the step's);
- not one request failed, across scale-up, variant switches and scale-down;
- the controller never changed anything on missing, stale or untrusted data;
- the simulator, given the same scenario (spec, the worker's profile as measured in the run,
  the very same seeded arrivals, the measured start-up time), predicts the share of
  requests within the target (to ATTAINMENT_GAP_PP, below).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slo_local.demo.run import DemoOptions, run_demo
from slo_local.demo.scenario import build_scenario
from slo_local.demo.timeline import attainment_gap, untrusted_actions

pytestmark = [pytest.mark.slow, pytest.mark.prometheus, pytest.mark.timeout(300)]

DURATION_S, WARMUP_S, COOLDOWN_S = 60, 20, 75
RECOVERY_LIMIT_S = 30.0
ATTAINMENT_GAP_PP = 8.0
"""The simulator's share of requests within target may differ from the real run's by this
much. The aim is 2 points; on a two-core machine the real run loses a few points the
simulator cannot see (a starting replica, the load generator and Prometheus share the cores
with the serving replicas), measured at 0.6 to 5.2 points (docs/demo.md). The bound still
fails a model that has lost touch with the workers (a collapsing client showed 33 points)."""


async def test_the_slo_is_held_through_a_load_step(tmp_path: Path) -> None:
    scenario = build_scenario(
        duration_s=DURATION_S, warmup_s=WARMUP_S, cooldown_s=COOLDOWN_S
    )  # the demo's own SLO, profile and load sizing; x2 at 15 s, back at 60 s
    step = scenario.step_at()
    assert step == DURATION_S / 4
    result = await run_demo(scenario, DemoOptions(out_dir=tmp_path / "out", metrics="prometheus"))
    rec = result.recording
    summary = rec.summary()
    changes = rec.changes
    report = (
        f"summary {summary}\nsimulated {result.simulated}\nstart-up {result.startup_seconds}\n"
        f"decisions {json.dumps(result.details['decisions'], indent=1)}\n"
        f"warm-up decisions {result.details['warmup_decisions']}"
    )
    print(report)
    assert result.source == "prometheus"
    assert not result.interrupted

    # the step made the controller add a replica, and quality was restored after it bridged
    # with a cheaper variant. Neither the release of the second replica nor the variant at
    # the very end is asserted: the release waits until one replica is predicted to hold the
    # aim for a whole stabilization window, so it comes late in the cool-down or not at all,
    # and a single replica on a shared core has no slack for a stall: in one of four runs a
    # 138 ms p99 15 s after the release made the controller bridge again, rightly
    # (docs/demo.md). When a release comes, the no-failure check below covers it.
    assert any(s.after.replicas > s.before.replicas for s in changes), report
    switches = [s for s in changes if s.after.variant != s.before.variant]
    print(f"scale-downs: {[round(s.t) for s in changes if s.after.replicas < s.before.replicas]}")
    print(
        f"variant switches: {[(round(s.t), s.before.variant, s.after.variant) for s in switches]}"
    )
    bridged = [s.t for s in switches if s.t >= step and s.after.variant != "full"]
    if bridged:
        assert any(s.t > bridged[0] and s.after.variant == "full" for s in switches), report
    else:
        assert rec.ticks[-1].config.variant == "full", report

    # p99 of what the clients measured is back under the target within 30 s of the step. A
    # breach that only starts 30 s or more after the step is not the step's (one replica of
    # `full` can hold x2 on a quiet machine, and a later stall is another episode, judged by
    # the attainment below): on such a run the step caused no breach
    recovery = rec.recovery_after(step, good_in_a_row=1, within=RECOVERY_LIMIT_S)
    print(
        f"recovery after the step: {recovery} s (three good bins in a row: "
        f"{rec.recovery_after(step, within=RECOVERY_LIMIT_S)} s; any later breach counted: "
        f"{rec.recovery_after(step, good_in_a_row=1)} s)"
    )
    assert recovery is not None, report
    assert recovery <= RECOVERY_LIMIT_S, report

    # no request failed, through scale-up, variant switches and scale-down
    failed = [r for r in rec.requests if not r.ok]
    assert summary["failed_requests"] == 0, failed[:5]
    arrivals = scenario.arrivals()
    scored = (arrivals >= scenario.warmup_s) & (arrivals < scenario.warmup_s + scenario.scored_s)
    assert summary["requests"] == int(scored.sum())  # every request sent is recorded

    # nothing was changed on data the controller must not act on (warm-up included)
    assert untrusted_actions([*result.warmup_steps, *rec.steps]) == []

    # the simulator predicts the attainment of the real run
    assert result.simulated is not None
    gap = attainment_gap(
        summary["slo_attainment_requests"], result.simulated["slo_attainment_requests"]
    )
    print(
        f"attainment measured {summary['slo_attainment_requests']:.4f}, "
        f"simulated {result.simulated['slo_attainment_requests']:.4f}, gap {gap:.2f} pp"
    )
    assert gap <= ATTAINMENT_GAP_PP, report
