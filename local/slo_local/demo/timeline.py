"""What a demo run recorded, scored with the simulator's own definitions, and drawn.

The recording has three parts: every request (`slo_local.loadgen.RequestRecord`), one
`Tick` per second (the replica set and runtime config in force), and one `Step` per control
interval (what the controller observed and decided). `to_trace` turns them into the
simulator's per-second `Trace`, so `slo_operator.sim.metrics.summarize` scores the real run
exactly as it scores a simulated one (attainment, windows, recovery, replica-seconds,
accuracy): the agreement test compares like with like.

Latency ground truth is the client's: the time from when a request was due to its answer.
A request that did not get a 200 (refused, 5xx, transport error) counts against the SLO, as
a rejected request does in the simulator.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_local.loadgen import RequestRecord
from slo_operator.sim.engine import N_BUCKETS, Trace
from slo_operator.sim.metrics import RECOVERY_BIN_S, RECOVERY_GOOD_BINS, summarize
from slo_operator.types import RuntimeConfig

SUMMARY_KEYS = (
    "slo_attainment_requests",
    "slo_attainment_windows",
    "recovery_seconds",
    "replica_seconds",
    "accuracy",
    "decisions",
    "requests",
    "failed_requests",
)
"""The JSON summary's keys, exactly (issue 5)."""
_EDGES_S = np.asarray(LATENCY_BUCKETS_MS, dtype=float) / 1000.0


@dataclass(frozen=True, slots=True)
class Tick:
    """The replica set and the runtime config at the start of one second."""

    t: int
    desired: int
    ready: int
    processes: int
    config: RuntimeConfig


@dataclass(frozen=True, slots=True)
class Step:
    """One control interval: what the controller saw, decided and did."""

    t: float
    latency_ms: float | None
    request_rate: float | None
    error: str | None
    age_seconds: float | None
    action: str
    reason: str
    acted: bool
    before: RuntimeConfig
    after: RuntimeConfig
    trusted: bool
    """The observation was usable: no error, fresh, a latency and a rate above the floor."""
    predicted_latency_ms: float | None = None


@dataclass
class Recording:
    """Everything one run recorded (times in seconds from the start of the load)."""

    target_ms: float
    quantile: float
    window_s: int
    interval_s: int
    preferred: str
    variant_names: tuple[str, ...]
    accuracy: dict[str, float]
    duration_s: float
    requests: list[RequestRecord] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def seconds(self) -> int:
        last = max((r.done for r in self.requests), default=0.0)
        return max(1, math.ceil(max(self.duration_s, last)))

    @property
    def changes(self) -> list[Step]:
        """Steps that changed the configuration."""
        return [s for s in self.steps if s.acted and s.after != s.before]

    # ------------------------------------------------------------------ per second

    def to_trace(self) -> Trace:
        d = self.seconds
        n = len(self.requests)
        due = np.fromiter((r.due for r in self.requests), float, n)
        lat = np.fromiter((r.latency for r in self.requests), float, n)
        ok = np.fromiter((r.ok for r in self.requests), bool, n)
        done_s = np.minimum((due + lat).astype(np.int64), d - 1)
        due_s = np.minimum(due.astype(np.int64), d - 1)
        arrivals = np.bincount(due_s, minlength=d).astype(float)
        completed = np.bincount(done_s[ok], minlength=d).astype(float)
        rejected = np.bincount(done_s[~ok], minlength=d).astype(float)
        within = ok & (lat <= self.target_ms / 1000.0)
        good = np.bincount(done_s[within], minlength=d).astype(float)
        bucket = np.searchsorted(_EDGES_S, lat[ok], side="left")
        hist = np.zeros((d, N_BUCKETS))
        np.add.at(hist, (done_s[ok], bucket), 1.0)
        acc_of = np.array(
            [self.accuracy.get(r.variant, math.nan) if r.ok else math.nan for r in self.requests]
        )
        known = ~np.isnan(acc_of)
        served_acc = np.bincount(done_s[known], weights=acc_of[known], minlength=d)
        served_known = np.bincount(done_s[known], minlength=d).astype(float)
        inflight = np.cumsum(
            np.bincount(due_s, minlength=d + 1)[:d] - np.bincount(done_s, minlength=d + 1)[:d]
        ).astype(float)

        index = {name: i for i, name in enumerate(self.variant_names)}
        desired = np.zeros(d, dtype=np.int32)
        ready = np.zeros(d, dtype=np.int32)
        pods = np.zeros(d, dtype=np.int32)
        window = np.zeros(d)
        max_batch = np.zeros(d, dtype=np.int32)
        variant = np.zeros(d, dtype=np.int32)
        ticks = sorted(self.ticks, key=lambda k: k.t)
        k = 0
        current = ticks[0] if ticks else None
        for t in range(d):
            while k < len(ticks) and ticks[k].t <= t:
                current = ticks[k]
                k += 1
            if current is None:
                continue
            desired[t], ready[t], pods[t] = current.desired, current.ready, current.processes
            window[t] = current.config.batch_window_ms
            max_batch[t] = current.config.max_batch_size
            variant[t] = index.get(current.config.variant, 0)
        decisions = [(int(s.t), s.before, s.after) for s in self.changes]
        return Trace(
            desired=desired,
            ready=ready,
            pods=pods,
            window_ms=window,
            max_batch=max_batch,
            variant=variant,
            arrivals=arrivals,
            rejected=rejected,
            completed=completed,
            ok=good,
            hist=hist,
            busy=np.zeros(d),
            inflight=inflight,
            served_accuracy=served_acc,
            served_known_accuracy=served_known,
            decisions=decisions,
            variant_names=self.variant_names,
            target_ms=self.target_ms,
            unserved=0,
        )

    # ------------------------------------------------------------------ scores

    def metrics(self) -> dict[str, Any]:
        """The simulator's figures for this run (`slo_operator.sim.metrics.summarize`)."""
        return summarize(
            self.to_trace(), self.quantile, self.window_s, self.interval_s, self.preferred
        )

    def summary(self) -> dict[str, Any]:
        """The JSON summary: exactly `SUMMARY_KEYS`."""
        m = self.metrics()
        failed = sum(1 for r in self.requests if not r.ok)
        return {
            "slo_attainment_requests": _round(m["slo_attainment_requests"]),
            "slo_attainment_windows": _round(m["slo_attainment_windows"]),
            "recovery_seconds": m["recovery_seconds"],
            "replica_seconds": m["replica_seconds"],
            "accuracy": _round(m["accuracy"]),
            "decisions": len(self.changes),
            "requests": len(self.requests),
            "failed_requests": failed,
        }

    def quantile_ms(self, start: float, end: float) -> float:
        """The objective's quantile of the client latencies of requests due in [start, end)
        (failed requests count as infinitely slow); NaN without requests."""
        lat = [r.latency if r.ok else math.inf for r in self.requests if start <= r.due < end]
        if not lat:
            return math.nan
        return float(np.quantile(np.asarray(lat), self.quantile, method="higher")) * 1000.0

    def _good_bins(self) -> list[bool]:
        """Per 5-second bin of completions: did the objective's share of requests (99 %)
        finish within the target? (the simulator's bin rule; empty bins are good)"""
        trace = self.to_trace()
        d = len(trace.ok) // RECOVERY_BIN_S * RECOVERY_BIN_S
        ok = trace.ok[:d].reshape(-1, RECOVERY_BIN_S).sum(1)
        den = (trace.completed[:d] + trace.rejected[:d]).reshape(-1, RECOVERY_BIN_S).sum(1)
        return [n == 0 or k / n >= self.quantile - 1e-12 for k, n in zip(ok, den, strict=True)]

    def recovery_after(
        self,
        t: float,
        *,
        good_in_a_row: int = RECOVERY_GOOD_BINS,
        within: float | None = None,
    ) -> float | None:
        """Seconds from `t` until the client latency is back under the target: from the
        first 5-second bin with a breach at or after `t`'s bin to the end of the first of
        `good_in_a_row` good bins in a row (3: the simulator's episode rule; 1: the p99 is
        back under the target for the first time); 0 without a breach; None if it never
        comes back. With `within`, only a breach that starts in a bin beginning less than
        `within` seconds after `t` is `t`'s (a later one is another episode, e.g. a stall)."""
        good = self._good_bins()
        first = int(t // RECOVERY_BIN_S)
        last = (
            len(good)
            if within is None
            else min(len(good), math.ceil((t + within) / RECOVERY_BIN_S))
        )
        bad = next((i for i in range(first, last) if not good[i]), None)
        if bad is None:
            return 0.0
        run = 0
        for j in range(bad, len(good)):
            run = run + 1 if good[j] else 0
            if run == good_in_a_row:
                end = (j - run + 1) * RECOVERY_BIN_S if good_in_a_row > 1 else j * RECOVERY_BIN_S
                return max(0.0, end - t)
        return None

    # ------------------------------------------------------------------ files

    def rows(self) -> list[dict[str, Any]]:
        """One row per second: load, latency (measured and observed), knobs, decisions."""
        trace = self.to_trace()
        d = len(trace.ok)
        by_second: dict[int, Step] = {int(s.t): s for s in self.steps}
        observed: float | None = None
        rows: list[dict[str, Any]] = []
        win = self.window_s
        for t in range(d):
            step = by_second.get(t)
            if step is not None:
                observed = step.latency_ms
            rows.append(
                {
                    "t": t,
                    "offered_rps": int(trace.arrivals[t]),
                    "completed": int(trace.completed[t]),
                    "failed": int(trace.rejected[t]),
                    "within_target": int(trace.ok[t]),
                    "p99_ms_1s": _fmt(self.quantile_ms(t, t + 1)),
                    "p99_ms_window": _fmt(self.quantile_ms(max(0, t + 1 - win), t + 1)),
                    "observed_p99_ms": _fmt(observed),
                    "target_ms": self.target_ms,
                    "desired_replicas": int(trace.desired[t]),
                    "ready_replicas": int(trace.ready[t]),
                    "processes": int(trace.pods[t]),
                    "window_ms": int(trace.window_ms[t]),
                    "variant": self.variant_names[int(trace.variant[t])],
                    "action": step.action if step is not None else "",
                    "applied": (step.acted and step.after != step.before) if step else "",
                    "reason": step.reason if step is not None else "",
                }
            )
        return rows

    def write_csv(self, path: Path) -> None:
        rows = self.rows()
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["t"])
            writer.writeheader()
            writer.writerows(rows)

    def write_requests_csv(self, path: Path) -> None:
        """Every request: when it was due, latency, status, replica, variant, generator lag."""
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["due_s", "latency_ms", "status", "replica", "variant", "lag_ms", "error"]
            )
            for r in sorted(self.requests, key=lambda r: r.due):
                writer.writerow(
                    [
                        f"{r.due:.4f}",
                        f"{r.latency * 1000:.2f}",
                        r.status,
                        r.replica,
                        r.variant,
                        f"{r.lag * 1000:.2f}",
                        r.error,
                    ]
                )

    def write_png(self, path: Path, title: str = "") -> None:
        """p99 vs target, request rate, replicas, window and variant, decision markers."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        trace = self.to_trace()
        d = len(trace.ok)
        t = np.arange(d)
        bins = np.arange(0, d, RECOVERY_BIN_S)
        p99_bins = [self.quantile_ms(b, b + RECOVERY_BIN_S) for b in bins]
        p99_win = [self.quantile_ms(max(0, s + 1 - self.window_s), s + 1) for s in t]

        fig, axes = plt.subplots(
            4, 1, sharex=True, figsize=(11, 9), gridspec_kw={"height_ratios": [3, 1.5, 1.2, 1.2]}
        )
        ax = axes[0]
        ax.step(bins, p99_bins, where="post", color="tab:blue", lw=1.2, label="p99, 5 s bins")
        ax.plot(t, p99_win, color="tab:cyan", lw=1, label=f"p99 over {self.window_s} s")
        steps = [s for s in self.steps if s.latency_ms is not None]
        ax.plot(
            [s.t for s in steps],
            [s.latency_ms for s in steps],
            "o",
            ms=4,
            color="black",
            label="controller's view",
        )
        ax.axhline(self.target_ms, color="tab:red", ls="--", lw=1.2, label="target")
        top = max([self.target_ms * 2.5, *[p for p in p99_bins if math.isfinite(p)]])
        ax.set_ylim(0, min(top, self.target_ms * 6))
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper right", fontsize=8, ncol=2)
        for s in self.changes:
            for a in axes:
                a.axvline(s.t, color="tab:gray", ls=":", lw=0.8)
            ax.annotate(
                s.action,
                (s.t, ax.get_ylim()[1]),
                xytext=(2, -10),
                textcoords="offset points",
                rotation=90,
                fontsize=7,
                va="top",
                color="tab:gray",
            )

        ax = axes[1]
        ax.plot(t, trace.arrivals, color="tab:purple", lw=1, label="offered")
        ax.plot(t, trace.completed, color="tab:green", lw=1, alpha=0.7, label="served")
        failed = trace.rejected
        if failed.any():
            ax.bar(t, failed, color="tab:red", label="failed")
        ax.set_ylabel("req/s")
        ax.legend(loc="upper left", fontsize=8)

        ax = axes[2]
        ax.step(t, trace.desired, where="post", color="tab:orange", label="desired")
        ax.step(t, trace.ready, where="post", color="tab:green", label="ready")
        ax.set_ylabel("replicas")
        ax.set_ylim(0, max(2, int(trace.pods.max()) + 1) if d else 2)
        ax.legend(loc="upper left", fontsize=8)

        ax = axes[3]
        ax.step(t, trace.window_ms, where="post", color="tab:brown", label="batch window")
        ax.set_ylabel("window (ms)")
        ax.set_ylim(0, max(10.0, float(trace.window_ms.max()) * 1.25 if d else 10.0))
        ax.set_xlabel("seconds since the load started")
        twin = ax.twinx()
        twin.step(t, trace.variant, where="post", color="tab:pink", label="variant")
        twin.set_yticks(range(len(self.variant_names)), self.variant_names, fontsize=8)
        twin.set_ylim(-0.5, len(self.variant_names) - 0.5)
        twin.invert_yaxis()
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)

        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _round(value: float, digits: int = 5) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.1f}"


def attainment_gap(real: float, simulated: float) -> float:
    """Percentage points between two attainments."""
    return abs(real - simulated) * 100.0


def untrusted_actions(steps: Sequence[Step]) -> list[Step]:
    """Steps that changed something on data the controller must not act on."""
    return [s for s in steps if s.acted and s.after != s.before and not s.trusted]
