"""One-shot GPU check of the demo family: per-variant latency on CUDA and agreement with CPU.

    python bench/gpu_check.py [--json out/gpu_check.json] [--model-dir D]

Builds the demo family if needed (CPU, about a minute), then for each variant loads it on CUDA
(`quantized` becomes fp16 weights there) and on the CPU in fp32 as the reference, checks the
predictions agree on 256 held-out lexicon entries plus 64 sentences, and times batch 1 and
batch 16 (16-token texts, tokenize + forward, CUDA-synchronised, median of 50 after warm-up).
Prints one JSON document (and writes it with --json). Exits 2 when CUDA is not available.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

import torch  # noqa: E402

from inference_worker.calibrate import hardware_name  # noqa: E402
from inference_worker.demo_model import (  # noqa: E402
    build_demo_model,
    default_model_dir,
    load_lexicon,
    source_paths,
    split,
)
from inference_worker.manifest import Manifest  # noqa: E402
from inference_worker.texts import sample_texts  # noqa: E402
from inference_worker.variants import LoadedVariant  # noqa: E402


def timed(variant: LoadedVariant, texts: list[str], n: int = 50) -> float:
    for _ in range(10):
        variant.predict(texts)
    runs = []
    for _ in range(n):
        torch.cuda.synchronize()
        started = time.perf_counter()
        variant.predict(texts)
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model-dir", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available"}))
        sys.exit(2)
    started = time.perf_counter()
    model_dir = args.model_dir or default_model_dir()
    if args.model_dir is None:
        build_demo_model(model_dir)
    manifest = Manifest.load(model_dir)
    _, lexicon = source_paths()
    _, test = split(load_lexicon(lexicon))
    check = [t for t, _ in test[:256]] + sample_texts(64, tokens=16, seed=5)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    texts16 = sample_texts(16, tokens=16, seed=9)
    result: dict[str, Any] = {
        "device": hardware_name(cuda),
        "torch": torch.__version__,
        "variants": {},
    }
    for name in manifest.variants:
        # the CPU reference of an fp16 `quantized` on CUDA is the fp32 model it was cast from
        spec = manifest.variants[name]
        ref_name = next(
            (
                n
                for n, s in manifest.variants.items()
                if s.recipe is None and s.weights == spec.weights
            ),
            name,
        )
        ref = LoadedVariant(manifest, ref_name, cpu)
        gpu = LoadedVariant(manifest, name, cuda)
        gpu.warm((1, 16))
        want = ref.predict(check)
        got = gpu.predict(check)
        agree = sum(a.label == b.label for a, b in zip(want, got, strict=True)) / len(check)
        max_diff = max(
            abs(a.scores[k] - b.scores[k]) for a, b in zip(want, got, strict=True) for k in a.scores
        )
        dtype = next(p.dtype for p in gpu.model.parameters() if p.is_floating_point())
        result["variants"][name] = {
            "recipe_on_cuda": "fp16" if dtype == torch.float16 else str(dtype),
            "b1_ms": round(timed(gpu, texts16[:1]), 3),
            "b16_ms": round(timed(gpu, texts16), 3),
            "cpu_reference": ref_name,
            "label_agreement_vs_cpu": round(agree, 4),
            "max_prob_diff_vs_cpu": round(max_diff, 5),
        }
        del ref, gpu
        torch.cuda.empty_cache()
    v = result["variants"]
    result["latency_order_b16_distilled_lt_quantized_lt_full"] = (
        v["distilled"]["b16_ms"] < v["quantized"]["b16_ms"] < v["full"]["b16_ms"]
    )
    result["ok"] = all(x["label_agreement_vs_cpu"] >= 0.97 for x in v.values())
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
