"""Scoring one simulated run: the figures of the comparison table (JSON contract keys first)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from slo_operator.sim.engine import Trace

CONTRACT_KEYS = (
    "slo_attainment_requests",
    "slo_attainment_windows",
    "replica_seconds",
    "accuracy",
    "config_changes",
    "replica_changes",
    "variant_switches",
    "recovery_seconds",
)
REVERSAL_S = 300
RECOVERY_BIN_S = 5
RECOVERY_GOOD_BINS = 3  # an episode ends with 15 s in a row under the target


def _good(ok: np.ndarray, den: np.ndarray, quantile: float) -> np.ndarray:
    """Per bin: is the quantile within the target? (ok share >= quantile; empty bins are good)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(den > 0, ok / np.maximum(den, 1), 1.0)
    return share >= quantile - 1e-12


def recovery_episodes(trace: Trace, quantile: float) -> list[tuple[int, int]]:
    """(start, seconds to recover) of every breach episode, on 5-second bins of true latency."""
    d = len(trace.ok) // RECOVERY_BIN_S * RECOVERY_BIN_S
    ok = trace.ok[:d].reshape(-1, RECOVERY_BIN_S).sum(1)
    den = (trace.completed[:d] + trace.rejected[:d]).reshape(-1, RECOVERY_BIN_S).sum(1)
    good = _good(ok, den, quantile)
    episodes: list[tuple[int, int]] = []
    i, n = 0, len(good)
    while i < n:
        if good[i]:
            i += 1
            continue
        start = i
        run = 0
        j = i
        while j < n and run < RECOVERY_GOOD_BINS:
            run = run + 1 if good[j] else 0
            j += 1
        end = j - run if run >= RECOVERY_GOOD_BINS else n
        episodes.append((start * RECOVERY_BIN_S, (end - start) * RECOVERY_BIN_S))
        i = j
    return episodes


def _reversals(times: list[int], signs: list[int]) -> int:
    """Consecutive changes in opposite directions less than REVERSAL_S apart."""
    return sum(
        1
        for k in range(1, len(times))
        if signs[k] != signs[k - 1] and times[k] - times[k - 1] < REVERSAL_S
    )


def off_preferred(trace: Trace, preferred: str) -> np.ndarray:
    """Per second: whether a variant other than `preferred` completed requests (the quality
    budget's measure: a variant that serves nobody degrades nobody)."""
    order = list(trace.variant_names)
    pref_index = order.index(preferred) if preferred in order else 0
    return (np.asarray(trace.variant) != pref_index) & (np.asarray(trace.completed) > 0)


def summarize(
    trace: Trace, quantile: float, window_s: int, step_s: int = 15, preferred: str = "full"
) -> dict[str, Any]:
    """Every figure of one run (the contract keys plus diagnostics)."""
    d = len(trace.ok)
    arrivals = float(trace.arrivals.sum())
    ok = float(trace.ok.sum())
    den = trace.completed + trace.rejected
    # sliding windows of the objective's length, one every step_s seconds
    cum_ok = np.concatenate(([0.0], np.cumsum(trace.ok)))
    cum_den = np.concatenate(([0.0], np.cumsum(den)))
    ends = np.arange(window_s, d + 1, step_s)
    w_ok = cum_ok[ends] - cum_ok[ends - window_s]
    w_den = cum_den[ends] - cum_den[ends - window_s]
    good = _good(w_ok, w_den, quantile)
    violating = int((~good).sum())
    rep_t: list[int] = []
    rep_s: list[int] = []
    var_t: list[int] = []
    var_s: list[int] = []
    order = list(trace.variant_names)
    for t, before, after in trace.decisions:
        if after.replicas != before.replicas:
            rep_t.append(t)
            rep_s.append(1 if after.replicas > before.replicas else -1)
        if after.variant != before.variant:
            var_t.append(t)
            ranks = (order.index(before.variant), order.index(after.variant))
            var_s.append(1 if ranks[1] > ranks[0] else -1)
    episodes = recovery_episodes(trace, quantile)
    known = float(trace.served_known_accuracy.sum())
    acc = float(trace.served_accuracy.sum()) / known if known else math.nan
    return {
        "slo_attainment_requests": ok / arrivals if arrivals else 1.0,
        "slo_attainment_windows": float(good.mean()) if len(good) else 1.0,
        "replica_seconds": float(trace.pods.sum()),
        "accuracy": acc,
        "config_changes": len(trace.decisions),
        "replica_changes": len(rep_t),
        "variant_switches": len(var_t),
        "recovery_seconds": float(max((s for _, s in episodes), default=0)),
        "violating_windows": violating,
        "windows": len(good),
        "reversals_300s": _reversals(rep_t, rep_s) + _reversals(var_t, var_s),
        "degraded_fraction": float(np.mean(off_preferred(trace, preferred))) if d else 0.0,
        "requests": int(arrivals),
        "rejected": int(trace.rejected.sum()),
        "unserved": int(trace.unserved),
        "mean_replicas": float(trace.pods.mean()) if d else 0.0,
        "breach_episodes": len(episodes),
    }
