"""A controller's figures on one trace at many timings: the trace shifted as a loop.

    python bench/trace_timings.py --json bench/results/trace_timings.json \
        [--trace-file F ...] [--step 400] [--loads 1,3] [--seeds 1] [--policy latencyslo]
        [--slo FILE] [--queue-limit 256] [--max-queue-wait-ms 0]

One trace's figures owe something to where its bursts fall against the controller's own
clock: the warm-up, the stabilization windows, the quality budget's hour. Each trace
(default: the shipped one and its re-timed copies in `bench/results/traces/`) is played from
every multiple of `--step` seconds as a loop (`retime_trace.py --shift`), rescaled to each
of `--loads` times one replica's measured capacity, and simulated for each policy
(`latencyslo simulate --scenario trace --trace-file ... --target-mean-rps ... [--slo FILE]
[--queue-limit N] [--max-queue-wait-ms MS]`, at its settings). `--policy variant-oracle`
adds the oracle of `bench/pareto.py`: the cheapest plan found, knowing the arrivals, that
meets the SLO with the same quality budget, start-up and `replicas.max` (what foresight
reaches on each timing; a search of a dozen runs or more). Printed and written: the figures
of every run, and per policy and load their mean, their worst, and how many runs meet G1 on
real traces (98 % of requests within target).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from retime_trace import loop_period, offsets, shifted, write_trace  # a sibling script

from slo_operator.sim.cli import load_spec
from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import Plant, measured_plant
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.runner import default_spec, run_scenario, worker_settings
from slo_operator.sim.sweep import prepare, run_oracle
from slo_operator.sim.workloads import SHIPPED_TRACE, load_trace
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet

RETIMED = Path(__file__).resolve().parent / "results" / "traces"
G1_TRACES = 0.98
FIGURES = ("slo_attainment_requests", "violating_windows", "replica_seconds", "accuracy")
VARIANT_ORACLE = "variant-oracle"


def _spec(path: Path | None) -> LatencySLOSpec:
    return default_spec() if path is None else load_spec(path)


@functools.cache
def _setup() -> tuple[ProfileSet, Plant]:
    """The shipped profile and the plant measured from it (read once per process)."""
    profiles, profile_source = load_profiles(None)
    return profiles, measured_plant(profile_source)


@dataclass(frozen=True, slots=True)
class Job:
    """One timing of one trace at one load and seed, for every policy asked."""

    name: str
    path: str
    """The re-timed trace file."""
    load: float
    """Mean rate, in multiples of one replica's capacity (`capacity`, req/s)."""
    capacity: float
    seed: int
    policies: Sequence[str]
    slo: Path | None
    """A LatencySLO file (None: the simulator's default spec)."""
    settings: SimSettings
    """The plant's settings: its queue bound and queue wait limit."""


def _one(job: Job) -> list[dict[str, Any]]:
    profiles, plant = _setup()
    spec = _spec(job.slo)
    figures: dict[str, Any] = {}
    simulated = [p for p in job.policies if p != VARIANT_ORACLE]
    if simulated:
        result = run_scenario(
            "trace", policies=simulated, spec=spec, profiles=profiles, plant=plant,
            seed=job.seed, trace_file=job.path, target_mean_rps=job.load * job.capacity,
            settings=job.settings,
        )  # fmt: skip
        figures = {p: run.metrics for p, run in result.runs.items()}
    if VARIANT_ORACLE in job.policies:
        prep = prepare("trace", spec=spec, profiles=profiles, settings=job.settings, plant=plant,
                       seed=job.seed, trace_file=job.path, trace_load=job.load)  # fmt: skip
        figures[VARIANT_ORACLE], _ = run_oracle(prep)
    head = {"trace": job.name, "load": job.load, "seed": job.seed}
    return [
        {**head, "policy": p, **{k: float(figures[p][k]) for k in FIGURES}} for p in job.policies
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--trace-file", type=Path, action="append", default=None)
    ap.add_argument("--step", type=float, default=400.0)
    ap.add_argument("--loads", default="1,3")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--policy", default="latencyslo")
    ap.add_argument("--slo", type=Path, default=None, help="a LatencySLO manifest (or its spec)")
    ap.add_argument("--queue-limit", type=int, default=SimSettings.queue_limit,
                    help="requests a replica queues before it answers 503 (the worker's "
                    "--max-queue)")  # fmt: skip
    ap.add_argument("--max-queue-wait-ms", type=float, default=SimSettings.queue_wait_ms,
                    help="a request that waited longer than the batch window plus this in a "
                    "replica's queue is answered 503 unrun (the worker's --max-queue-wait-ms; "
                    "0: no limit)")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not args.step > 0:
        ap.error("--step: seconds, > 0")
    if args.queue_limit < 1:
        ap.error("--queue-limit: requests, >= 1")
    if not args.max_queue_wait_ms >= 0:
        ap.error("--max-queue-wait-ms: milliseconds, >= 0")
    settings = SimSettings(queue_limit=args.queue_limit, queue_wait_ms=args.max_queue_wait_ms)
    sources = args.trace_file or [SHIPPED_TRACE, *sorted(RETIMED.glob("*.csv"))]
    loads = [float(x) for x in args.loads.split(",")]
    policies = args.policy.split(",")
    profiles, plant = _setup()
    spec = _spec(args.slo)
    capacity = run_scenario(
        "trace", policies=[], spec=spec, profiles=profiles, plant=plant
    ).calibration.capacity_rps  # one replica of the preferred variant at the target, measured
    jobs: list[Job] = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            stamps, _, _ = load_trace(src)
            if stamps is None:
                ap.error(f"{src}: not a TIMESTAMP trace (one row per request)")
            secs = offsets(stamps)
            for shift in np.arange(0.0, loop_period(secs), args.step):
                out = Path(tmp) / f"{src.stem}+{shift:.0f}.csv"
                write_trace(out, secs if shift == 0 else shifted(secs, float(shift)))
                jobs += [Job(out.stem, str(out), x, capacity, s, policies, args.slo, settings)
                         for x in loads for s in range(args.seeds)]  # fmt: skip
        with ProcessPoolExecutor(max(1, args.jobs)) as ex:
            runs = [row for rows in ex.map(_one, jobs) for row in rows]
    summary = []
    for policy in policies:
        for load in loads:
            sel = [r for r in runs if r["policy"] == policy and r["load"] == load]
            within = [r["slo_attainment_requests"] for r in sel]
            row = {
                "policy": policy, "load": load, "runs": len(sel),
                "mean_within": statistics.fmean(within), "worst_within": min(within),
                "g1_met": sum(w >= G1_TRACES for w in within),
                **{f"mean_{k}": statistics.fmean(r[k] for r in sel) for k in FIGURES[1:]},
            }  # fmt: skip
            summary.append(row)
            print(f"{policy} at {load:g}x: {row['runs']} runs, requests within target "
                  f"{100 * row['mean_within']:.2f} % mean, {100 * row['worst_within']:.2f} % "
                  f"worst, G1 (98 %) met on {row['g1_met']}; violating windows "
                  f"{row['mean_violating_windows']:.1f}, replica-seconds "
                  f"{row['mean_replica_seconds']:,.0f}, accuracy "
                  f"{100 * row['mean_accuracy']:.2f} %")  # fmt: skip
    doc = {"sources": [s.name for s in sources], "step_s": args.step, "loads": loads,
           "replica_capacity_rps": capacity, "slo": None if args.slo is None else args.slo.name,
           "seeds": args.seeds, "queue_limit": args.queue_limit,
           "queue_wait_ms": worker_settings(spec, settings).queue_wait_ms,
           "summary": summary,
           "runs": runs}  # fmt: skip
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
