"""What one decision of the controller costs in CPU: every `Controller.step` of latencyslo in
the simulator, timed, per scenario.

The operator runs one such step per LatencySLO per interval, so at 1,000 LatencySLOs on a
15 s interval a millisecond a step is 1 core-second an interval of the operator's CPU
(docs/operator.md, "Sizing", where `bench/operator_scale.py` measures the whole process).
The simulator feeds the steps the same observations as the operator's Prometheus source
would, so the figures are the policy's own cost, apart from the operator's I/O.

    python bench/decision_cost.py --json F [--scenarios step,ramp,bursty,trace] [--seeds 1]

Prints and writes, per scenario: the steps timed, and their median, mean and 95th percentile
in ms (`time.perf_counter`, wall time of a single-threaded call: run it on a quiet machine,
and compare two versions in one session); and the queueing model's predictions over the
run (the looks between steps included) per step, computed and served from its memo
(`slo_operator.model.queueing.predict` is memoized: where the observed rate repeats, as with
the steady synthetic load of `bench/operator_scale.py`, most are served from it; with
Poisson arrivals the rate differs at every step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from slo_operator.model import queueing
from slo_operator.policy import controller
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.runner import run_scenario

SCENARIOS = "step,step4,ramp,diurnal,bursty,trace"


def timed_steps(scenario: str, seeds: int) -> tuple[list[float], int, int]:
    """Milliseconds of every controller step of latencyslo on `scenario`, over `seeds`, and
    the predictions computed and served from the memo meanwhile."""
    profiles, source = load_profiles(None)
    plant = measured_plant(source)
    spent: list[float] = []
    step = controller.Controller.step

    def timed(self: controller.Controller, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return step(self, *args, **kwargs)
        finally:
            spent.append((time.perf_counter() - t0) * 1000.0)

    controller.Controller.step = timed  # type: ignore[method-assign]
    queueing.predict.cache_clear()
    try:
        for seed in range(seeds):
            run_scenario(
                scenario, policies=["latencyslo"], profiles=profiles, seed=seed, plant=plant
            )
    finally:
        controller.Controller.step = step  # type: ignore[method-assign]
    memo = queueing.predict.cache_info()
    return spent, memo.misses, memo.hits


def summary(ms: list[float], computed: int = 0, memoized: int = 0) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "steps": len(ordered),
        "median_ms": round(statistics.median(ordered), 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "predictions_computed_per_step": round(computed / max(1, len(ordered)), 1),
        "predictions_memoized_per_step": round(memoized / max(1, len(ordered)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--scenarios", default=SCENARIOS)
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    out: dict[str, Any] = {"seeds": args.seeds, "scenarios": {}}
    for name in args.scenarios.split(","):
        row = summary(*timed_steps(name, args.seeds))
        out["scenarios"][name] = row
        print(f"{name}: {row['steps']} steps, median {row['median_ms']:.3f} ms, "
              f"mean {row['mean_ms']:.3f} ms, p95 {row['p95_ms']:.3f} ms; predictions a step "
              f"{row['predictions_computed_per_step']:g} computed, "
              f"{row['predictions_memoized_per_step']:g} memoized")  # fmt: skip
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
