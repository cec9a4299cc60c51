"""The demo's scenario through the discrete-event simulator (`slo_operator.sim`).

Same spec, same seeded arrival times (warm-up included, then scored from t = 0 like the
demo), same starting configuration, the same decision core every `intervalSeconds`; the
physical settings are the ones the real run measured or used: replica start-up time,
variant switch time, scrape interval, and the worker's profile as measured in the run.

Why the in-run profile: `latencyslo calibrate` times back-to-back batches on an otherwise
idle core. Serving in the demo (HTTP on the same core, a busy neighbour core, sparse
batches) the same batches take longer; each worker exports the time of every batch
(`inference_batch_duration_seconds`), and the controller scales the calibrated profile to it
at every step (`scale_profiles`). `run_scale` summarises those factors over the run (the
median per variant, from the steps where that variant served alone), and the simulation uses
the calibrated profile scaled by them: the worker's measured profile, not the idle-core one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from slo_local.demo.scenario import Scenario
from slo_operator.sim.engine import SimSettings, Simulation, Trace, slice_trace
from slo_operator.sim.metrics import summarize
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.runner import worker_settings
from slo_operator.types import ProfileSet


def run_scale(
    measured: Mapping[str, Sequence[float]], variants: Mapping[str, object]
) -> dict[str, float]:
    """One factor per variant: the median of its measured factors; a variant never measured
    alone gets the median of all the measurements (1.0 when there were none)."""
    medians = {v: statistics.median(f) for v, f in measured.items() if f and v in variants}
    everything = [x for v, f in measured.items() if v in variants for x in f]
    fallback = statistics.median(everything) if everything else 1.0
    return {v: medians.get(v, fallback) for v in variants}


def scaled_profiles(profiles: ProfileSet, scale: Mapping[str, float]) -> ProfileSet:
    """`profiles` with each variant's batch time (alpha and beta) multiplied by its factor."""
    return profiles.scaled(
        scale, source="scaled to the run's measurements", extra={"scale": dict(scale)}
    )


def with_overhead(profiles: ProfileSet, overhead_ms: float) -> ProfileSet:
    """`profiles` with `overhead_ms` more per request (beta): the worker's CPU per request
    outside the model's batches (HTTP, JSON), which takes the same core as the batches and
    which the batch times do not contain (measured in the run, `slo_local.demo.probe`)."""
    if not overhead_ms > 0:
        return profiles
    variants = {
        name: replace(p, beta_ms=p.beta_ms + overhead_ms) for name, p in profiles.variants.items()
    }
    return replace(
        profiles,
        variants=variants,
        source=f"{profiles.source} + {overhead_ms:.2f} ms per request".strip(),
        batch_times=None,
    )


def simulate(
    scenario: Scenario,
    *,
    startup_s: float,
    switch_s: float = 1.0,
    scrape_s: int = 1,
    seed: int = 0,
    profiles: ProfileSet | None = None,
    policy: Any = None,
    controller_profiles: ProfileSet | None = None,
) -> tuple[dict[str, Any], Trace]:
    """Simulate the scenario (with `profiles` instead of the scenario's own when given, and
    `policy`, a simulator controller, instead of latencyslo's); returns the simulator's
    figures and its trace. latencyslo's simulated controller predicts with
    `controller_profiles` (default: `profiles`), what the real one learned in the run."""
    profiles = profiles or scenario.profiles
    wl = scenario.workload
    arrivals = scenario.arrivals()  # the very arrivals the demo sends, warm-up included
    route = wl.routing_draws(len(arrivals))
    warmup = round(scenario.warmup_s)
    spec = scenario.spec
    settings = worker_settings(  # the spec's queue wait limit, as the real workers run it
        spec,
        SimSettings(
            startup_s=max(1, round(startup_s)),
            switch_s=max(0, round(switch_s)),
            scrape_s=max(1, scrape_s),
        ),
    )
    sim = Simulation(
        arrivals,
        route,
        math.ceil(scenario.scored_s) + warmup,
        profiles,
        scenario.initial,
        spec.target_latency_ms,
        settings,
        seed,
    )
    controller = policy or LatencySLOPolicy(spec, controller_profiles or profiles)
    trace = slice_trace(sim.run(controller), warmup)
    metrics = summarize(
        trace,
        spec.quantile,
        spec.objective.window_seconds,
        spec.policy.interval_seconds,
        spec.variants.effective_preferred,
    )
    return metrics, trace
