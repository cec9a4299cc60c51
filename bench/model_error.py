"""The controller's latency model against the simulator's measured plant, by load.

    python bench/model_error.py --json FILE [--loads 0.1,0.2,...]

For each variant of the shipped profile, one replica and three, Poisson load at each
`--loads` share of the model's saturation rate (120 s, window 0, max batch 32): the p99 the
model predicts from the calibrated profile, the p99 simulated on the measured plant (batch
times drawn from the profile's measured medians and spread), and the p99 predicted with
the profile factor the controller learns from that run's batch times. The last error is
what the controller's learned quantile correction still has to cover; one correction
learned at one load and applied at another is off by the change of that error between
them. Prints a markdown table and writes FILE: {"rows": [...], "meta": {...}}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pareto import prediction_error  # the same rows as meta.prediction_error of pareto.py

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--loads", default="0.15,0.3,0.45,0.6,0.75")
    args = ap.parse_args()
    loads = [float(x) for x in args.loads.split(",") if x]
    if not loads or any(not 0 < x < 1 for x in loads):
        ap.error("--loads: shares of the saturation rate, each in (0, 1)")
    profiles, source = default_profiles()
    plant = measured_plant(MEASURED_PROFILE if MEASURED_PROFILE.is_file() else None)
    rows = prediction_error(profiles, plant, SimSettings(), loads)
    print("| variant | replicas | load | req/s | measured plant p99 ms | model (error) "
          "| with the learned factor (error) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['replicas']} | {r['load']:.0%} | {r['rate_rps']:.0f} "
              f"| {r['measured_plant_p99_ms']:.1f} | {r['predicted_p99_ms']:.1f} "
              f"({r['measured_plant_error']:+.0%}) | {r['fitted_p99_ms']:.1f} "
              f"(x{r['fitted_factor']:.2f}, {r['fitted_error']:+.0%}) |")  # fmt: skip
    meta = {"profile": source, "plant": plant.source, "loads": loads}
    args.json.write_text(json.dumps({"rows": rows, "meta": meta}, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
