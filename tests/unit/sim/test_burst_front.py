"""A burst's front is not a fall: the shipped trace reversed in time brings, after a quiet
quarter of an hour, a burst of about 850 req/s onto six or seven replicas of `full`."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.runner import default_spec
from slo_operator.sim.sweep import INITIAL_UTILIZATION, fleet_start, prepare
from slo_operator.sim.workloads import SHIPPED_TRACE, load_trace
from tests.unit.bench.scripts import load


def _reversed(path: Path) -> Path:
    """The shipped trace reversed in time, as `bench/retime_trace.py --reverse` writes it."""
    retime = load("retime_trace.py", "retime_trace_burst_front")
    stamps, _, _ = load_trace(SHIPPED_TRACE)
    assert stamps is not None
    retime.write_trace(path, retime.retimed(stamps, True, None, 0))
    return path


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_the_first_breach_of_a_burst_front_is_bridged_at_once(tmp_path: Path) -> None:
    """When the burst arrives the peak's 10 s range already holds it, the recent rate (15 s)
    part of it and the window's rate (60 s) little: the recent rate is 20 % below the rate
    sized for (the peak), the old test of a load that has "fallen", but above the window's.
    The first decision that measures the breach must bridge; read as a fall, it kept `full`
    ("the load has fallen to 412 req/s, which full holds") and the bridge came a look later,
    on a backlog already four windows deep."""
    spec = default_spec()
    profiles, _ = default_profiles()
    prep = prepare("trace", spec=spec, profiles=profiles, settings=SimSettings(),
                   plant=measured_plant(MEASURED_PROFILE), seed=0,
                   trace_file=_reversed(tmp_path / "reversed.csv"), trace_load=1.0)  # fmt: skip
    cal = prep.calibration(spec.variants.effective_preferred)
    policy = LatencySLOPolicy(spec, profiles)
    prep.simulate(policy, fleet_start(spec, cal, prep.first_minute_rps, INITIAL_UTILIZATION))
    quiet_until = 2_500  # the last burst before the quiet spell ends before this (seed 0)
    breaches = [
        (t, d) for t, d in policy.decisions
        if t > quiet_until and f"> {spec.target_latency_ms:.0f}ms target" in d.reason
    ]  # fmt: skip
    assert breaches, "the late burst was expected to breach on the fleet of the quiet spell"
    t, first = breaches[0]
    assert first.target.variant != "full", (t, first.reason)
    assert "fallen" not in first.reason
