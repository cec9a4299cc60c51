"""The demo's scenario through the discrete-event simulator (`slo_operator.sim`).

Same spec, same measured profile, same seeded arrival times (warm-up included, then scored
from t = 0 like the demo), same starting configuration, the same decision core every
`intervalSeconds`; the physical settings are the ones the real run measured or used:
replica start-up time, variant switch time, scrape interval.
"""

from __future__ import annotations

import math
from typing import Any

from slo_operator.demo.scenario import Scenario
from slo_operator.sim.engine import SimSettings, Simulation, Trace, slice_trace
from slo_operator.sim.metrics import summarize
from slo_operator.sim.policies import LatencySLOPolicy


def simulate(
    scenario: Scenario,
    *,
    startup_s: float,
    switch_s: float = 1.0,
    scrape_s: int = 1,
    seed: int = 0,
) -> tuple[dict[str, Any], Trace]:
    """Simulate the scenario; returns the simulator's figures and its trace."""
    wl = scenario.workload
    arrivals = scenario.arrivals()  # the very arrivals the demo sends, warm-up included
    route = wl.routing_draws(len(arrivals))
    warmup = round(scenario.warmup_s)
    spec = scenario.spec
    settings = SimSettings(
        startup_s=max(1, round(startup_s)),
        switch_s=max(0, round(switch_s)),
        scrape_s=max(1, scrape_s),
    )
    sim = Simulation(
        arrivals,
        route,
        math.ceil(scenario.scored_s) + warmup,
        scenario.profiles,
        scenario.initial,
        spec.target_latency_ms,
        settings,
        seed,
    )
    trace = slice_trace(sim.run(LatencySLOPolicy(spec, scenario.profiles)), warmup)
    metrics = summarize(
        trace,
        spec.quantile,
        spec.objective.window_seconds,
        spec.policy.interval_seconds,
        spec.variants.effective_preferred,
    )
    return metrics, trace
