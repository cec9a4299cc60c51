"""Random valid LatencySLOs in the closed loop: what must always hold, and what looks wrong.

    python bench/spec_fuzz.py --specs 60 --json bench/results/spec_fuzz.json [--profile F]

Each spec (a seed of its own; every field drawn within its CRD limits: percentiles 90-99.9,
targets 40 ms-1 s, one to three variants, a preferred one or not, budgets of 0-100 % over
1 minute to 4 hours, `costShare`, intervals 5-120 s, dwells, cooldowns and stabilization
windows from 0) runs ours and a fixed fleet (`static`, sized for the run's peak) on `step`,
`bursty` and `ramp` (seed = spec index mod 3; the plant measured from `--profile`, by
default the shipped CPU profile). Reported:

- **broken** (must never happen): an exception; a replica count ordered outside
  `replicas.min..max`; a variant served that is not allowed, or above the preferred one on
  the ladder; more time off the preferred variant within any `windowMinutes` than the
  budget plus one interval and one variant switch (`check`).
- **looks wrong** (to read, not a failure: many specs are infeasible by design, a
  `replicas.max` too small for the load): more than 6 variant switches an hour, or a share
  of requests within target under the objective's percentile where the fixed fleet's is
  not.

Prints both lists and writes every run to `--json`.
"""

from __future__ import annotations

import argparse
import json
import random
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.metrics import off_preferred
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.runner import run_scenario
from slo_operator.sim.trace import Trace
from slo_operator.spec import LatencySLOSpec

WORKLOADS = ("step", "bursty", "ramp")
VARIANTS = ["full", "quantized", "distilled"]
SWITCHES_PER_HOUR = 6


def random_spec(rng: random.Random) -> dict[str, Any]:
    """A LatencySLO spec (camelCase, as applied), every field within the CRD's limits."""
    k = rng.choice([1, 2, 3, 3, 3])
    if rng.random() < 0.7:
        allowed = VARIANTS[:k]
    else:
        allowed = sorted(rng.sample(VARIANTS, k), key=VARIANTS.index)
    lo = rng.choice([0, 1, 1, 1, 2, 3])
    min_window = rng.choice([0, 0, 5, 10])
    variants: dict[str, Any] = {
        "allowed": allowed,
        "qualityBudget": {
            "maxDegradedFraction": rng.choice([0, 0.02, 0.1, 0.2, 0.5, 1.0]),
            "windowMinutes": rng.choice([1, 5, 15, 60, 240]),
            "costShare": rng.choice([0, 0, 0.5, 1]),
        },
    }
    if rng.random() < 0.3:
        variants["preferred"] = rng.choice(allowed)
    return {
        "targetRef": {"name": "fuzzed"},
        "objective": {
            "percentile": rng.choice([90, 95, 99, 99, 99.9]),
            "latencyMs": rng.choice([40, 60, 100, 150, 300, 1000]),
            "windowSeconds": rng.choice([15, 30, 60, 60, 120, 300]),
            "minRequestRate": rng.choice([0, 0.5, 1, 5]),
        },
        "replicas": {"min": lo, "max": max(lo, 1) + rng.choice([0, 1, 3, 7, 15, 31])},
        "batching": {
            "minWindowMs": min_window,
            "maxWindowMs": max(min_window, rng.choice([0, 10, 50, 100])),
            "maxBatchSize": rng.choice([1, 8, 32, 64]),
        },
        "variants": variants,
        "policy": {
            "headroom": rng.choice([0.6, 0.8, 0.85, 1.0]),
            "intervalSeconds": rng.choice([5, 10, 15, 30, 60, 120]),
            "scaleUpCooldownSeconds": rng.choice([0, 15, 30, 120]),
            "scaleDownStabilizationSeconds": rng.choice([0, 60, 300, 900]),
            "variantMinDwellSeconds": rng.choice([0, 30, 120, 600]),
        },
    }


def check(spec: LatencySLOSpec, trace: Trace, settings: SimSettings) -> list[str]:
    """What a run broke of what must always hold (empty: nothing)."""
    broken = []
    lo, hi = spec.replicas.min, spec.replicas.max
    desired = np.asarray(trace.desired)
    if desired.size and (desired.min() < lo or desired.max() > hi):
        broken.append(f"replicas {desired.min()}..{desired.max()} outside {lo}..{hi}")
    ladder = spec.variants.ladder
    pref = spec.variants.effective_preferred
    served = {trace.variant_names[int(v)] for v in np.unique(np.asarray(trace.variant))}
    outside = sorted(v for v in served if v not in ladder)
    if outside:
        broken.append(f"served {', '.join(outside)}: not on the ladder {ladder}")
    off = off_preferred(trace, pref)
    budget = spec.variants.quality_budget
    window = budget.window_minutes * 60
    allowed = budget.max_degraded_fraction * window
    slack = spec.policy.interval_seconds + settings.switch_s + 1
    used = np.concatenate(([0], np.cumsum(off)))
    span = min(window, len(off))
    worst = int((used[span:] - used[:-span]).max()) if span else 0
    if worst > allowed + slack:
        broken.append(f"{worst} s off {pref} within {window} s: budget {allowed:g} s")
    return broken


def one(job: tuple[int, str, str | None]) -> dict[str, Any]:
    """Spec `index` on `workload` (with the profile at `profile`, None: the shipped one):
    ours and the fixed fleet, and what was broken."""
    index, workload, profile = job
    raw = random_spec(random.Random(index))
    row: dict[str, Any] = {"spec_index": index, "workload": workload, "spec": raw}
    try:
        spec = LatencySLOSpec.model_validate(raw)
        profiles, source = load_profiles(profile)
        settings = SimSettings()
        result = run_scenario(
            workload, policies=["latencyslo", "static"], spec=spec, profiles=profiles,
            settings=settings, seed=index % 3, plant=measured_plant(source),
        )  # fmt: skip
        ours, fixed = result.runs["latencyslo"], result.runs["static"]
        hours = len(ours.trace.variant) / 3600.0
        row.update(
            broken=check(spec, ours.trace, settings),
            within=ours.metrics["slo_attainment_requests"],
            static_within=fixed.metrics["slo_attainment_requests"],
            replica_seconds=ours.metrics["replica_seconds"],
            static_replica_seconds=fixed.metrics["replica_seconds"],
            switches_per_hour=ours.metrics["variant_switches"] / max(hours, 1e-9),
            replica_changes=ours.metrics["replica_changes"],
        )
    except Exception:  # an exception is a finding, reported with its spec
        row.update(broken=["exception: " + traceback.format_exc(limit=3)])
    return row


def looks_wrong(row: dict[str, Any]) -> list[str]:
    notes = []
    if row.get("switches_per_hour", 0.0) > SWITCHES_PER_HOUR:
        notes.append(f"{row['switches_per_hour']:.0f} variant switches/h")
    share = row["spec"]["objective"]["percentile"] / 100.0
    if row.get("within", 1.0) < share <= row.get("static_within", 0.0):
        notes.append(
            f"within {100 * row['within']:.2f} %, under the objective's {100 * share:g} %, "
            f"where the fixed fleet has {100 * row['static_within']:.2f} %"
        )
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", type=int, default=60)
    ap.add_argument("--first", type=int, default=0, help="index of the first spec")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--profile", default=None, help="ProfileSet JSON [default: the shipped one]")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    first, last = args.first, args.first + args.specs
    jobs = [(i, w, args.profile) for i in range(first, last) for w in WORKLOADS]
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        rows = list(ex.map(one, jobs))
    broken = [r for r in rows if r["broken"]]
    odd = [(r, looks_wrong(r)) for r in rows if not r["broken"] and looks_wrong(r)]
    print(f"{len(rows)} runs ({args.specs} specs x {', '.join(WORKLOADS)}): "
          f"{len(broken)} broke an invariant, {len(odd)} look wrong")  # fmt: skip
    for r in broken:
        print(f"BROKEN spec {r['spec_index']} on {r['workload']}: {'; '.join(r['broken'])}")
    for r, notes in odd:
        print(f"looks wrong: spec {r['spec_index']} on {r['workload']}: {'; '.join(notes)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": rows}, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
