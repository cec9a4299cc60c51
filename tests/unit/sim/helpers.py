"""Builders for the simulator tests (profiles built here, never loaded from disk)."""

from __future__ import annotations

import numpy as np

from slo_operator.sim.engine import SimSettings, Simulation, SimView, _Pod
from slo_operator.types import ProfileSet, RuntimeConfig, VariantProfile

FLAT = ProfileSet(
    variants={
        "full": VariantProfile(alpha_ms=10.0, beta_ms=0.0, accuracy=0.9),
        "quantized": VariantProfile(alpha_ms=5.0, beta_ms=0.0, accuracy=0.8),
    }
)
EXACT = SimSettings(service_cv=0.0)


class Hold:
    name = "hold"

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        return None


def batches(
    arrivals_ms: list[float],
    window_ms: int = 0,
    max_batch: int = 32,
    queue_limit: int = 256,
) -> tuple[list[tuple[int, float]], list[float]]:
    """(batch size, completion ms) of every batch one replica runs, and the rejected
    arrivals (ms), for requests arriving at arrivals_ms (10 ms per batch, no jitter)."""
    got, rejected, _ = served_and_refused(arrivals_ms, window_ms, max_batch, queue_limit)
    return got, rejected


def served_and_refused(
    arrivals_ms: list[float],
    window_ms: int = 0,
    max_batch: int = 32,
    queue_limit: int = 256,
    queue_wait_ms: float = 0.0,
) -> tuple[list[tuple[int, float]], list[float], list[float]]:
    """`batches`, and the times (ms) at which requests over the queue wait limit were
    refused."""
    arr = np.asarray(arrivals_ms) / 1000.0
    sim = Simulation(
        arr,
        np.zeros(len(arr)),
        10,
        FLAT,
        RuntimeConfig(1, window_ms, max_batch, "full"),
        100.0,
        SimSettings(service_cv=0.0, queue_limit=queue_limit, queue_wait_ms=queue_wait_ms),
    )
    pod = _Pod(0.0, 0.0, "full")
    pod.arr = arr.tolist()
    served: list[float] = []
    counts: list[int] = []
    dones: list[float] = []
    rejected: list[float] = []
    expired: list[float] = []
    sim._serve(pod, 1e9, True, served, counts, dones, rejected, expired)
    ms = lambda xs: [round(x * 1000, 6) for x in xs]  # noqa: E731
    return (
        [(c, round(d * 1000, 6)) for c, d in zip(counts, dones, strict=True)],
        ms(rejected),
        ms(expired),
    )


def poisson(rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * seconds)
    return np.sort(rng.uniform(0, seconds, n))
