"""Cost against violated SLO windows: every baseline's target swept, latencyslo at its defaults.

    python bench/pareto.py --json FILE [--seeds N] [--trace-file CSV ...] [--scenarios LIST]
                           [--trace-load X,Y]

For every scenario (step, step4, ramp, diurnal, bursty, the shipped trace, and each
`--trace-file`; with `--trace-load 1,3` each trace rescaled to a mean of 1 and of 3 replicas'
capacity, named `trace`, `trace@3x`, `file:STEM@1x`, ...) on identical arrivals and the
measured plant (`slo_operator.sim.plant`: batch times drawn from the measured medians and
spread, not the controller's line):

- every baseline of `slo_operator.sim.baselines` serving each variant (a fleet of `full`,
  `quantized`, `distilled`), its target swept loose to tight (`SWEEPS`);
- latencyslo at its defaults (the default LatencySLO, as `latencyslo simulate` runs it); with
  `--merge FILE --rerun-ours --cost-share X` latencyslo again with `qualityBudget.costShare`
  X against the same frontiers ("meta.latencyslo_spec" records what it ran);
- the oracle: the cheapest plan found that meets the SLO, with variant switching in the
  quality budget (`slo_operator.sim.oracle`); with `--merge FILE --preferred-oracle` also the
  same search serving the preferred variant only ("oracle_preferred": what foresight alone
  saves, apart from what the variants save), and with `--oracle-allowed full,quantized`
  serving only those ("oracle_restricted"); G2 is reported against each.

Writes FILE: {"scenarios": {NAME: {"latencyslo": POINT, "frontiers": {BASELINE: [POINT]},
"oracle": POINT}}, "meta": {...}} with POINT = {"target", "replica_seconds",
"slo_attainment_requests", "slo_attainment_windows", "accuracy"} (means over the seeds); a
fleet serving a variant other than `full` is the frontier `BASELINE@VARIANT`. "meta" holds the
seeds, the plant, each fleet's measured capacity, the table of violating windows at
latencyslo's cost, the oracle's search and the controller's prediction error. One PNG per
scenario next to FILE (FILE-stem-NAME.png): replica-seconds against violating windows.
latencyslo also runs on the `steady` workload (its changes per hour, "meta.stationary"), and
"verdict" holds the goals G1-G6 per scenario (`verdict`), printed after the tables;
`--render` recomputes the tables and the verdict from the means and writes them back.
Runs on one core, one seed after the other; FILE is rewritten after every seed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.model import predict
from slo_operator.model.histogram import histogram_quantile
from slo_operator.sim.baselines import BASELINES, SWEEPS
from slo_operator.sim.engine import SimSettings, Simulation
from slo_operator.sim.plant import Plant, measured_plant
from slo_operator.sim.policies import _Hold
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.runner import TRACE_LOAD, default_spec
from slo_operator.sim.sweep import Prepared, prepare, run_baseline, run_oracle, run_ours
from slo_operator.sim.workloads import load_trace
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig

SCENARIOS = ("step", "step4", "ramp", "diurnal", "bursty", "trace")
POINT_KEYS = ("replica_seconds", "slo_attainment_requests", "slo_attainment_windows", "accuracy")
DETAIL_KEYS = ("recovery_seconds", "replica_changes", "variant_switches", "violating_windows",
               "degraded_fraction")  # fmt: skip
"""latencyslo's further figures kept per scenario (means over the seeds), for the goals."""
STATIONARY = "steady"
"""The stationary workload latencyslo also runs on (G6: changes per hour)."""
OURS = "latencyslo"


def _created(path: str) -> str | None:
    """When the profile was measured (its `extra.created`), if it says."""
    try:
        return json.loads(Path(path).read_text()).get("extra", {}).get("created")
    except (OSError, ValueError):
        return None


def frontier_name(baseline: str, variant: str, preferred: str) -> str:
    return baseline if variant == preferred else f"{baseline}@{variant}"


def mean_point(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """POINT: the mean over seeds of the figures (and of the target)."""
    out: dict[str, Any] = {"target": float(np.mean([r["target"] for r in runs]))}
    for k in POINT_KEYS:
        vals = [float(r[k]) for r in runs if not math.isnan(float(r[k]))]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, bad) points no cheaper point beats on bad, by cost."""
    front: list[tuple[float, float]] = []
    for cost, bad in sorted(points):
        if not front or bad < front[-1][1]:
            front.append((cost, bad))
    return front


def at_cost(points: Sequence[tuple[float, float]], cost: float) -> tuple[float | None, str]:
    """Violating windows on the frontier at `cost` (linear between frontier points).

    ("below": every setting costs more; "above": the most it reaches, at less cost)."""
    front = pareto_front(points)
    if not front or cost < front[0][0]:
        return None, "below"
    if cost >= front[-1][0]:
        return front[-1][1], "above" if cost > front[-1][0] else "within"
    for (c0, b0), (c1, b1) in itertools.pairwise(front):
        if c0 <= cost <= c1:
            return b0 + (b1 - b0) * (cost - c0) / (c1 - c0), "within"
    return front[-1][1], "within"  # pragma: no cover - unreachable


def prediction_error(
    profiles: ProfileSet,
    plant: Plant | None,
    settings: SimSettings,
    loads: Sequence[float] = (0.3, 0.6, 0.85),
) -> list[dict]:
    """The controller's p99 prediction against the simulated p99, on the model's own plant
    (the line, 5 % jitter) and on the measured plant: one replica and three, at `loads` of
    the model's saturation rate, window 0, max batch 32, 120 s of Poisson load. On the
    measured plant also the prediction with the profile factor the controller learns from
    that run's batch times (`fitted_*`: what the learned quantile correction still has to
    cover, and how that changes with the load)."""
    from slo_operator.model import max_throughput_rps
    from slo_operator.policy.profiles import fit_profiles
    from slo_operator.sim.view import SimView

    rows = []
    for variant, prof in profiles.variants.items():
        for replicas in (1, 3):
            for load in loads:
                rate = load * max_throughput_rps(prof, 32) * replicas
                pred = predict(prof, rate, replicas, 0, 32).latency_ms
                row: dict[str, Any] = {"variant": variant, "replicas": replicas, "load": load,
                                       "rate_rps": rate, "predicted_p99_ms": pred}  # fmt: skip
                for label, pl in (("model_plant", None), ("measured_plant", plant)):
                    rng = np.random.default_rng(7)
                    n = int(rate * 130)
                    arr = np.cumsum(rng.exponential(1.0 / rate, n))
                    sim = Simulation(
                        arr, rng.random(n), 120, profiles,
                        RuntimeConfig(replicas, 0, 32, variant), 100.0,
                        SimSettings(queue_limit=1 << 20), seed=7, plant=pl,
                    )  # fmt: skip
                    tr = sim.run(_Hold())
                    got = histogram_quantile(0.99, LATENCY_BUCKETS_MS, tr.hist[10:].sum(0).tolist())
                    row[f"{label}_p99_ms"] = got
                    row[f"{label}_error"] = pred / got - 1.0 if got > 0 else None
                    if label != "measured_plant":
                        continue
                    fit = fit_profiles(profiles, SimView(sim).batches(10, 120), {})
                    fitted = predict(fit.profiles.variants[variant], rate, replicas, 0, 32)
                    row["fitted_factor"] = fit.scale.get(variant, 1.0)
                    row["fitted_p99_ms"] = fitted.latency_ms
                    row["fitted_error"] = fitted.latency_ms / got - 1.0 if got > 0 else None
                rows.append(row)
    return rows


def document(
    raw: Mapping[str, Mapping[str, Any]], meta: dict[str, Any], preferred: str
) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for name, per in raw.items():
        ours = mean_point(per[OURS])
        windows = float(np.mean([r["windows"] for r in per[OURS]]))
        frontiers = {
            f: [mean_point(runs) for runs in settings.values()]
            for f, settings in per["frontiers"].items()
        }
        scenarios[name] = {
            OURS: ours,
            "latencyslo_detail": mean_detail(per[OURS]),
            "frontiers": frontiers,
            "oracle": mean_point(per["oracle"]),
        }

        table[name] = {
            **scenario_table(scenarios[name], windows),
            "oracle_search": {"met_per_seed": [bool(r["met"]) for r in per["oracle"]],
                              "tried_per_seed": [r["tried"] for r in per["oracle"]]},
        }  # fmt: skip
    doc = {"scenarios": scenarios, "meta": {**meta, "table": table}}
    doc["verdict"] = verdict(doc)
    return doc


def mean_detail(runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([float(r[k]) for r in runs])) for k in DETAIL_KEYS if k in runs[0]}


class Job(NamedTuple):
    """One scenario of a run: a built-in workload, or a trace (the shipped one when `file`
    is None) rescaled to `load` times one replica's capacity (None: the shipped trace at
    `TRACE_LOAD`, a file as it is)."""

    name: str
    workload: str
    file: Path | None = None
    load: float | None = None

    def record(self) -> dict[str, Any]:
        """What "meta.traces" keeps, so that a merge can prepare the trace again."""
        return {"file": None if self.file is None else str(self.file), "load": self.load}

    @classmethod
    def of(cls, name: str, trace: Mapping[str, Any] | None) -> Job | None:
        """The job of a written scenario: a built-in name, else its recorded trace."""
        if trace is not None:
            file = trace.get("file")
            return cls(name, "trace", None if file is None else Path(file), trace.get("load"))
        return cls(name, name) if name in SCENARIOS else None

    def prepare(
        self, spec: LatencySLOSpec, sim: tuple[ProfileSet, Plant, SimSettings], seed: int
    ) -> Prepared:
        profiles, plant, settings = sim
        if self.file is not None and not self.file.is_file():
            raise SystemExit(f"{self.name}: trace file {self.file} not found")
        return prepare(self.workload, spec=spec, profiles=profiles, settings=settings,
                       plant=plant, seed=seed, trace_file=self.file,
                       trace_load=self.load)  # fmt: skip


def scenario_jobs(
    names: Sequence[str], files: Sequence[Path], loads: Sequence[float] | None
) -> list[Job]:
    """The built-in scenarios of `names`, then the shipped trace (when "trace" is among them)
    and every file at each of `loads`: NAME@Xx, except the shipped trace at `TRACE_LOAD`,
    which keeps the name "trace". Without `loads`: the shipped trace at 1x, files as they
    are."""
    jobs = [Job(n, n) for n in names if n != "trace"]
    traces: list[tuple[str, Path | None]] = [("trace", None)] if "trace" in names else []
    traces += [(f"file:{f.stem}", f) for f in files]
    for base, file in traces:
        if loads is None:
            jobs.append(Job(base, "trace", file))
            continue
        for x in loads:
            plain = file is None and x == TRACE_LOAD
            jobs.append(Job(base if plain else f"{base}@{x:g}x", "trace", file, x))
    return jobs


def _loads(text: str) -> list[float]:
    try:
        loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers") from None
    if not loads or any(not (x > 0 and math.isfinite(x)) for x in loads):
        raise argparse.ArgumentTypeError(f"{text!r}: each load must be a number > 0")
    return loads


def run_stationary(
    spec: Any, profiles: ProfileSet, settings: SimSettings, plant: Plant | None, seed: int
) -> dict[str, Any]:
    """latencyslo on the stationary workload: its changes (G6) and the scored duration."""
    prep = prepare(STATIONARY, spec=spec, profiles=profiles, settings=settings, plant=plant,
                   seed=seed)  # fmt: skip
    m = run_ours(prep)
    m["duration_s"] = float(prep.duration - prep.warmup_s)
    return m


def mean_stationary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("duration_s", "replica_changes", "variant_switches", "slo_attainment_requests",
            "replica_seconds")  # fmt: skip
    return {"seeds": len(runs), **{k: float(np.mean([r[k] for r in runs])) for k in keys}}


def scenario_table(scen: Mapping[str, Any], windows: float) -> dict[str, Any]:
    """Per frontier: its violating windows at ours' cost, and what matching ours costs it."""

    def bad(p: Mapping[str, Any]) -> float:
        return (1.0 - float(p["slo_attainment_windows"])) * windows

    ours = scen[OURS]
    rows = {}
    for f, pts in scen["frontiers"].items():
        value, where = at_cost([(p["replica_seconds"], bad(p)) for p in pts],
                               ours["replica_seconds"])  # fmt: skip
        matching = [p["replica_seconds"] for p in pts if bad(p) <= bad(ours) + 1e-9]
        rows[f] = {"violating_windows_at_our_cost": value, "where": where,
                   "replica_seconds_to_match_ours": min(matching) if matching else None,
                   "accuracy": pts[0]["accuracy"],
                   "cheapest_replica_seconds": min(p["replica_seconds"] for p in pts),
                   "fewest_violating_windows": min(bad(p) for p in pts)}  # fmt: skip
    oracle = scen["oracle"]
    return {
        "windows": windows,
        "ours": {"replica_seconds": ours["replica_seconds"], "violating_windows": bad(ours)},
        "oracle": {"replica_seconds": oracle["replica_seconds"],
                   "violating_windows": bad(oracle)},
        "baselines": rows,
    }  # fmt: skip


def plot(path: Path, name: str, scen: Mapping[str, Any], windows: float, preferred: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"full": "o", "quantized": "s", "distilled": "^"}
    colors = dict(zip(BASELINES, plt.get_cmap("tab10").colors, strict=False))

    def bad(p: Mapping[str, Any]) -> float:
        return (1.0 - float(p["slo_attainment_windows"])) * windows

    fig, ax = plt.subplots(figsize=(10, 6.5))
    for f, pts in scen["frontiers"].items():
        base, _, variant = f.partition("@")
        variant = variant or preferred
        pts = sorted(pts, key=lambda p: p["replica_seconds"])
        acc = pts[0]["accuracy"]
        ax.plot([p["replica_seconds"] for p in pts], [bad(p) for p in pts],
                marker=markers.get(variant, "x"), color=colors.get(base, "grey"),
                ls="-" if variant == preferred else (":" if variant == "distilled" else "--"),
                lw=1, ms=5, label=f"{f} (acc {100 * acc:.1f} %)" if acc else f)  # fmt: skip
    for key, mk, col in ((OURS, "*", "black"), ("oracle", "D", "red")):
        p = scen[key]
        acc = p["accuracy"]
        ax.plot([p["replica_seconds"]], [bad(p)], marker=mk, color=col, ms=14 if mk == "*" else 9,
                ls="none", label=f"{key} (acc {100 * acc:.1f} %)")  # fmt: skip
    ax.set_xlabel("replica-seconds (cost)")
    ax.set_ylabel(f"violating objective windows (of {windows:.0f})")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(f"{name}: cost vs violating windows; marker = variant served (accuracy)")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trace-file", type=Path, action="append", default=[])
    ap.add_argument("--trace-load", type=_loads, default=None, metavar="X[,Y...]",
                    help="rescale the shipped trace and every --trace-file to these multiples "
                    "of one replica's capacity, one scenario each (NAME@Xx) [default: the "
                    "shipped trace at 1x, a file as it is]")  # fmt: skip
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--baselines", default=",".join(BASELINES))
    ap.add_argument("--spread", type=Path, default=None,
                    help="batch-spread JSON [default: the shipped one]")  # fmt: skip
    ap.add_argument("--render", action="store_true",
                    help="print the tables and draw the PNGs of a written --json FILE")  # fmt: skip
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="combine these results (different seeds) into --json FILE")  # fmt: skip
    ap.add_argument("--rerun-ours", action="store_true",
                    help="with --merge: run latencyslo again (today's code)")  # fmt: skip
    ap.add_argument("--preferred-oracle", action="store_true",
                    help="with --merge: the oracle serving the preferred variant only")  # fmt: skip
    ap.add_argument("--oracle-allowed", default=None,
                    help="with --merge: the oracle serving only these (v1,v2)")  # fmt: skip
    ap.add_argument("--cost-share", type=float, default=None,
                    help="with --rerun-ours: this qualityBudget.costShare")  # fmt: skip
    ap.add_argument("--degraded-fraction", type=float, default=None,
                    help="with --rerun-ours: this qualityBudget.maxDegradedFraction")  # fmt: skip
    ap.add_argument("--headroom", type=float, default=None,
                    help="with --rerun-ours: this policy.headroom")  # fmt: skip
    ap.add_argument("--max-queue-wait-ms", type=float, default=SimSettings.queue_wait_ms,
                    help="the workers' --max-queue-wait-ms, for every policy and the oracle "
                    "(0: no limit; --merge keeps the one its files ran with)")  # fmt: skip
    args = ap.parse_args()
    if args.merge:
        doc = merge(args.merge)
        if args.rerun_ours:
            rerun_ours(doc, ours_spec(args.cost_share, args.degraded_fraction, args.headroom))
        elif (args.cost_share, args.degraded_fraction, args.headroom) != (None, None, None):
            ap.error("--cost-share, --degraded-fraction and --headroom need --rerun-ours")
        if args.preferred_oracle:
            restricted_oracle(doc)
        if args.oracle_allowed:
            restricted_oracle(doc, [v for v in args.oracle_allowed.split(",") if v])
        args.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
        render(args.json)
        return
    if args.render:
        if not args.json.is_file():
            ap.error(f"--json {args.json}: no such file to render")
        render(args.json)
        return
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    for f in args.trace_file:
        if not f.is_file():
            ap.error(f"--trace-file {f}: no such file")
        try:
            load_trace(f)
        except ValueError as exc:
            ap.error(f"--trace-file: {exc}")
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        ap.error(f"--scenarios: unknown {unknown}; known: {', '.join(SCENARIOS)}")
    baselines = [b for b in args.baselines.split(",") if b]
    if any(b not in BASELINES for b in baselines):
        ap.error(f"--baselines: known: {', '.join(BASELINES)}")
    profiles, source = default_profiles()
    plant = (
        measured_plant(MEASURED_PROFILE if MEASURED_PROFILE.is_file() else None, args.spread)
        if args.spread
        else measured_plant(MEASURED_PROFILE if MEASURED_PROFILE.is_file() else None)
    )
    if not args.max_queue_wait_ms >= 0:
        ap.error("--max-queue-wait-ms: milliseconds, >= 0")
    spec = default_spec()
    settings = SimSettings(queue_wait_ms=args.max_queue_wait_ms)
    preferred = spec.variants.effective_preferred
    variants = [v for v in spec.variants.allowed if v in profiles.variants]
    jobs = scenario_jobs(names, args.trace_file, args.trace_load)
    started = time.perf_counter()
    raw: dict[str, dict[str, Any]] = {}
    stationary: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "profile": source,
        "profile_created": _created(source),
        "plant": plant.source,
        "queue_wait_ms": settings.queue_wait_ms,
        "spec": spec.model_dump(mode="json", by_alias=True),
        "sweeps": {b: list(SWEEPS[b]) for b in baselines},
        "variants": variants,
        "commit": _git_head(),
        "prediction_error": prediction_error(profiles, plant, settings),
        "traces": {j.name: j.record() for j in jobs if j.workload == "trace"},
    }
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for job in jobs:
            t0 = time.perf_counter()
            name = job.name
            prep = job.prepare(spec, (profiles, plant, settings), seed)
            per = raw.setdefault(name, {OURS: [], "frontiers": {}, "oracle": []})
            ours = run_ours(prep)
            ours["target"] = spec.target_latency_ms
            per[OURS].append(ours)
            for b in baselines:
                for v in variants:
                    f = frontier_name(b, v, preferred)
                    settings_runs = per["frontiers"].setdefault(f, {})
                    for s in SWEEPS[b]:
                        settings_runs.setdefault(s, []).append(run_baseline(prep, b, v, s))
            oracle, _ = run_oracle(prep)
            per["oracle"].append(oracle)
            print(f"seed {seed} {name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        stationary.append(run_stationary(spec, profiles, settings, plant, seed))
        meta["stationary"] = mean_stationary(stationary)
        meta["capacity_rps"] = {v: prep.calibration(v).capacity_rps for v in variants}
        meta["inflight_at_capacity"] = {v: prep.calibration(v).inflight_at_capacity
                                        for v in variants}  # fmt: skip
        meta["seeds"] = list(range(args.first_seed, seed + 1))
        meta["elapsed_s"] = time.perf_counter() - started
        doc = document(raw, meta, preferred)
        args.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
        print(f"wrote {args.json} ({len(meta['seeds'])} seeds)", file=sys.stderr)
    render(args.json)


def print_table(doc: Mapping[str, Any]) -> None:
    """Markdown: per scenario, ours and the oracle; per baseline and fleet, its violating
    windows at ours' cost (interpolated on its frontier)."""
    table = doc["meta"]["table"]
    variants = doc["meta"].get("variants", ["full"])
    preferred = variants[0]
    print("| scenario | latencyslo: replica-s, bad windows, req % within, acc % "
          "| oracle: replica-s, bad windows, acc % |")  # fmt: skip
    print("|---|---|---|")
    for name, t in table.items():
        o, sc = t["ours"], doc["scenarios"][name]
        print(f"| {name} | {o['replica_seconds']:.0f}, {o['violating_windows']:.1f} of "
              f"{t['windows']:.0f}, {100 * sc[OURS]['slo_attainment_requests']:.2f}, "
              f"{100 * sc[OURS]['accuracy']:.2f} | {t['oracle']['replica_seconds']:.0f}, "
              f"{t['oracle']['violating_windows']:.1f}, "
              f"{100 * sc['oracle']['accuracy']:.2f} |")  # fmt: skip
    print()
    head = " | ".join(f"{v} fleet" for v in variants)
    print("Each cell: violating windows at latencyslo's cost / replica-seconds to match ours\n")
    print(f"| scenario (ours: bad windows, replica-s) | baseline | {head} |")
    print("|---|---|" + "---|" * len(variants))
    for name, t in table.items():
        ours = (f"{name} ({t['ours']['violating_windows']:.1f}, "
                f"{t['ours']['replica_seconds']:,.0f})")  # fmt: skip
        for base in BASELINES:
            cells = []
            for v in variants:
                r = t["baselines"].get(frontier_name(base, v, preferred))
                if r is None:
                    cells.append("-")
                    continue
                val = r["violating_windows_at_our_cost"]
                match = r["replica_seconds_to_match_ours"]
                left = "-" if val is None else f"{val:.1f}" + ("*" if r["where"] == "above" else "")
                right = "never" if match is None else f"{match:,.0f}"
                cells.append(f"{left} / {right}")
            print(f"| {ours} | {base} | " + " | ".join(cells) + " |")
            ours = ""


def _weighted(points: Sequence[Mapping[str, Any]], weights: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("target", *POINT_KEYS):
        pairs = [(p[k], w) for p, w in zip(points, weights, strict=True) if p[k] is not None]
        out[k] = sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else None
    return out


def merge(paths: Sequence[Path]) -> dict[str, Any]:
    """One result from several runs over different seeds: means weighted by seed counts."""
    docs = [json.loads(p.read_text()) for p in paths]
    seeds = [s for d in docs for s in d["meta"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the files share seeds: {sorted(seeds)}")
    waits = {d["meta"].get("queue_wait_ms", 0.0) for d in docs}
    if len(waits) > 1:
        raise ValueError(f"the files ran with different --max-queue-wait-ms: {sorted(waits)}")
    w = [len(d["meta"]["seeds"]) for d in docs]
    scenarios: dict[str, Any] = {}
    for name, first in docs[0]["scenarios"].items():
        if any(name not in d["scenarios"] for d in docs):
            raise ValueError(f"scenario {name} is not in every file")
        scen = [d["scenarios"][name] for d in docs]
        scenarios[name] = {
            OURS: _weighted([x[OURS] for x in scen], w),
            "frontiers": {
                f: [_weighted([x["frontiers"][f][i] for x in scen], w) for i in range(len(pts))]
                for f, pts in first["frontiers"].items()
            },
            "oracle": _weighted([x["oracle"] for x in scen], w),
        }
    for name in scenarios:
        for key in ("oracle_preferred", "oracle_restricted"):
            kept = [d["scenarios"][name].get(key) for d in docs]
            if all(kept):  # kept through a merge when every file has it
                scenarios[name][key] = {
                    **_weighted(kept, w),
                    "met_per_seed": [m for x in kept for m in x.get("met_per_seed", [])],
                    **({"allowed": kept[0]["allowed"]} if "allowed" in kept[0] else {}),
                }
        details = [d["scenarios"][name].get("latencyslo_detail") for d in docs]
        if all(details):
            scenarios[name]["latencyslo_detail"] = {
                k: sum(x[k] * n for x, n in zip(details, w, strict=True)) / sum(w)
                for k in details[0]
                if all(k in x for x in details)
            }
    meta = {**docs[0]["meta"], "seeds": seeds, "merged_from": [str(p) for p in paths]}
    st = [d["meta"].get("stationary") for d in docs]
    if all(st):
        meta["stationary"] = {k: sum(x[k] * n for x, n in zip(st, w, strict=True)) / sum(w)
                              for k in st[0]}  # fmt: skip
    else:
        meta.pop("stationary", None)
    meta["table"] = {
        name: {
            "windows": docs[0]["meta"]["table"][name]["windows"],
            "oracle_search": {
                k: [x for d in docs for x in _search(d["meta"]["table"][name])[k]]
                for k in ("met_per_seed", "tried_per_seed")
            },
        }
        for name in scenarios
    }
    return {"scenarios": scenarios, "meta": meta}


def _search(t: Mapping[str, Any]) -> Mapping[str, Any]:
    """The oracle's search of one scenario's table (also as the first results kept it)."""
    return t.get("oracle_search") or t["oracle"]


def _per_seed(
    doc: Mapping[str, Any],
    spec: LatencySLOSpec,
    sim: tuple[ProfileSet, Plant, SimSettings],
    run: Callable[[Prepared], dict[str, Any]],
) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(name, scenario, runs): `run` on each seed's prepared arrivals of every scenario of
    `doc` (a trace as "meta.traces" recorded it), with `spec` on the measured plant."""
    traces = doc["meta"].get("traces", {})
    for name, scen in doc["scenarios"].items():
        job = Job.of(name, traces.get(name))
        if job is None:
            print(f"skipped {name}: not a built-in scenario, no trace recorded", file=sys.stderr)
            continue
        yield name, scen, [run(job.prepare(spec, sim, seed)) for seed in doc["meta"]["seeds"]]


def _measured_sim(doc: Mapping[str, Any]) -> tuple[ProfileSet, Plant, SimSettings]:
    """The profile, the measured plant and the settings `doc` was run with."""
    profiles, _ = default_profiles()
    plant = measured_plant(MEASURED_PROFILE if MEASURED_PROFILE.is_file() else None)
    return profiles, plant, SimSettings(queue_wait_ms=doc["meta"].get("queue_wait_ms", 0.0))


def ours_spec(
    cost_share: float | None = None,
    degraded_fraction: float | None = None,
    headroom: float | None = None,
) -> LatencySLOSpec:
    """The LatencySLO latencyslo runs with: the defaults, or `qualityBudget.costShare`,
    `maxDegradedFraction` and `policy.headroom` set (validated as the API server would)."""
    spec = default_spec()
    update = {"cost_share": cost_share, "max_degraded_fraction": degraded_fraction}
    update = {k: v for k, v in update.items() if v is not None}
    if not update and headroom is None:
        return spec
    budget = spec.variants.quality_budget.model_copy(update=update)
    variants = spec.variants.model_copy(update={"quality_budget": budget})
    policy = spec.policy.model_copy(update={} if headroom is None else {"headroom": headroom})
    changed = spec.model_copy(update={"variants": variants, "policy": policy})
    return LatencySLOSpec.model_validate(changed.model_dump(by_alias=True))


def rerun_ours(doc: dict[str, Any], spec: LatencySLOSpec | None = None) -> None:
    """latencyslo's points again, on every seed, with the controller as it is now and `spec`
    (default: `ours_spec()`; "meta.latencyslo_spec" records what it ran)."""
    sim = _measured_sim(doc)
    spec = spec or ours_spec()

    def ours(prep: Prepared) -> dict[str, Any]:
        return {**run_ours(prep), "target": spec.target_latency_ms}

    for name, scen, runs in _per_seed(doc, spec, sim, ours):
        scen[OURS] = mean_point(runs)
        scen["latencyslo_detail"] = mean_detail(runs)
        print(f"latencyslo rerun on {name}", file=sys.stderr)
    profiles, plant, settings = sim
    doc["meta"]["stationary"] = mean_stationary(
        [run_stationary(spec, profiles, settings, plant, s) for s in doc["meta"]["seeds"]]
    )
    doc["meta"]["latencyslo_rerun"] = _git_head()
    doc["meta"]["latencyslo_spec"] = spec.model_dump(mode="json", by_alias=True)


def restricted_oracle(doc: dict[str, Any], allowed: Sequence[str] | None = None) -> None:
    """The oracle's search again on every seed, with `variants.allowed` reduced to `allowed`
    (`scenarios.NAME.oracle_restricted`, with the list), or to the preferred variant alone
    when None (`scenarios.NAME.oracle_preferred`: the cheapest plan that meets the SLO
    knowing the arrivals, without the variants' help)."""
    base = default_spec()
    pref = base.variants.effective_preferred
    kept = [pref] if allowed is None else list(allowed)
    if pref not in kept or any(v not in base.variants.allowed for v in kept):
        raise ValueError(f"allowed {kept}: must hold {pref} and only {base.variants.allowed}")
    spec = base.model_copy(update={"variants": base.variants.model_copy(update={"allowed": kept})})
    key = "oracle_preferred" if allowed is None else "oracle_restricted"
    for name, scen, runs in _per_seed(doc, spec, _measured_sim(doc), lambda p: run_oracle(p)[0]):
        scen[key] = {
            **mean_point(runs),
            "met_per_seed": [bool(r["met"]) for r in runs],
            **({} if allowed is None else {"allowed": kept}),
        }
        print(f"oracle serving {', '.join(kept)} on {name}", file=sys.stderr)


def _git_head() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def render(path: Path) -> None:
    """Tables and PNGs again from a written FILE."""
    doc = json.loads(path.read_text())
    preferred = doc["meta"].get("variants", ["full"])[0]
    for name, scen in doc["scenarios"].items():  # the table again, from the means
        t = doc["meta"]["table"][name]
        t.update(scenario_table(scen, t["windows"]))
    for name, scen in doc["scenarios"].items():
        windows = doc["meta"]["table"][name]["windows"]
        png = path.with_name(f"{path.stem}-{name.replace(':', '-')}.png")
        plot(png, name, scen, windows, preferred)
    ran = doc["meta"].get("latencyslo_spec") or doc["meta"].get("spec") or {}
    budget = ran.get("variants", {}).get("qualityBudget", {})
    if budget.get("costShare"):
        print(f"latencyslo with qualityBudget.costShare {budget['costShare']:g} and "
              f"maxDegradedFraction {budget.get('maxDegradedFraction', 0.2):g}\n")  # fmt: skip
    print_table(doc)
    doc["verdict"] = verdict(doc)
    print_verdict(doc["verdict"])
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")


# ---------------------------------------------------------------------------- the goals

G1_MIN = {"step": 0.99, "step4": 0.99, "ramp": 0.99, "diurnal": 0.99}
"""G1: requests within target; 0.98 on bursty and every trace (the default below)."""
G1_BURSTY = 0.98
G2_MAX = {"ramp": 1.15, "diurnal": 1.15}
"""G2: replica-seconds over the oracle's; 1.3 on bursty and every trace; none on the steps."""
G2_BURSTY = 1.3
G3_ACCURACY_SLACK, G3_COST, G3_WINDOWS = 0.005, 0.95, 0.8
G3_FACTOR, G3_SHARE = 2.0, 2.0 / 3.0
G4_SLACK = 0.01
G5_SCENARIO, G5_MAX_S = "step", 30.0
G6_REPLICA_CHANGES, G6_VARIANT_SWITCHES = 4.0, 2.0
"""G6: per hour of stationary load (the `steady` workload, latencyslo only)."""


def _g1_min(name: str) -> float:
    return G1_MIN.get(name, G1_BURSTY)


def _g2_max(name: str) -> float | None:
    if name in ("step", "step4"):
        return None
    return G2_MAX.get(name, G2_BURSTY)


def verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's goals G1-G6, per scenario, from a result document's means.

    G3's dominance: a baseline point at most ours' cost and violating windows (and accuracy
    within half a point) dominates ours when it is clearly better: 5 % cheaper, or 20 % fewer
    violating windows (fewer: 0 against 0 is not). G3's pair rule: a (scenario, baseline
    fleet) pair counts for latencyslo when the fleet cannot run as cheaply as ours, or when
    its interpolated frontier at ours' cost has at least twice our violating windows and more
    than ours (0 against 0 is a tie, not a win)."""
    table = doc["meta"]["table"]
    out: dict[str, Any] = {}
    pairs_won = pairs = 0
    for name, scen in doc["scenarios"].items():
        t = table[name]
        ours = scen[OURS]
        windows = float(t["windows"])
        bad_ours = float(t["ours"]["violating_windows"])
        cost = float(ours["replica_seconds"])
        g: dict[str, Any] = {}
        req = float(ours["slo_attainment_requests"])
        g["G1"] = {"value": req, "goal": _g1_min(name), "met": req >= _g1_min(name)}
        limit = _g2_max(name)
        ratio = cost / float(scen["oracle"]["replica_seconds"])
        g["G2"] = {"value": ratio, "goal": limit,
                   "met": None if limit is None else ratio <= limit}  # fmt: skip
        if scen.get("oracle_preferred"):  # not a goal: how much of the gap foresight explains
            g["G2"]["vs_preferred_oracle"] = cost / float(
                scen["oracle_preferred"]["replica_seconds"]
            )
        if scen.get("oracle_restricted"):  # not a goal: against an oracle of fewer variants
            g["G2"]["vs_restricted_oracle"] = cost / float(
                scen["oracle_restricted"]["replica_seconds"]
            )
            g["G2"]["restricted_to"] = scen["oracle_restricted"]["allowed"]
        dominated = []
        for f, pts in scen["frontiers"].items():
            for p in pts:
                bad = (1.0 - float(p["slo_attainment_windows"])) * windows
                acc_ok = (
                    p["accuracy"] is None
                    or ours["accuracy"] is None
                    or (float(p["accuracy"]) >= float(ours["accuracy"]) - G3_ACCURACY_SLACK)
                )
                fewer = bad <= G3_WINDOWS * bad_ours and bad < bad_ours  # 0 vs 0: not fewer
                clearly = p["replica_seconds"] <= G3_COST * cost or fewer
                if p["replica_seconds"] <= cost and bad <= bad_ours and acc_ok and clearly:
                    dominated.append({"frontier": f, "target": p["target"],
                                      "replica_seconds": p["replica_seconds"],
                                      "violating_windows": bad})  # fmt: skip
        won = []
        for f, row in t["baselines"].items():
            value = row["violating_windows_at_our_cost"]
            ok = value is None or (value >= G3_FACTOR * bad_ours and value > bad_ours)
            if ok:
                won.append(f)
            pairs_won += ok
            pairs += 1
        g["G3"] = {"dominated_by": dominated, "pairs_won": won,
                   "pairs": len(t["baselines"]), "met": not dominated}  # fmt: skip
        pref_acc = [pts[0]["accuracy"] for f, pts in scen["frontiers"].items() if "@" not in f]
        pref = pref_acc[0] if pref_acc and pref_acc[0] is not None else None
        acc = ours["accuracy"]
        met4 = None if pref is None or acc is None else acc >= pref - G4_SLACK
        g["G4"] = {"value": acc, "preferred": pref, "met": met4}
        detail = scen.get("latencyslo_detail") or {}
        if name == G5_SCENARIO:
            rec = detail.get("recovery_seconds")
            g["G5"] = {"value": rec, "goal": G5_MAX_S,
                       "met": None if rec is None else rec <= G5_MAX_S}  # fmt: skip
        out[name] = g
    stationary = doc["meta"].get("stationary")
    g6: dict[str, Any] = {"met": None}
    if stationary:
        hours = stationary["duration_s"] / 3600.0
        rep = stationary["replica_changes"] / hours
        var = stationary["variant_switches"] / hours
        g6 = {"replica_changes_per_hour": rep, "variant_switches_per_hour": var,
              "met": rep <= G6_REPLICA_CHANGES and var <= G6_VARIANT_SWITCHES}  # fmt: skip
    share = pairs_won / pairs if pairs else 0.0
    g3_pairs = {"won": pairs_won, "pairs": pairs, "share": share, "goal": G3_SHARE,
                "met": share >= G3_SHARE}  # fmt: skip
    return {"scenarios": out, "G3_pairs": g3_pairs, "G6": g6}


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")


def print_verdict(v: Mapping[str, Any]) -> None:
    """One row per scenario: each goal's figure and whether it is met."""
    print("\nGoals (issue G1-G6) per scenario: figure, verdict\n")
    print("| scenario | G1 req within | G2 cost / oracle | G3 not dominated | G4 accuracy | G5 |")
    print("|---|---|---|---|---|---|")
    for name, g in v["scenarios"].items():
        g1, g2, g3, g4 = g["G1"], g["G2"], g["G3"], g["G4"]
        dom = ", ".join(sorted({d["frontier"] for d in g3["dominated_by"]})) or "none"
        g2s = f"{g2['value']:.2f}x" + ("" if g2["goal"] is None else f" (<= {g2['goal']})")
        g2s += f" {_mark(g2['met'])}"
        if "vs_preferred_oracle" in g2:
            g2s += f"; {g2['vs_preferred_oracle']:.2f}x the oracle serving the preferred only"
        if "vs_restricted_oracle" in g2:
            g2s += (f"; {g2['vs_restricted_oracle']:.2f}x the oracle serving "
                    f"{'+'.join(g2['restricted_to'])}")  # fmt: skip
        acc = "-" if g4["value"] is None else f"{100 * g4['value']:.2f}"
        pref = "-" if g4["preferred"] is None else f"{100 * g4['preferred']:.2f}"
        g5 = g.get("G5")
        g5s = (
            "-"
            if g5 is None
            else (f"{g5['value']:.0f} s {_mark(g5['met'])}" if g5["value"] is not None else "n/a")
        )
        g1s = f"{100 * g1['value']:.2f} % (>= {100 * g1['goal']:.0f}) {_mark(g1['met'])}"
        print(f"| {name} | {g1s} | {g2s} | {_mark(g3['met'])} (by: {dom}); "
              f"pairs won {len(g3['pairs_won'])}/{g3['pairs']} | {acc} vs {pref} "
              f"{_mark(g4['met'])} | {g5s} |")  # fmt: skip
    p = v["G3_pairs"]
    print(f"\nG3 pairs: {p['won']}/{p['pairs']} ({100 * p['share']:.0f} %, goal >= 67 %) "
          f"{_mark(p['met'])}")  # fmt: skip
    g6 = v["G6"]
    if g6.get("met") is None:
        print("G6: not measured (no stationary run in this result)")
    else:
        print(f"G6 (steady, latencyslo): {g6['replica_changes_per_hour']:.1f} replica changes "
              f"and {g6['variant_switches_per_hour']:.1f} variant switches per hour "
              f"(<= 4, <= 2) {_mark(g6['met'])}")  # fmt: skip


if __name__ == "__main__":
    main()
