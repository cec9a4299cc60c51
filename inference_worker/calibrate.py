"""Measure each variant's batch service time, fit `alpha + beta * b`, keep every run.

Service time is what the worker's `inference_batch_duration_seconds` measures: tokenize +
forward of one batch, on the compute thread. For every batch size 1..max the median of
`repeats` timed runs is taken (after a warm-up), then a line is fitted by least squares on the
relative residuals (`FIT_METHOD`); R² and the largest relative residual say how well the linear
model holds. `refit` fits a saved profile's medians again (no measurement).

The spread sizes (1, 2, 4, ... up to max) are timed at least `spread_repeats` times and every
run is kept, in measurement order, in the profile's `batch_times` field
(`slo_contracts.batch_times.BatchTimes`): the spread and the stalls a simulator draws from.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from inference_worker.manifest import Manifest, ManifestError
from inference_worker.texts import sample_texts
from inference_worker.variants import LoadedVariant
from slo_contracts.batch_times import STALL_FACTOR, BatchTimes
from slo_contracts.profiles import ProfileSet, VariantProfile

log = logging.getLogger(__name__)


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


FIT_METHOD = "least squares on relative residuals"
"""How `fit_linear` weighs the batch sizes: each median's residual relative to the median
itself (weights 1/t). A plain least-squares line is pulled by the large batches' large absolute
residuals and misses the small batches a lightly loaded replica serves by tens of percent
(a demo profile: 20 ms at a batch of 1 measured at 12.6); a latency target and the profile
factor the controller learns at the batch size it sees are both relative."""


def fit_linear(sizes: Sequence[float], times_ms: Sequence[float]) -> dict[str, float]:
    """`t = alpha + beta * b` by least squares on relative residuals (`FIT_METHOD`), with R²
    (of the absolute residuals, as before) and the max relative residual."""
    b = np.asarray(sizes, dtype=float)
    t = np.asarray(times_ms, dtype=float)
    if len(b) < 2:
        raise ValueError("need at least two batch sizes to fit a line")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("batch times must be positive and finite")
    beta, alpha = np.polyfit(b, t, 1, w=1.0 / t)
    pred = alpha + beta * b
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {
        "alpha_ms": float(alpha),
        "beta_ms": float(beta),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        "max_rel_err": float(np.max(np.abs(t - pred) / t)),
    }


def _fitted(
    sizes: Sequence[float], times_ms: Sequence[float], accuracy: float | None
) -> tuple[VariantProfile, dict[str, float]]:
    """A variant's profile line and its fit quality, rounded as a profile keeps them."""
    fit = fit_linear(sizes, times_ms)
    line = VariantProfile(
        alpha_ms=round(fit["alpha_ms"], 4), beta_ms=round(fit["beta_ms"], 4), accuracy=accuracy
    )
    return line, {"r2": round(fit["r2"], 5), "max_rel_err": round(fit["max_rel_err"], 4)}


def refit(profiles: ProfileSet) -> ProfileSet:
    """`profiles` with every variant's line fitted again (`fit_linear`) from the medians the
    calibration kept (`extra.batch_sizes`, `extra.median_ms`); everything else unchanged."""
    sizes = profiles.extra.get("batch_sizes")
    medians = profiles.extra.get("median_ms")
    if not sizes or not isinstance(medians, Mapping):
        raise ValueError("the profile keeps no medians (extra.batch_sizes, extra.median_ms)")
    variants = dict(profiles.variants)
    fits = dict(profiles.extra.get("fit") or {})
    for name, times in medians.items():
        if name not in variants:
            continue
        variants[name], fits[name] = _fitted(sizes, times, variants[name].accuracy)
    extra = {**dict(profiles.extra), "fit": fits, "fit_method": FIT_METHOD}
    return replace(profiles, variants=variants, extra=extra)


def spread_sizes(max_batch_size: int) -> list[int]:
    """1, 2, 4, ... up to `max_batch_size`, and `max_batch_size` itself."""
    sizes = [1 << k for k in range(max_batch_size.bit_length()) if 1 << k <= max_batch_size]
    return sizes if sizes[-1] == max_batch_size else [*sizes, max_batch_size]


def measure(
    variant: LoadedVariant,
    sizes: Sequence[int],
    texts: Sequence[str],
    repeats: int,
    extra: Mapping[int, int] | None = None,
) -> dict[int, list[float]]:
    """Every timed run (ms) per batch size, in measurement order: `repeats` at every size,
    plus `extra[b]` more at size b.

    Sizes are visited round-robin in a shuffled order each round, so a slow spell of a shared
    machine spreads over all sizes instead of bending the fitted line.
    """
    sync = variant.device.type == "cuda"
    runs: dict[int, list[float]] = {b: [] for b in sizes}
    for b in sizes:
        variant.predict(list(texts[:b]))  # warm every shape once
    rng = random.Random(0)
    extra = extra or {}
    rounds = repeats + max(extra.values(), default=0)
    for r in range(rounds):
        order = [b for b in sizes if r < repeats + extra.get(b, 0)]
        rng.shuffle(order)
        for b in order:
            batch = list(texts[:b])
            if sync:
                torch.cuda.synchronize(variant.device)
            started = time.perf_counter()
            variant.predict(batch)
            if sync:
                torch.cuda.synchronize(variant.device)
            runs[b].append((time.perf_counter() - started) * 1000.0)
    return runs


def run_calibration(
    manifest: Manifest,
    *,
    device: torch.device,
    threads: int | None,
    max_batch_size: int = 32,
    tokens: int = 16,
    repeats: int = 7,
    variants: Sequence[str] | None = None,
    spread_repeats: int = 30,
    cuda_graphs: bool = False,
) -> ProfileSet:
    if threads:
        torch.set_num_threads(threads)
    names = list(variants or manifest.variants)
    unknown = [n for n in names if n not in manifest.variants]
    if unknown:
        raise ManifestError(f"unknown variant(s) {unknown}; known: {sorted(manifest.variants)}")
    sizes = list(range(1, max_batch_size + 1))
    spread = spread_sizes(max_batch_size)
    texts = sample_texts(max_batch_size, tokens=tokens)
    profiles: dict[str, VariantProfile] = {}
    fits: dict[str, Any] = {}
    medians: dict[str, list[float]] = {}
    kept: dict[str, tuple[tuple[float, ...], ...]] = {}
    for name in names:
        variant = LoadedVariant(manifest, name, device, cuda_graphs=cuda_graphs)
        variant.warm((1, max_batch_size))
        runs = measure(
            variant, sizes, texts, repeats, {b: max(0, spread_repeats - repeats) for b in spread}
        )
        medians[name] = [statistics.median(runs[b]) for b in sizes]
        kept[name] = tuple(tuple(round(x, 3) for x in runs[b]) for b in spread)
        profiles[name], fits[name] = _fitted(sizes, medians[name], variant.accuracy)
        log.info("%s: %s %s", name, profiles[name], fits[name])
        del variant
    batch_times = BatchTimes(batch_sizes=tuple(spread), ms=kept, tokens=tokens)
    for name in names:
        log.info(
            "%s: batch %d p50 %.2f ms, max %.2f ms; stalls (> %gx median) %.1f %% of %d runs",
            name,
            spread[-1],
            batch_times.median(name, spread[-1]),
            max(batch_times.samples(name, spread[-1])),
            STALL_FACTOR,
            100 * batch_times.stall_fraction(name),
            sum(len(r) for r in kept[name]),
        )
    return ProfileSet(
        variants=profiles,
        device=device.type,
        threads=torch.get_num_threads(),
        source=f"latencyslo calibrate, {manifest.root.name}, {hardware_name(device)}, "
        f"torch {torch.__version__}",
        extra={
            "fit": fits,
            "fit_method": FIT_METHOD,
            "batch_sizes": sizes,
            "median_ms": {n: [round(x, 3) for x in m] for n, m in medians.items()},
            "tokens": tokens,
            "cuda_graphs": cuda_graphs and device.type == "cuda",
            "repeats": repeats,
            "spread_repeats": max(repeats, spread_repeats),
            "measured": "median tokenize + forward time of one batch of `tokens`-token texts "
            "(what inference_batch_duration_seconds measures)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        batch_times=batch_times,
    )
