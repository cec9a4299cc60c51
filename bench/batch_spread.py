"""Measure the spread of the worker's batch service time: every timed batch over the median
of its batch size, per variant and batch size (the simulator's plant draws from these).

    python bench/batch_spread.py [--rounds 60] [--json PATH]

[default PATH: operator/slo_operator/sim/data/batch_spread_cpu.json]

What is timed is the demo family's forward pass (`inference_worker.encoder.TextClassifier`
with the demo's configurations: `full` 6 layers, `quantized` the same with the
`dynamic_int8` load recipe, `distilled` 2 layers with 768-wide feed-forward layers) on
16-token batches at one torch thread, the same shapes `latencyslo calibrate` times. The
weights are random: the time of a dense forward pass does not depend on the weights' values,
and no trained model has to be built. Sizes and variants are visited in a shuffled order each
round (like `calibrate`), so a slow spell of the shared machine lands on every size: the
spread and the stalls recorded are what a worker on this machine meets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from inference_worker.encoder import TextClassifier
from inference_worker.variants import apply_recipe

SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
TOKENS = 16
CONFIGS = {
    "full": ({"layers": 6, "intermediate": 1536}, None),
    "quantized": ({"layers": 6, "intermediate": 1536}, "dynamic_int8"),
    "distilled": ({"layers": 2, "intermediate": 768}, None),
}


def build(layers: int, intermediate: int, recipe: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = TextClassifier(layers=layers, intermediate=intermediate, num_labels=3, head_hidden=256)
    return apply_recipe(model.eval(), recipe, torch.device("cpu")).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=80)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--json",
        type=Path,
        default=Path("operator/slo_operator/sim/data/batch_spread_cpu.json"),
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build(**cfg, recipe=recipe) for name, (cfg, recipe) in CONFIGS.items()}
    gen = torch.Generator().manual_seed(1)
    inputs = {
        b: (torch.randint(1000, 30000, (b, TOKENS), generator=gen), torch.ones(b, TOKENS))
        for b in SIZES
    }
    runs: dict[str, dict[int, list[float]]] = {n: {b: [] for b in SIZES} for n in models}
    with torch.inference_mode():
        for model in models.values():  # warm every shape
            for ids, mask in inputs.values():
                model(ids, mask)
        rng = random.Random(0)
        load_before = os.getloadavg()
        started = time.perf_counter()
        for _ in range(args.rounds):
            order = [(n, b) for n in models for b in SIZES]
            rng.shuffle(order)
            for name, b in order:
                ids, mask = inputs[b]
                t0 = time.perf_counter()
                models[name](ids, mask)
                runs[name][b].append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - started
    doc = {
        "what": (
            "batch service time over the median of the same variant and batch size: the "
            "demo family's forward pass (random weights, demo configurations), 16-token "
            f"batches, {args.threads} torch thread(s), {args.rounds} interleaved rounds"
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()),
            "elapsed_s": round(elapsed, 1),
        },
        "median_ms": {
            n: {str(b): round(statistics.median(v), 4) for b, v in per.items()}
            for n, per in runs.items()
        },
        "ratios": {
            n: {str(b): [round(x / statistics.median(v), 4) for x in v] for b, v in per.items()}
            for n, per in runs.items()
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc) + "\n")
    for n, per in runs.items():
        for b, v in per.items():
            r = sorted(x / statistics.median(v) for x in v)
            print(
                f"{n:9s} b={b:2d} median {statistics.median(v):7.2f} ms  "
                f"p90 x{r[int(0.9 * len(r))]:.2f}  max x{r[-1]:.2f}"
            )
    print(f"wrote {args.json} in {elapsed:.0f}s")


if __name__ == "__main__":
    main()
