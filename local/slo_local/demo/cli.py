"""`latencyslo demo`: the whole loop on this machine, no cluster (docs/demo.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from slo_local.demo.scenario import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_DURATION_S,
    DEFAULT_LOAD_FRACTION,
    DEFAULT_PROFILE,
    DEFAULT_SLO,
    DEFAULT_WARMUP_S,
    DEMO_WORKLOADS,
    ScenarioError,
    build_scenario,
)

DEFAULT_OUT = Path("out") / "demo"


@click.command("demo")
@click.option(
    "--duration", type=click.FloatRange(min=10), default=DEFAULT_DURATION_S, show_default=True,
    help="Seconds of the workload (after the warm-up, before the cool-down).",
)  # fmt: skip
@click.option(
    "--slo", "slo_file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_SLO,
    help="LatencySLO YAML to hold [default: the demo's own, 100 ms p99].",
)  # fmt: skip
@click.option(
    "--workload", type=click.Choice(DEMO_WORKLOADS), default="step", show_default=True,
    help="Load shape: a step to 0.9 of one replica's measured saturation, or the simulator's ramp "
    "to x4, bursts, or a trace.",
)  # fmt: skip
@click.option(
    "--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Trace CSV for --workload trace (TIMESTAMP rows, or t_seconds,rps) "
    "[default: the shipped Azure trace, scaled to --rate].",
)  # fmt: skip
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), default=None,
    help=f"Starting request rate, req/s [default: {DEFAULT_LOAD_FRACTION:.0%} of one replica's "
    "capacity at the aim, as measured on this machine at the start].",
)  # fmt: skip
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
    show_default=True, help="Folder for timeline.csv, timeline.png, summary and logs.",
)  # fmt: skip
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON summary [default: OUT/summary.json].",
)  # fmt: skip
@click.option(
    "--profile", "profile_file", type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_PROFILE, help="Measured profile (latencyslo calibrate --threads 1).",
)  # fmt: skip
@click.option(
    "--metrics", type=click.Choice(["auto", "prometheus", "direct"]), default="auto",
    show_default=True, help="Prometheus when on PATH (auto), or scrape the workers directly.",
)  # fmt: skip
@click.option(
    "--model-dir", type=click.Path(file_okay=False, path_type=Path),
    envvar="LATENCYSLO_MODEL_DIR", help="Demo model folder [default: built once in the cache].",
)  # fmt: skip
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="torch threads per worker.")  # fmt: skip
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="Pin each worker to its own CPU when there are enough.")  # fmt: skip
@click.option(
    "--warmup", type=click.IntRange(0, 3600), default=int(DEFAULT_WARMUP_S), show_default=True,
    help="Unscored seconds at the starting rate before the timeline starts.",
)  # fmt: skip
@click.option(
    "--cooldown", type=click.IntRange(0, 3600), default=int(DEFAULT_COOLDOWN_S), show_default=True,
    help="Seconds back at the starting rate after the workload (on the timeline).",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Arrival-time seed.")
@click.option(
    "--policy", "policy_name", default=None, metavar="NAME[:VARIANT]",
    help="Drive the workers with a simulator baseline instead of latencyslo: hpa, hpa-p99, "
    "keda, keda-peak, kpa, kpa-rps; NAME:VARIANT for a fleet of a fixed variant.",
)  # fmt: skip
@click.option(
    "--compare", "compare_name", default=None, metavar="NAME[:VARIANT]",
    help="Run latencyslo, then the baseline NAME on the same arrivals; writes both, a "
    "side-by-side compare.png and compare.json.",
)  # fmt: skip
@click.option("--plain", is_flag=True, help="Log lines instead of the live view.")
def demo(
    duration: float,
    slo_file: Path,
    workload: str,
    trace_file: Path | None,
    rate: float | None,
    out_dir: Path,
    json_path: Path | None,
    profile_file: Path,
    metrics: str,
    model_dir: Path | None,
    threads: int,
    pin: bool,
    warmup: int,
    cooldown: int,
    seed: int,
    policy_name: str | None,
    compare_name: str | None,
    plain: bool,
) -> None:
    """Run the whole loop locally: real workers, real load, the operator's controller.

    Starts one worker process, Prometheus (or a direct scrape), and an open-loop load
    generator; the operator's control loop holds the LatencySLO by moving the batch window,
    the model variant and the number of worker processes. Writes timeline.csv,
    timeline.png and a JSON summary; Ctrl-C stops everything cleanly.
    """
    from slo_local.demo.baseline import PolicyError, parse_policy
    from slo_local.demo.run import DemoOptions

    try:
        scenario = build_scenario(
            slo_file=slo_file,
            profile_file=profile_file,
            workload=workload,
            duration_s=duration,
            base_rps=rate,
            trace_file=trace_file,
            seed=seed,
            warmup_s=warmup,
            cooldown_s=cooldown,
        )
        if policy_name and compare_name:
            raise ScenarioError("--policy and --compare: give one of them")
        choice = None
        if policy_name or compare_name:
            choice = parse_policy(policy_name or compare_name or "", scenario.spec)
    except (ScenarioError, PolicyError) as exc:
        raise click.UsageError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        filename=out_dir / "demo.log",
        filemode="w",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # one line per request otherwise
    options = DemoOptions(
        out_dir=out_dir,
        json_path=None if compare_name else json_path,
        metrics=metrics,
        model_dir=model_dir,
        threads=threads,
        pin=pin,
        policy=choice if policy_name else None,
    )
    result = _run(scenario, options, plain, out_dir)
    _report(result)
    if compare_name and choice is not None and not result.interrupted:
        click.echo(f"\nnow the baseline {choice.label} on the same arrivals and workers")
        base_options = dataclasses.replace(
            options, out_dir=out_dir / choice.label.replace(":", "-"), policy=choice, resize=False
        )
        base = _run(result.scenario, base_options, plain, base_options.out_dir)
        _report(base)
        _write_compare(result, base, out_dir, json_path)
        if base.interrupted:
            result = base
    if result.interrupted:
        click.echo("interrupted: everything stopped", err=True)
        sys.exit(130)


def _run(scenario: Any, options: Any, plain: bool, out_dir: Path) -> Any:
    from slo_local.demo.run import run_demo
    from slo_local.demo.view import make_view

    view = make_view(force_plain=plain)
    try:
        return asyncio.run(run_demo(scenario, options, view))
    except (RuntimeError, TimeoutError, OSError) as exc:
        view.close()
        raise click.ClickException(f"{exc} (logs in {out_dir})") from None
    finally:
        view.close()


def _report(result: Any) -> None:
    """The summary, the story's verdict, the simulator's prediction and the files."""
    summary = result.summary() if result.recording.requests else {}
    click.echo(json.dumps(summary, indent=2))
    if result.story is not None and result.recording.requests:
        click.echo(f"{result.policy}: {result.story.verdict()}")
    if result.simulated and summary:
        gap = result.details.get("attainment_gap_pp")
        click.echo(
            f"simulator, same scenario: {result.simulated['slo_attainment_requests']:.2%} of "
            f"requests within target (measured {summary['slo_attainment_requests']:.2%}; "
            f"gap {gap:.2f} points)"
        )
    if result.startup_seconds:
        click.echo(
            "replica start-up (process start to /readyz): "
            + ", ".join(f"{s:.1f}s" for s in result.startup_seconds)
        )
    for name, path in result.files.items():
        click.echo(f"{name}: {path}")


def _write_compare(ours: Any, base: Any, out_dir: Path, json_path: Path | None) -> None:
    from slo_local.demo.compare import table, write_compare_png

    if not (ours.recording.requests and base.recording.requests):
        return
    summaries = {ours.policy: ours.summary(), base.policy: base.summary()}
    both = json.dumps(summaries, indent=2) + "\n"
    (out_dir / "compare.json").write_text(both)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(both)
    png = out_dir / "compare.png"
    write_compare_png({ours.policy: ours.recording, base.policy: base.recording}, summaries, png)
    click.echo("\n" + table(summaries))
    click.echo(f"compare_png: {png}\ncompare_json: {json_path or out_dir / 'compare.json'}")
