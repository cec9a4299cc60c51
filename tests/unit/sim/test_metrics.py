"""Scoring of a run: attainment, windows, recovery, reversals."""

from __future__ import annotations

import numpy as np
import pytest

from slo_operator.sim.engine import N_BUCKETS, Trace
from slo_operator.sim.metrics import CONTRACT_KEYS, recovery_episodes, summarize
from slo_operator.types import RuntimeConfig


def _trace(ok: list[float], total: list[float], decisions: list | None = None) -> Trace:
    n = len(ok)
    z = np.zeros(n)
    return Trace(
        desired=np.full(n, 2), ready=np.full(n, 2), pods=np.full(n, 2), window_ms=z.copy(),
        max_batch=np.full(n, 32), variant=np.zeros(n, dtype=int), arrivals=np.asarray(total),
        rejected=z.copy(), completed=np.asarray(total, dtype=float), ok=np.asarray(ok, float),
        hist=np.zeros((n, N_BUCKETS)), busy=z.copy(), inflight=z.copy(),
        served_accuracy=np.asarray(total) * 0.9, served_known_accuracy=np.asarray(total, float),
        decisions=decisions or [], variant_names=("full", "quantized"), target_ms=100.0,
    )  # fmt: skip


def test_attainment_and_windows() -> None:
    total = [100.0] * 120
    ok = [100.0] * 120
    ok[30:40] = [50.0] * 10  # 10 s at half within target
    m = summarize(_trace(ok, total), 0.99, 60, 15)
    assert m["slo_attainment_requests"] == pytest.approx(1 - 500 / 12000)
    assert m["windows"] == 5  # windows ending at 60, 75, 90, 105, 120
    assert m["violating_windows"] == 3  # [0, 60), [15, 75) and [30, 90) hold seconds 30..39
    assert m["replica_seconds"] == 240
    assert m["accuracy"] == pytest.approx(0.9)
    assert set(CONTRACT_KEYS) <= set(m)


def test_recovery_is_measured_on_true_latency() -> None:
    total = [100.0] * 100
    ok = [100.0] * 100
    ok[20:32] = [0.0] * 12  # bad from 20 s to 32 s: bins 20, 25, 30 are bad
    eps = recovery_episodes(_trace(ok, total), 0.99)
    assert eps == [(20, 15)]
    assert summarize(_trace(ok, total), 0.99, 60)["recovery_seconds"] == 15


def test_reversals_and_changes() -> None:
    a, b, c = (RuntimeConfig(n, 0, 32, "full") for n in (2, 3, 2))
    q = RuntimeConfig(2, 0, 32, "quantized")
    decisions = [(10, a, b), (100, b, c), (1000, c, q), (1100, q, c)]
    m = summarize(_trace([1.0] * 1200, [1.0] * 1200, decisions), 0.99, 60)
    assert m["config_changes"] == 4
    assert m["replica_changes"] == 2
    assert m["variant_switches"] == 2
    assert m["reversals_300s"] == 2  # up then down in 90 s; degrade then restore in 100 s
