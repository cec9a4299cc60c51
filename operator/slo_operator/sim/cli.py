"""`latencyslo simulate`: compare policies on the same arrivals in the simulator."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import click

from slo_contracts.runtime import MAX_QUEUE_WAIT_MS
from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import POLICIES, InfeasibleTarget
from slo_operator.sim.profiles import load_profiles
from slo_operator.sim.report import TABLE_HEADER, document, plot, plot_path, table_rows
from slo_operator.sim.runner import (
    BASE_LOAD,
    DEFAULT_WARMUP_S,
    TRACE_LOAD,
    default_spec,
    run_scenario,
    worker_settings,
)
from slo_operator.sim.workloads import BUILTIN, NAMES, load_trace
from slo_operator.spec import LatencySLOSpec


def load_spec(path: Path) -> LatencySLOSpec:
    """A LatencySLO manifest's spec (or a bare spec); a clear error naming the file."""
    import yaml
    from pydantic import ValidationError

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--slo") from exc
    raw = doc.get("spec", doc) if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise click.BadParameter(f"{path}: not a LatencySLO or its spec", param_hint="--slo")
    try:
        return LatencySLOSpec.model_validate(raw)
    except ValidationError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--slo") from exc


def _policies(value: str) -> list[str]:
    names = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown policy {', '.join(unknown) or '(none)'}; known: {', '.join(POLICIES)}",
            param_hint="--policy",
        )
    return names


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--scenario",
    required=True,
    type=click.Choice([*NAMES, "all"]),
    help="Workload to simulate; 'all' runs every built-in one and the trace.",
)
@click.option(
    "--trace-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV for the 'trace' scenario: Azure (TIMESTAMP,...) or t_seconds,rps "
    "[default: the shipped Azure LLM code trace].",
)
@click.option(
    "--target-mean-rps",
    type=click.FloatRange(min=0, min_open=True),
    help=f"Rescale the trace to this mean rate [default for the shipped trace: {TRACE_LOAD:g}x "
    "one replica's measured capacity; a given file is replayed as is].",
)
@click.option("--policy", "policy_list", default=",".join(POLICIES), show_default=True,
              help="Comma-separated policies.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int, help="First seed.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Number of seeds (seed, seed+1, ...); figures are their means.")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results JSON here.")  # fmt: skip
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG (one per scenario with 'all': NAME-<scenario>.png).")  # fmt: skip
@click.option("--slo", "slo_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A LatencySLO manifest (or its spec) to simulate [default: latencyMs 100, "
              "replicas 1..16, API defaults otherwise].")  # fmt: skip
@click.option("--profile", "profile_file", type=click.Path(exists=True, dir_okay=False),
              help="ProfileSet JSON [default: the shipped demo-cpu.json, else the reference "
              "figures].")  # fmt: skip
@click.option("--base-rps", type=click.FloatRange(min=0, min_open=True),
              help=f"Starting rate of the built-in workloads [default: {BASE_LOAD:g}x one "
              "replica's capacity at the target, load-tested in the simulator].")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=1), help="Seconds [default per workload].")
@click.option("--startup-s", default=30, show_default=True, type=click.IntRange(0, 3600),
              help="Replica start-up (pod start + model load).")  # fmt: skip
@click.option("--switch-s", default=2, show_default=True, type=click.IntRange(0, 600),
              help="Variant switch delay.")  # fmt: skip
@click.option("--scrape-s", default=5, show_default=True, type=click.IntRange(1, 300),
              help="Prometheus scrape interval.")  # fmt: skip
@click.option("--queue-limit", default=SimSettings.queue_limit, show_default=True,
              type=click.IntRange(1, 100_000),
              help="Requests a replica queues before it answers 503 (the worker's "
              "--max-queue).")  # fmt: skip
@click.option("--max-queue-wait-ms", default=SimSettings.queue_wait_ms, show_default=True,
              type=click.FloatRange(0, MAX_QUEUE_WAIT_MS),
              help="A request that waited longer than the batch window plus this in a "
              "replica's queue is answered 503 unrun (the worker's --max-queue-wait-ms; 0: "
              "no limit).")  # fmt: skip
@click.option("--plant", "plant_kind", type=click.Choice(["measured", "model"]),
              default="measured", show_default=True,
              help="Batch times: 'measured' = the profile's per-size medians times the measured "
              "spread; 'model' = the controller's own line with a 5 % jitter.")  # fmt: skip
@click.option("--spread", "spread_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Batch-spread JSON for the measured plant [default: the profile's "
              "batch_times, else the shipped sim/data/batch_spread_cpu.json].",
              )  # fmt: skip
def simulate(
    scenario: str,
    trace_file: Path | None,
    target_mean_rps: float | None,
    policy_list: str,
    seed: int,
    seeds: int,
    json_path: Path | None,
    plot_file: Path | None,
    slo_file: Path | None,
    profile_file: str | None,
    base_rps: float | None,
    duration: float | None,
    startup_s: int,
    switch_s: int,
    scrape_s: int,
    queue_limit: int,
    max_queue_wait_ms: float,
    plant_kind: str,
    spread_file: Path | None,
) -> None:
    """Compare policies on identical arrivals in the discrete-event simulator."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(stderr=True)
    policies = _policies(policy_list)
    try:
        profiles, profile_source = load_profiles(profile_file)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from exc
    spec = load_spec(slo_file) if slo_file else default_spec()
    missing = [v for v in spec.variants.allowed if v not in profiles.variants]
    if missing:
        raise click.BadParameter(
            f"the profile has no {', '.join(missing)} (variants.allowed needs them)",
            param_hint="--profile",
        )
    settings = SimSettings(
        startup_s=startup_s, switch_s=switch_s, scrape_s=scrape_s, queue_limit=queue_limit,
        queue_wait_ms=max_queue_wait_ms,
    )  # fmt: skip
    plant = None
    if plant_kind == "measured":
        medians_from = profile_source if Path(profile_source).is_file() else None
        try:
            plant = measured_plant(medians_from, spread_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--spread") from exc
    names = [*BUILTIN, "trace"] if scenario == "all" else [scenario]
    if trace_file is not None and "trace" in names:
        try:
            load_trace(trace_file)
        except ValueError as exc:  # a malformed row, or not text at all (names the file)
            raise click.BadParameter(str(exc), param_hint="--trace-file") from exc
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    traces: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    capacity, used_base = 0.0, 0.0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        for name in names:
            for k in range(seeds):
                s = seed + k
                task = progress.add_task(f"{name} seed {s}", total=len(policies))
                try:
                    result = run_scenario(
                        name,
                        policies=policies,
                        spec=spec,
                        profiles=profiles,
                        settings=settings,
                        seed=s,
                        base_rps=base_rps,
                        duration_s=duration,
                        trace_file=trace_file if name == "trace" else None,
                        target_mean_rps=target_mean_rps if name == "trace" else None,
                        on_tick=None,
                        progress=lambda _p, task=task: progress.advance(task),
                        plant=plant,
                    )
                except InfeasibleTarget as exc:
                    raise click.ClickException(str(exc)) from exc
                capacity = result.calibration.capacity_rps
                used_base = result.base_rps
                for policy, run in result.runs.items():
                    results.setdefault(name, {}).setdefault(policy, []).append(run.metrics)
                    if k == 0:
                        traces.setdefault(name, {})[policy] = run.trace
    elapsed = time.perf_counter() - started
    meta = {
        "seeds": list(range(seed, seed + seeds)),
        "spec": spec.model_dump(mode="json", by_alias=True),
        "profile": {"source": profile_source, **profiles.to_json()},
        "settings": {
            "startup_s": startup_s,
            "switch_s": switch_s,
            "scrape_s": scrape_s,
            "queue_limit": settings.queue_limit,
            "queue_wait_ms": worker_settings(spec, settings).queue_wait_ms,
            "service_cv": settings.service_cv,
            "plant": plant.source if plant is not None else "the profile's line, 5 % jitter",
            "warmup_s": DEFAULT_WARMUP_S,
            "base_rps": used_base,
            "replica_capacity_rps": capacity,
        },
        "elapsed_s": elapsed,
    }
    doc = document(results, meta)
    for name in names:
        table = Table(title=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})")
        for col in TABLE_HEADER:
            table.add_column(col, justify="left" if col == "policy" else "right")
        for row in table_rows(doc["scenarios"][name]):
            table.add_row(*row)
        out = Console()
        if not out.is_terminal:
            out = Console(width=140)
        out.print(table)
    console.print(f"{len(names)} scenario(s) x {len(policies)} policies x {seeds} seed(s) "
                  f"in {elapsed:.1f}s; profile: {profile_source}")  # fmt: skip
    if json_path:
        json_path.write_text(json.dumps(_finite(doc), indent=2) + "\n")
        console.print(f"wrote {json_path}")
    if plot_file:
        for name in names:
            out = plot_path(plot_file, name, len(names) > 1)
            plot(out, name, traces[name], spec.target_latency_ms, spec.quantile)
            console.print(f"wrote {out}")


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
