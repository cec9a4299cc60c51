"""Two demo runs side by side: latencyslo and a baseline on the same arrivals and workers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slo_local.demo.timeline import Recording
from slo_operator.sim.metrics import RECOVERY_BIN_S

ROWS = (
    ("slo_attainment_requests", "requests within target", "{:.2%}"),
    ("slo_attainment_windows", "windows within target", "{:.2%}"),
    ("recovery_seconds", "recovery (s)", "{}"),
    ("replica_seconds", "replica-seconds", "{:.0f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("decisions", "decisions", "{}"),
    ("requests", "requests", "{}"),
    ("failed_requests", "failed requests", "{}"),
)


def table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table: one column per run, one row per summary key, then the story."""
    names = list(summaries)
    lines = [f"{'':24}" + "".join(f"{n:>22}" for n in names)]
    for key, label, fmt in ROWS:
        cells = []
        for n in names:
            v = summaries[n].get(key)
            cells.append("-" if v is None else fmt.format(v))
        lines.append(f"{label:24}" + "".join(f"{c:>22}" for c in cells))
    acts = list(next(iter(summaries.values())).get("story", {}))
    for act in acts:
        cells = []
        for n in names:
            t = summaries[n].get("story", {}).get(act)
            cells.append("-" if t is None else f"{t:.0f}s")
        lines.append(f"{'story: ' + act:24}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def write_compare_png(
    recordings: Mapping[str, Recording], summaries: Mapping[str, Mapping[str, Any]], path: Path
) -> None:
    """One column per run: client p99 (5 s bins) vs the target, offered and served rate,
    replicas (desired, ready) and the variant served, on the same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(recordings)
    fig, axes = plt.subplots(
        3,
        len(names),
        sharex=True,
        sharey="row",
        figsize=(6.5 * len(names), 8),
        gridspec_kw={"height_ratios": [3, 1.5, 1.4]},
        squeeze=False,
    )
    for col, name in enumerate(names):
        rec = recordings[name]
        trace = rec.to_trace()
        d = len(trace.ok)
        t = np.arange(d)
        bins = np.arange(0, d, RECOVERY_BIN_S)
        p99 = [rec.quantile_ms(b, b + RECOVERY_BIN_S) for b in bins]
        s = summaries[name]
        ax = axes[0][col]
        ax.step(bins, p99, where="post", color="tab:blue", lw=1.3, label="client p99, 5 s bins")
        ax.axhline(rec.target_ms, color="tab:red", ls="--", lw=1.2, label="target")
        top = max([rec.target_ms * 2.5, *[p for p in p99 if math.isfinite(p)]])
        ax.set_ylim(0, min(top, rec.target_ms * 6))
        att = s.get("slo_attainment_requests")
        ax.set_title(
            f"{name}: {'-' if att is None else f'{att:.2%}'} within target, "
            f"{s.get('replica_seconds', 0):.0f} replica-s, recovery {s.get('recovery_seconds')} s",
            fontsize=9,
        )
        for st in rec.changes:
            for a in axes[:, col]:
                a.axvline(st.t, color="tab:gray", ls=":", lw=0.7)
        ax.legend(loc="upper right", fontsize=8)
        ax = axes[1][col]
        ax.plot(t, trace.arrivals, color="tab:purple", lw=1, label="offered")
        ax.plot(t, trace.completed, color="tab:green", lw=1, alpha=0.7, label="served")
        ax.legend(loc="upper left", fontsize=8)
        ax = axes[2][col]
        ax.step(t, trace.desired, where="post", color="tab:orange", label="desired replicas")
        ax.step(t, trace.ready, where="post", color="tab:green", label="ready replicas")
        ax.set_ylim(0, max(2, int(trace.pods.max()) + 1) if d else 2)
        twin = ax.twinx()
        twin.step(t, trace.variant, where="post", color="tab:pink", label="variant")
        twin.set_yticks(range(len(rec.variant_names)), rec.variant_names, fontsize=7)
        twin.set_ylim(-0.5, len(rec.variant_names) - 0.5)
        twin.invert_yaxis()
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=7)
        ax.set_xlabel("seconds since the load started")
    axes[0][0].set_ylabel("latency (ms)")
    axes[1][0].set_ylabel("req/s")
    axes[2][0].set_ylabel("replicas")
    fig.suptitle("latencyslo demo: the same arrivals and workers, two controllers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
