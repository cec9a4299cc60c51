"""The simulator comparison behind the project's main claim, with 5 seeds.

    python bench/simulate_all.py [--seeds 5] [--json bench-sim.json]

Runs every built-in scenario and the shipped trace for every policy on identical arrivals
(`slo_operator.sim`, on the measured plant like `latencyslo simulate`), prints the mean
table per scenario, checks the six goals of the decision-core issue against the figures
(printed, never asserted: benchmarks are not tests), and measures the simulator's speed
(one simulated hour of one policy on one core). Writes the `latencyslo simulate` JSON
document plus "goals" and "speed".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import POLICIES
from slo_operator.sim.profiles import default_profiles
from slo_operator.sim.report import document, markdown_table
from slo_operator.sim.runner import default_spec, run_scenario
from slo_operator.sim.workloads import BUILTIN, STEP_AT_S

SCENARIOS = (*BUILTIN, "trace")
OURS = "latencyslo"


def speed(profiles: Any, plant: Any = None) -> dict[str, float]:
    """Wall seconds for one simulated hour of `steady`, each policy, one seed, one core."""
    out: dict[str, float] = {}
    for policy in (OURS, "hpa", "oracle"):
        t0 = time.perf_counter()
        result = run_scenario("steady", policies=[policy], profiles=profiles, seed=0, plant=plant)
        out[policy] = time.perf_counter() - t0
        out[f"{policy}_requests"] = result.runs[policy].metrics["requests"]
    return out


def goals(doc: dict[str, Any], bridged: list[bool], full_accuracy: float) -> dict[str, Any]:
    """Each goal of the issue, checked on the mean figures (and per seed where it matters)."""
    sc = doc["scenarios"]

    def ours(name: str, key: str) -> float:
        return float(sc[name][OURS][key])

    def worst(name: str, key: str) -> float:
        seeds = sc[name][OURS].get("per_seed") or [sc[name][OURS]]
        return min(float(s[key]) for s in seeds)

    g: dict[str, Any] = {}
    need = {"step": 0.99, "ramp": 0.99, "diurnal": 0.99, "bursty": 0.98, "trace": 0.98}
    g["1_attainment"] = {
        name: {"need": v, "mean": ours(name, "slo_attainment_requests"),
               "worst_seed": worst(name, "slo_attainment_requests"),
               "met": ours(name, "slo_attainment_requests") >= v}
        for name, v in {**need, "step4": 0.99}.items()
    }  # fmt: skip
    caps = {"ramp": 1.15, "diurnal": 1.15, "bursty": 1.3}
    g["2_cost_vs_oracle"] = {
        name: {"cap": cap, "ratio": ours(name, "replica_seconds")
               / float(sc[name]["oracle"]["replica_seconds"]),
               "met": ours(name, "replica_seconds")
               <= cap * float(sc[name]["oracle"]["replica_seconds"])}
        for name, cap in caps.items()
    }  # fmt: skip
    third: dict[str, Any] = {}
    for name in SCENARIOS:
        for base in ("hpa", "keda", "kpa"):
            if base not in sc[name]:
                continue
            theirs = sc[name][base]
            fewer = ours(name, "violating_windows") <= 0.5 * float(theirs["violating_windows"])
            cheaper = ours(name, "replica_seconds") <= float(theirs["replica_seconds"])
            third[f"{name}/{base}"] = {
                "ours_bad_windows": ours(name, "violating_windows"),
                "their_bad_windows": float(theirs["violating_windows"]),
                "ours_replica_s": ours(name, "replica_seconds"),
                "their_replica_s": float(theirs["replica_seconds"]),
                "half_the_violations": fewer,
                "no_more_replica_s": cheaper,
                "met": fewer and cheaper,
            }
    g["3_against_autoscalers"] = third
    g["4_accuracy_loss_pp"] = {
        name: {"loss_pp": 100 * (full_accuracy - ours(name, "accuracy")),
               "met": 100 * (full_accuracy - ours(name, "accuracy")) <= 1.0}
        for name in SCENARIOS
    }  # fmt: skip
    step_runs = sc["step"][OURS].get("per_seed", [sc["step"][OURS]])
    rec = [float(s["recovery_seconds"]) for s in step_runs]
    g["5_step_recovery"] = {
        "recovery_seconds_per_seed": rec,
        "no_new_replica_before_recovery_per_seed": bridged,
        "met": all(r <= 30 for r in rec) and all(bridged),
    }
    st = sc["steady"][OURS]
    g["6_stationary"] = {
        "replica_changes": st["replica_changes"],
        "variant_switches": st["variant_switches"],
        "reversals_300s": st["reversals_300s"],
        "met": st["replica_changes"] <= 4 and st["variant_switches"] <= 2
        and max(s["reversals_300s"] for s in st.get("per_seed", [st])) == 0,
    }  # fmt: skip
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=Path("bench-sim.json"))
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    profiles, source = default_profiles()
    plant = measured_plant(source if Path(source).is_file() else None)
    spec = default_spec()
    policies = args.policies.split(",")
    started = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    bridged: list[bool] = []
    capacity = 0.0
    for name in SCENARIOS:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            r = run_scenario(
                name, policies=policies, profiles=profiles, spec=spec, seed=seed, plant=plant
            )
            capacity = r.calibration.capacity_rps
            for policy, run in r.runs.items():
                results.setdefault(name, {}).setdefault(policy, []).append(run.metrics)
            if name == "step" and OURS in r.runs:
                run = r.runs[OURS]
                step = int(STEP_AT_S)
                end = step + int(run.metrics["recovery_seconds"])
                bridged.append(bool(np.all(run.trace.ready[step:end] == run.trace.ready[step - 1])))
            print(f"{name} seed {seed}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    elapsed = time.perf_counter() - started
    doc = document(results, {"seeds": list(range(args.seeds)), "profile": source,
                             "replica_capacity_rps": capacity, "elapsed_s": elapsed})  # fmt: skip
    full_acc = profiles.variants[spec.variants.effective_preferred].accuracy or math.nan
    doc["goals"] = goals(doc, bridged, full_acc) if OURS in policies else {}
    doc["speed"] = speed(profiles, plant)
    for name in SCENARIOS:
        print(f"\n### {name} ({args.seeds} seeds, means)\n")
        print(markdown_table(doc["scenarios"][name]))
    print("\n### goals\n")
    for key, value in doc["goals"].items():
        if key == "3_against_autoscalers":
            met = sum(v["met"] for v in value.values())
            print(f"{key}: met in {met} of {len(value)} scenario/baseline pairs")
            for pair, v in value.items():
                verdict = "met" if v["met"] else "NOT met"
                print(f"  {pair}: bad windows {v['ours_bad_windows']:.1f} vs "
                      f"{v['their_bad_windows']:.1f}, replica-s {v['ours_replica_s']:.0f} vs "
                      f"{v['their_replica_s']:.0f} -> {verdict}")  # fmt: skip
        else:
            print(f"{key}: {json.dumps(value, default=float)}")
    sp = doc["speed"]
    print(f"\nspeed: one simulated hour (steady) of latencyslo {sp[OURS]:.1f}s, hpa "
          f"{sp['hpa']:.1f}s, oracle {sp['oracle']:.1f}s (incl. the 6-min warm-up); "
          f"whole comparison {elapsed:.0f}s")  # fmt: skip
    args.json.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
