"""Load shapes the benchmark's workloads do not draw, as `t_seconds,rps` traces.

    python bench/load_shapes.py OUT_DIR [--names idle-bursts,cron]

Each file holds per-second rates (an hour; `overnight` two and a half) for `latencyslo
simulate --scenario trace --trace-file OUT_DIR/NAME.csv` or `bench/pareto.py --trace-file
...` (a given file is replayed as it is: Poisson arrivals at those rates). docs/policy.md,
"Idle spells between bursts", has the controller's figures on them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

HOUR_S = 3600
NOISE_SEED = 7


def _noisy_sine(t: np.ndarray) -> np.ndarray:
    """80 +- 60 req/s over 30 minutes, times a log-normal factor (sigma 0.4) per 10 s."""
    noise = np.exp(np.random.default_rng(NOISE_SEED).normal(0.0, 0.4, len(t) // 10 + 1))
    return (80.0 + 60.0 * np.sin(2 * np.pi * t / 1800.0)) * noise[t // 10]


def _bursts(
    rps: float, burst_s: int, every_s: int, between: float
) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """`rps` for the last `burst_s` of every `every_s` seconds, `between` req/s otherwise."""
    rest = "nothing" if between == 0 else f"{between:g} req/s"
    return (
        f"{rest}, then {rps:g} req/s for {burst_s} s, every {every_s} s",
        lambda t: np.where(t % every_s >= every_s - burst_s, rps, between),
    )


SHAPES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "idle-bursts": _bursts(200.0, 60, 240, 0.0),
    "idle-bursts-trickle": _bursts(200.0, 60, 240, 2.0),
    "cron": _bursts(300.0, 120, 600, 0.0),
    "cron-trickle": _bursts(300.0, 120, 600, 2.0),
    "square": (
        "30 and 150 req/s, five minutes each",
        lambda t: np.where(t // 300 % 2, 150.0, 30.0),
    ),
    "sawtooth": ("20 up to 200 req/s over ten minutes, again", lambda t: 20.0 + 0.3 * (t % 600)),
    "noisy-sine": ("80 +- 60 req/s, a 30-minute period, 10 s log-normal noise", _noisy_sine),
    "spike-train": (
        "50 req/s, 500 for one second every 20 s",
        lambda t: np.where(t % 20, 50.0, 500.0),
    ),
    "plateau": (
        "60 req/s, 800 from 600 s to 2,400 s",
        lambda t: np.where((t < 600) | (t > 2400), 60.0, 800.0),
    ),
    "to-zero": (
        "100 req/s, nothing from 600 s to 1,800 s",
        lambda t: np.where((t < 600) | (t >= 1800), 100.0, 0.0),
    ),
    "doubling": ("10 req/s, doubling every ten minutes", lambda t: 10.0 * 2.0 ** (t // 600)),
    "light-then-ramp": (
        "5 req/s for 30 minutes, then up to 300 req/s in ten",
        lambda t: np.where(t < 1800, 5.0, np.minimum(300.0, 5.0 + (t - 1800) * 295.0 / 600.0)),
    ),
    "light-steps": ("8 and 60 req/s, 15 minutes each", lambda t: np.where(t // 900 % 2, 60.0, 8.0)),
    "overnight": (
        "300 req/s for 15 minutes, nothing for two hours, 300 req/s for 15 minutes",
        lambda t: np.where((t < 900) | (t >= 8100), 300.0, 0.0),
    ),
}
LENGTH_S = {"overnight": 9000}
"""Shapes longer than an hour."""


def rates(name: str) -> np.ndarray:
    """The shape's rate (req/s) at each second (an hour unless `LENGTH_S` says otherwise)."""
    return np.maximum(SHAPES[name][1](np.arange(LENGTH_S.get(name, HOUR_S))), 0.0)


def write(path: Path, rps: np.ndarray) -> None:
    """`rps` as a `t_seconds,rps` trace, one row per second."""
    rows = "".join(f"{t},{r:.3f}\n" for t, r in enumerate(rps.tolist()))
    path.write_text("t_seconds,rps\n" + rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--names", default=",".join(SHAPES), help="comma-separated shapes")
    args = ap.parse_args()
    names = [n for n in args.names.split(",") if n]
    unknown = sorted(set(names) - set(SHAPES))
    if unknown:
        ap.error(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(SHAPES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = args.out / f"{name}.csv"
        write(path, rates(name))
        print(f"{path}: {SHAPES[name][0]}")


if __name__ == "__main__":
    main()
