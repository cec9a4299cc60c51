"""The demo's scenario through the discrete-event simulator (`slo_operator.sim`).

Same spec, same measured profile, same seeded arrival times, same starting configuration,
the same decision core every `intervalSeconds`; the physical settings are the ones the real
run measured or used: replica start-up time, variant switch time, scrape interval. The
controller sees what the demo's metrics sources give it: the simulator's view also offers a
peak rate that neither `PrometheusSource` nor `DirectScrape` reports, so it is withheld.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from slo_operator.demo.scenario import Scenario
from slo_operator.sim.engine import SimSettings, Simulation, SimView, Trace
from slo_operator.sim.metrics import summarize
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.types import Observation, RuntimeConfig


class _AsMeasured:
    """The simulator's view, less what the real metrics sources do not report."""

    def __init__(self, view: SimView) -> None:
        self._view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)

    def observe(self, window_s: int, quantile: float, recent_s: int | None = None) -> Observation:
        obs = self._view.observe(window_s, quantile, recent_s)
        return dataclasses.replace(obs, peak_request_rate=None)


class DemoPolicy(LatencySLOPolicy):
    """The decision core, driven as the demo drives it."""

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        return super().act(t, _AsMeasured(view))  # type: ignore[arg-type]


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
    arrivals = wl.arrivals()
    route = wl.routing_draws(len(arrivals))
    spec = scenario.spec
    settings = SimSettings(
        startup_s=max(1, round(startup_s)),
        switch_s=max(0, round(switch_s)),
        scrape_s=max(1, scrape_s),
    )
    sim = Simulation(
        arrivals,
        route,
        math.ceil(wl.duration_s),
        scenario.profiles,
        scenario.initial,
        spec.target_latency_ms,
        settings,
        seed,
    )
    trace = sim.run(DemoPolicy(spec, scenario.profiles))
    metrics = summarize(
        trace,
        spec.quantile,
        spec.objective.window_seconds,
        spec.policy.interval_seconds,
        spec.variants.effective_preferred,
    )
    return metrics, trace
