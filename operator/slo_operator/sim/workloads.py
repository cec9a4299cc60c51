"""Workload definitions: request-rate schedules and seeded arrival times (pure numpy).

The simulator and the local demo's load generator share these. A workload is a rate
schedule `rate(t)` (requests per second, piecewise linear) and `arrivals()`, the arrival
times of a non-homogeneous Poisson process with that rate (or the trace's own timestamps),
drawn from `seed`: the same arrays for every policy compared.

Built-in names (base_rps is the starting rate):

- `steady`  constant base rate (the stationary case), 60 min;
- `step`    base for 5 min, then x2 (`step4`: x4), 20 min in all;
- `ramp`    base for 5 min, up to x4 over 10 min, 10 min at x4, back down over 10 min,
            5 min at base (40 min);
- `diurnal` one compressed day in 60 min: base at night, x4 at the afternoon peak
            (a raised cosine);
- `bursty`  a two-state Markov-modulated Poisson process (MMPP): base rate for 20 s on
            average, x3 for 5 s on average (see BURST_X); inter-arrival CV > 1;
- `trace`   replay of a CSV file: the Azure format (`TIMESTAMP,...` one row per request)
            or `t_seconds,rps` rows (rate from t until the next row). With
            `target_mean_rps` the per-second counts are rescaled to that mean rate and
            arrivals drawn as Poisson within each second; without it the timestamps are
            replayed as they are.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

BUILTIN = ("steady", "step", "step4", "ramp", "diurnal", "bursty")
NAMES = (*BUILTIN, "trace")
SHIPPED_TRACE = Path(__file__).parent / "data" / "azure_llm_2023_code.csv"
_GRID_S = 0.05  # resolution of the cumulative-rate inversion

DEFAULT_DURATION_S: dict[str, float] = {
    "steady": 3600.0,
    "step": 1200.0,
    "step4": 1200.0,
    "ramp": 2400.0,
    "diurnal": 3600.0,
    "bursty": 1800.0,
}
STEP_AT_S = 300.0
"""When the step of `step` / `step4` happens."""
BURST_X, BURST_S, CALM_S = 3.0, 5.0, 20.0
"""`bursty`: bursts at 3x the base rate lasting 5 s on average, every 25 s on average
(exponential sojourns): arrivals with a high coefficient of variation at the time scale of
seconds, a steady mean (1.4x base) at the scale of the objective's window. Load changes that
last minutes are the `step`, `ramp` and `trace` workloads."""
TRACE_SMOOTH_S = 10.0
"""Rescaling a timestamp trace first estimates its rate with a moving average over this many
seconds: the shipped trace has 2.6 req/s on average, so per-second counts (0, 1, 2, ...) are
mostly Poisson noise; multiplying them by ~100 would turn that noise into deterministic
spikes that the real service never saw. Ten seconds hold ~26 requests (about 20 % noise)
and keep the trace's real 10-second bursts (above 12x the mean)."""


@dataclass(frozen=True)
class Workload:
    """A named rate schedule and its seeded arrival process."""

    name: str
    duration_s: float
    seed: int
    knots_t: np.ndarray = field(repr=False)
    knots_rps: np.ndarray = field(repr=False)
    timestamps: np.ndarray | None = field(default=None, repr=False)
    """Fixed arrival times (a replayed trace); None for a Poisson process."""

    def rate(self, t: float | np.ndarray) -> float | np.ndarray:
        """Scheduled requests per second at time(s) t."""
        r = np.interp(t, self.knots_t, self.knots_rps)
        return float(r) if np.ndim(r) == 0 else r

    @property
    def mean_rps(self) -> float:
        grid = np.arange(0.0, self.duration_s, 1.0) + 0.5
        return float(np.mean(self.rate(grid)))

    @property
    def peak_rps(self) -> float:
        return float(np.max(self.knots_rps))

    def arrivals(self) -> np.ndarray:
        """Arrival times in seconds, sorted, within [0, duration_s)."""
        if self.timestamps is not None:
            return self.timestamps[self.timestamps < self.duration_s].copy()
        rng = np.random.default_rng(self.seed)
        grid = np.arange(0.0, self.duration_s + _GRID_S, _GRID_S)
        mid = np.interp(grid[:-1] + _GRID_S / 2, self.knots_t, self.knots_rps)
        cum = np.concatenate(([0.0], np.cumsum(np.maximum(mid, 0.0) * _GRID_S)))
        total = cum[-1]
        n = rng.poisson(total)
        points = np.sort(rng.uniform(0.0, total, size=n))
        times = np.interp(points, cum, grid)
        return times[times < self.duration_s]

    def routing_draws(self, n: int) -> np.ndarray:
        """Uniform draws the simulator uses to spread requests (seeded like the arrivals)."""
        return np.random.default_rng(self.seed + 1_000_003).random(n)


def _steps(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a piecewise-constant schedule from (start, rps) pairs."""
    ts: list[float] = []
    rs: list[float] = []
    for i, (t, r) in enumerate(points):
        if i:
            ts.append(t - 1e-6)
            rs.append(points[i - 1][1])
        ts.append(t)
        rs.append(r)
    return np.asarray(ts), np.asarray(rs)


def _mmpp(base: float, duration: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 17)
    points: list[tuple[float, float]] = []
    t, high = 0.0, False
    while t < duration:
        points.append((t, base * (BURST_X if high else 1.0)))
        t += rng.exponential(BURST_S if high else CALM_S)
        high = not high
    points.append((duration, points[-1][1]))
    return _steps(points)


def _seconds(stamp: str) -> float:
    day, _, clock = stamp.strip().partition(" ")
    if not clock:
        day, _, clock = stamp.strip().partition("T")
    h, m, s = clock.split(":")
    return date.fromisoformat(day).toordinal() * 86400.0 + int(h) * 3600 + int(m) * 60 + float(s)


def load_trace(path: str | Path) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Read a trace CSV: (timestamps or None, knots_t, knots_rps); ValueError naming the file
    if it is malformed or not text."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a CSV text file ({exc})") from exc
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header and at least one row")
    header = [c.strip().lower() for c in rows[0]]
    body = rows[1:]
    try:
        if header[0] == "timestamp":
            secs = np.sort(np.asarray([_seconds(r[0]) for r in body]))
            secs -= secs[0]
            counts = np.bincount(secs.astype(np.int64)).astype(float)
            t = np.arange(len(counts), dtype=float)
            knots_t, knots_rps = _steps(list(zip(t.tolist(), counts.tolist(), strict=True)))
            return secs, knots_t, knots_rps
        if header[:2] == ["t_seconds", "rps"]:
            pts = sorted((float(r[0]), float(r[1])) for r in body)
            if any(r < 0 or not math.isfinite(r) for _, r in pts):
                raise ValueError("rps must be finite and >= 0")
            t0 = pts[0][0]
            pts = [(t - t0, r) for t, r in pts]
            knots_t, knots_rps = _steps(pts)
            return None, knots_t, knots_rps
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{path}: malformed row ({exc})") from exc
    raise ValueError(
        f"{path}: unknown trace format (first column must be TIMESTAMP, or columns t_seconds,rps)"
    )


def make_workload(
    name: str,
    *,
    base_rps: float,
    duration_s: float | None = None,
    seed: int = 0,
    trace_file: str | Path | None = None,
    target_mean_rps: float | None = None,
    smooth_s: float = TRACE_SMOOTH_S,
) -> Workload:
    """Build a named workload (see the module docstring); ValueError on a bad argument."""
    if not base_rps > 0 and name != "trace":
        raise ValueError(f"base_rps must be > 0, got {base_rps}")
    if name == "trace":
        return _trace_workload(
            trace_file or SHIPPED_TRACE, duration_s, seed, target_mean_rps, smooth_s
        )
    if name not in DEFAULT_DURATION_S:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(NAMES)}")
    d = float(duration_s if duration_s is not None else DEFAULT_DURATION_S[name])
    if d <= 0:
        raise ValueError("duration_s must be > 0")
    b = float(base_rps)
    if name == "steady":
        t, r = np.array([0.0, d]), np.array([b, b])
    elif name in ("step", "step4"):
        k = 4.0 if name == "step4" else 2.0
        at = min(STEP_AT_S, d / 4)
        t, r = _steps([(0.0, b), (at, k * b), (d, k * b)])
    elif name == "ramp":
        s = d / 8  # 5 min of 40 by default
        t = np.array([0.0, s, 3 * s, 5 * s, 7 * s, d])
        r = np.array([b, b, 4 * b, 4 * b, b, b])
    elif name == "diurnal":
        t = np.linspace(0.0, d, 241)
        r = b * (2.5 - 1.5 * np.cos(2 * np.pi * t / d))
    else:  # bursty
        t, r = _mmpp(b, d, seed)
    return Workload(name=name, duration_s=d, seed=seed, knots_t=t, knots_rps=r)


def _trace_workload(
    path: str | Path,
    duration_s: float | None,
    seed: int,
    target_mean_rps: float | None,
    smooth_s: float = TRACE_SMOOTH_S,
) -> Workload:
    stamps, t, r = load_trace(path)
    length = float(t[-1] + 1.0) if stamps is not None else float(t[-1])
    if stamps is None and len(t) and duration_s is None:
        length = max(length, 1.0)
    d = float(duration_s) if duration_s is not None else length
    if d <= 0:
        raise ValueError("duration_s must be > 0")
    t = np.append(t, max(d, t[-1]) + 1.0)
    r = np.append(r, r[-1] if stamps is None else 0.0)
    if target_mean_rps is not None:
        if not target_mean_rps > 0:
            raise ValueError(f"target_mean_rps must be > 0, got {target_mean_rps}")
        if smooth_s < 1:
            raise ValueError(f"smooth_s must be >= 1, got {smooth_s}")
        grid = np.arange(0.0, d, 1.0) + 0.5
        per_s = np.interp(grid, t, r)
        if stamps is not None and smooth_s > 1:
            # estimate the rate, do not scale the shot noise of a sparse trace
            k = round(smooth_s)
            per_s = np.convolve(per_s, np.ones(k) / k, mode="same")
        mean = float(np.mean(per_s))
        if mean <= 0:
            raise ValueError("the trace has no requests within the duration")
        t, r = _steps(
            list(zip(grid.tolist(), (per_s * (target_mean_rps / mean)).tolist(), strict=False))
        )
        t = np.append(t, d + 1.0)
        r = np.append(r, r[-1])
        stamps = None  # redraw: Poisson arrivals at the rescaled rate
    return Workload(
        name="trace", duration_s=d, seed=seed, knots_t=t, knots_rps=r, timestamps=stamps
    )
