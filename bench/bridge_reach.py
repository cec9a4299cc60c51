"""How large a step in the request rate the fast knobs can carry without new replicas.

For a LatencySLO and a ProfileSet: the rate one replica of the preferred variant serves at
the aim (`headroom * latencyMs`, where the controller sizes replicas), the rate each allowed
variant serves at the target and its throughput at `maxBatchSize`, all from the controller's
model (`slo_operator.model.predict`, window 0, times `--correction`, the factor the
controller learns). The reach is the best
variant's rate at the target over the preferred variant's at the aim: a step larger than the
reach breaches until new replicas are ready, whatever the variant and the batch window.

    python bench/bridge_reach.py --json F                      # the shipped CPU profile
    python bench/bridge_reach.py --slo examples/gpu.yaml \\
        --profile operator/slo_operator/profiles/demo-gpu.json --json F
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from slo_operator.model.queueing import max_throughput_rps, predict
from slo_operator.sim.cli import load_spec
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.runner import default_spec
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet


def rate_at(
    profiles: ProfileSet, variant: str, spec: LatencySLOSpec, latency_ms: float, correction: float
) -> float:
    """The largest rate one replica of `variant` serves with its quantile (the model's times
    `correction`) at `latency_ms`."""
    prof, batch = profiles.variants[variant], spec.batching.max_batch_size
    lo, hi = 1e-3, max_throughput_rps(prof, batch)
    for _ in range(80):
        mid = (lo + hi) / 2
        p = predict(prof, mid, 1, 0.0, batch, spec.quantile).latency_ms
        lo, hi = (mid, hi) if p * correction <= latency_ms else (lo, mid)
    return lo


def reach(spec: LatencySLOSpec, profiles: ProfileSet, correction: float = 1.0) -> dict[str, Any]:
    pref, batch = spec.variants.effective_preferred, spec.batching.max_batch_size
    sized = rate_at(profiles, pref, spec, spec.aim_latency_ms, correction)
    rows = {}
    for v in spec.variants.allowed:
        prof = profiles.variants[v]
        rows[v] = {
            "rps_at_target": rate_at(profiles, v, spec, spec.target_latency_ms, correction),
            "rps_at_max_batch": max_throughput_rps(prof, batch),
            "rps_any_batch": 1000.0 / prof.beta_ms,  # no batch size serves more
        }
    best = max(r["rps_at_target"] for r in rows.values())
    return {
        "target_ms": spec.target_latency_ms,
        "aim_ms": spec.aim_latency_ms,
        "max_batch_size": batch,
        "correction": correction,
        "preferred": pref,
        "preferred_rps_at_aim": sized,
        "variants": rows,
        "reach": best / sized,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slo", help="a LatencySLO manifest [default: the simulator's spec]")
    ap.add_argument("--profile", help="ProfileSet JSON [default: the shipped demo-cpu.json]")
    ap.add_argument(
        "--correction", type=float, default=1.0,
        help="the learned correction factor (observed / model quantile) [default: 1]",
    )  # fmt: skip
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    spec = load_spec(Path(args.slo)) if args.slo else default_spec()
    profiles, source = load_profiles(args.profile)
    if Path(source).is_absolute() and Path(source).is_relative_to(Path.cwd()):
        source = str(Path(source).relative_to(Path.cwd()))
    out = {"profile": source, **reach(spec, profiles, args.correction)}
    print(f"profile: {source}; target {out['target_ms']:.0f} ms, aim {out['aim_ms']:.0f} ms, "
          f"maxBatchSize {out['max_batch_size']}, model x{out['correction']:.2f}")  # fmt: skip
    print(f"{out['preferred']} at the aim: {out['preferred_rps_at_aim']:,.0f} req/s per replica")
    for v, r in out["variants"].items():
        print(f"  {v:10s} at the target {r['rps_at_target']:>9,.0f} req/s, "
              f"at maxBatchSize {r['rps_at_max_batch']:>9,.0f}, "
              f"at any batch size {r['rps_any_batch']:>9,.0f} req/s")  # fmt: skip
    print(f"reach: a step up to x{out['reach']:.2f} is carried without new replicas")
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
