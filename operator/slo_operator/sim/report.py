"""Results of `latencyslo simulate`: the JSON document, the table and the plot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.model.histogram import histogram_quantile
from slo_operator.sim.engine import Trace
from slo_operator.sim.metrics import CONTRACT_KEYS

PLOT_BIN_S = 5


def mean_metrics(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Average every numeric figure over seeds (counts too: the mean per run)."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        if all(isinstance(v, int | float) for v in values):
            finite = [float(v) for v in values if not math.isnan(float(v))]
            out[key] = sum(finite) / len(finite) if finite else math.nan
        else:
            out[key] = values[0]
    return out


def document(
    results: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON contract: {"scenarios": {NAME: {POLICY: {contract keys, ...}}}, ...}.

    `results[scenario][policy]` holds one metrics mapping per seed; the document carries
    their means, and each seed's figures under "per_seed"."""
    scenarios: dict[str, Any] = {}
    for name, by_policy in results.items():
        scenarios[name] = {}
        for policy, runs in by_policy.items():
            entry = mean_metrics(runs)
            entry = {k: entry[k] for k in CONTRACT_KEYS} | {
                k: v for k, v in entry.items() if k not in CONTRACT_KEYS
            }
            if len(runs) > 1:
                entry["per_seed"] = [dict(r) for r in runs]
            scenarios[name][policy] = entry
    return {"scenarios": scenarios, **meta}


def table_rows(by_policy: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One row per policy: the figures a reader compares."""
    oracle = by_policy.get("oracle", {}).get("replica_seconds")
    rows = []
    for policy, m in by_policy.items():
        ratio = (
            f"{m['replica_seconds'] / oracle:.2f}x"
            if oracle and oracle > 0 and policy != "oracle"
            else "-"
        )
        rows.append(
            [
                policy,
                f"{100 * m['slo_attainment_requests']:.2f}",
                f"{100 * m['slo_attainment_windows']:.1f}",
                f"{m.get('violating_windows', 0):.1f}",
                f"{m['replica_seconds']:.0f}",
                ratio,
                f"{100 * m['accuracy']:.2f}" if not math.isnan(m["accuracy"]) else "-",
                f"{m['replica_changes']:.1f}",
                f"{m['variant_switches']:.1f}",
                f"{m['recovery_seconds']:.0f}",
            ]
        )
    return rows


TABLE_HEADER = [
    "policy",
    "SLO req %",
    "SLO win %",
    "bad win",
    "replica-s",
    "vs oracle",
    "acc %",
    "replica chg",
    "variant sw",
    "recovery s",
]


def markdown_table(by_policy: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(by_policy)]
    return "\n".join(lines)


def true_p99_series(trace: Trace, quantile: float, bin_s: int = PLOT_BIN_S) -> np.ndarray:
    """The true quantile per bin of bin_s seconds (bucketed like the worker's histogram)."""
    n = len(trace.hist) // bin_s
    binned = trace.hist[: n * bin_s].reshape(n, bin_s, -1).sum(1)
    out = np.full(n, np.nan)
    rejected = trace.rejected[: n * bin_s].reshape(n, bin_s).sum(1)
    for i in range(n):
        counts = binned[i].tolist()
        counts[-1] += rejected[i]  # a rejected request never meets the target
        out[i] = histogram_quantile(quantile, LATENCY_BUCKETS_MS, counts)
    return out


def plot(
    path: str | Path,
    scenario: str,
    traces: Mapping[str, Trace],
    target_ms: float,
    quantile: float,
) -> None:
    """p99 vs target, replicas, window and variant over time, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    for policy, tr in traces.items():
        p = true_p99_series(tr, quantile)
        t = np.arange(len(p)) * PLOT_BIN_S
        axes[0].plot(t, p, lw=0.8, label=policy)
        secs = np.arange(len(tr.pods))
        axes[1].step(secs, tr.pods, where="post", lw=0.9, label=policy)
        axes[2].step(secs, tr.window_ms, where="post", lw=0.9, label=policy)
        axes[3].step(secs, tr.variant, where="post", lw=0.9, label=policy)
    axes[0].axhline(target_ms, color="black", ls="--", lw=1, label="target")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(f"true p{quantile * 100:g} (ms, {PLOT_BIN_S}s bins)")
    axes[1].set_ylabel("replicas (incl. starting)")
    axes[2].set_ylabel("batch window (ms)")
    names = next(iter(traces.values())).variant_names if traces else ()
    axes[3].set_yticks(range(len(names)), labels=list(names))
    axes[3].set_ylabel("variant")
    axes[3].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    fig.suptitle(f"latencyslo simulate: {scenario}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_path(base: str | Path, scenario: str, many: bool) -> Path:
    """PATH for one scenario; PATH-with-the-scenario-name for several."""
    base = Path(base)
    return base.with_name(f"{base.stem}-{scenario}{base.suffix or '.png'}") if many else base
