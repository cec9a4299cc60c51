"""Idle services: no traffic at all, then a minute of bursts that a few replicas hold, every
four minutes; a night without traffic between two busy spells; cron-like bursts with a
trickle between them. The lulls (below `minRequestRate`) must not hold a fleet the bursts
never needed, nor the evening's fleet until the morning; a trickle must neither teach the
model a tail its few requests cannot measure nor release the fleet the next burst needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.runner import default_spec
from slo_operator.sim.sweep import INITIAL_UTILIZATION, fleet_start, prepare
from slo_operator.sim.trace import Trace

BURST_RPS = 200.0  # about 3.2 replicas of `full` at the target on the shipped profile
PERIOD_S, BURST_S, HOUR_S = 240, 60, 3600


def _write(path: Path, rps: np.ndarray) -> Path:
    path.write_text("t_seconds,rps\n" + "".join(f"{s},{r:g}\n" for s, r in enumerate(rps)))
    return path


def _idle_bursts(path: Path) -> Path:
    t = np.arange(HOUR_S)
    return _write(path, np.where(t % PERIOD_S >= PERIOD_S - BURST_S, BURST_RPS, 0.0))


def _simulate(trace_file: Path) -> tuple[dict, Trace, float]:
    """Ours on the trace file (seed 0): its figures, the run (warm-up included), capacity."""
    spec = default_spec()
    profiles, _ = default_profiles()
    plant = measured_plant(MEASURED_PROFILE)
    prep = prepare("trace", spec=spec, profiles=profiles, settings=SimSettings(), plant=plant,
                   seed=0, trace_file=trace_file)  # fmt: skip
    cal = prep.calibration(spec.variants.effective_preferred)
    start = fleet_start(spec, cal, prep.first_minute_rps, INITIAL_UTILIZATION)
    trace = prep.simulate(LatencySLOPolicy(spec, profiles), start)
    return prep.score(trace), trace, cal.capacity_rps


def _run(trace_file: Path) -> tuple[dict, np.ndarray, float]:
    """Ours on the trace file (seed 0): its figures, ready replicas per second, capacity."""
    metrics, trace, capacity = _simulate(trace_file)
    return metrics, np.asarray(trace.ready, float), capacity


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_lulls_between_bursts_do_not_hold_a_fleet_the_bursts_never_needed(
    tmp_path: Path,
) -> None:
    """The first burst, out of idle, measures a quantile the model cannot explain at the rate
    the window still shows (a fifth of the burst's): fed back at the 4x clamp, it orders
    `replicas.max`. Each lull used to record the fleet in force as a recommendation, and the
    lulls come more often than the stabilization window: sixteen replicas for the hour where
    four hold every burst (54,809 replica-seconds on seed 0). A lull now carries over what the
    rate asked for, and the fleet comes down to the bursts' own size within the hour."""
    metrics, ready, capacity = _run(_idle_bursts(tmp_path / "idle_bursts.csv"))
    last_half_hour = ready[-HOUR_S // 2 :]
    need = BURST_RPS / capacity
    assert last_half_hour.max() <= need + 2, last_half_hour.max()  # the aim's margin, no more
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_a_night_without_traffic_returns_the_fleet_to_replicas_min(tmp_path: Path) -> None:
    """300 req/s for 15 minutes, two hours of nothing, 300 req/s again: the six replicas of
    the evening were held all night (53,994 replica-seconds on seeds 0-1). After an hour of
    quiet they go, one per interval, to replicas.min, and the morning is still served."""
    t = np.arange(9_000)
    night = (t >= 900) & (t < 8_100)
    metrics, ready, _ = _run(_write(tmp_path / "overnight.csv", np.where(night, 0.0, 300.0)))
    warmup = len(ready) - len(t)
    late_night = ready[warmup + 6_000 : warmup + 8_100]
    assert late_night.max() == default_spec().replicas.min, late_night.max()
    assert ready[warmup + 2_000 : warmup + 4_000].min() > 1  # the first hour still holds
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_cron_bursts_over_a_trickle_meet_their_fleet(tmp_path: Path) -> None:
    """300 req/s for two minutes every ten, 2 req/s between (trusted traffic, no quiet
    spell). The trickle's quantile (on about 120 requests, the service time's spread) taught
    the model a 2.2x error that then sized every burst: 38,450 replica-seconds on seeds 0-1,
    97.45 % within target; on seed 0 the second burst met one replica. Not learned from, the
    fleet was released within every eight-minute lull and each burst met one replica (89.7 %).
    Now a lull carries over what the bursts asked for: each burst after the first meets its
    fleet, for under half the cost (seed 0: 40,092 -> 16,004 replica-seconds)."""
    t = np.arange(HOUR_S)
    burst = t % 600 >= 480
    metrics, ready, capacity = _run(_write(tmp_path / "cron.csv", np.where(burst, 300.0, 2.0)))
    warmup = len(ready) - len(t)
    need = 300.0 / capacity
    before_bursts = [warmup + s for s in range(1_050, HOUR_S, 600)]  # after the first: 30 s
    fleets = [ready[s] for s in before_bursts]
    assert min(fleets) >= 0.8 * need, fleets  # the rate's own sizing; one replica before
    assert ready[warmup:].mean() <= 2 * need, ready[warmup:].mean()  # 10.6 before
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_a_restore_that_breached_at_a_burst_is_not_retried_blind_at_the_next(
    tmp_path: Path,
) -> None:
    """750 req/s for a minute every four, nothing between (about twelve replicas of `full`
    on the plant, nine by the model). Each burst met nine replicas with `full` restored at
    its front, breached, and was bridged before the model could learn its error, until the
    quality budget was spent (seed 0: nine at the third and the fourth). A breach after a
    restore on bursty load, at the rate and on the fleet the restore saw, is now a failed
    restore: what it measured sizes the fleet the next bursts meet."""
    t = np.arange(HOUR_S)
    rps = 3.75 * BURST_RPS
    trace = _write(tmp_path / "bursts.csv", np.where(t % PERIOD_S >= PERIOD_S - BURST_S, rps, 0.0))
    metrics, ready, capacity = _run(trace)
    warmup = len(ready) - len(t)
    fronts = [warmup + s for s in range(PERIOD_S - BURST_S + 2 * PERIOD_S, HOUR_S, PERIOD_S)]
    fleets = [ready[s] for s in fronts]  # from the third burst on
    assert min(fleets) >= rps / capacity, fleets  # nine at the third and fourth before
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_idle_spells_do_not_spend_the_quality_budget(tmp_path: Path) -> None:
    """1,500 req/s for 30 s every five minutes, nothing between: beyond what `replicas.max`
    (16) of `full` holds, within what 16 of `quantized` hold, so every burst needs a faster
    variant. After a burst beyond the ceiling a faster variant is held for the next one
    (docs/policy.md, "Ceiling"); while that hold was booked through the idle spells, the
    12-minute budget was spent by the fourth burst and the later ones breached on `full`
    (seed 0: 94.9 % of requests within target, 49 violating windows). Time in which no
    request completes is not booked now: every burst from the second on meets the faster
    variant, and the time it served requests stays within `maxDegradedFraction`, measured
    by the simulator (seconds in which a variant other than `full` completed requests)."""
    t = np.arange(HOUR_S)
    burst_s, period_s, rps = 30, 300, 1500.0
    trace_file = _write(tmp_path / "beyond.csv", np.where(t % period_s < burst_s, rps, 0.0))
    metrics, trace, _ = _simulate(trace_file)
    warmup = len(trace.ready) - len(t)
    full = trace.variant_names.index("full")
    fronts = [warmup + s + 1 for s in range(period_s, HOUR_S, period_s)]  # from the second on
    assert all(trace.variant[s] != full for s in fronts), [trace.variant[s] for s in fronts]
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]
    assert 0.0 < metrics["degraded_fraction"] <= 0.2, metrics["degraded_fraction"]
