"""Histogram bucket edges shared by the worker's metrics and the simulator.

Dense from 1 ms to 2 s, with every common SLO target (and 0.8 x those)
on an edge, so that "share of requests under the target" is read exactly from the buckets
and `histogram_quantile` interpolates inside narrow buckets near the targets.
"""

from __future__ import annotations

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 80, 100, 120, 125, 150,
    160, 175, 200, 240, 250, 300, 350, 400, 500, 600, 750, 800, 1000, 1200, 1500, 2000,
)  # fmt: skip
"""Upper bucket edges in milliseconds (a +Inf bucket follows)."""

LATENCY_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000.0 for ms in LATENCY_BUCKETS_MS)
"""The same edges in seconds, as Prometheus histograms use."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512, 1024)
"""Upper edges for the batch-size histogram."""
