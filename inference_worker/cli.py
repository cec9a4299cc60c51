"""Click commands behind `latencyslo worker`, `build-demo-model` and `calibrate`.

Heavy imports (torch) happen inside the commands, so `--help` is instant."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import click

from slo_contracts.runtime import MAX_BATCH_SIZE, MAX_QUEUE_WAIT_MS, MAX_WINDOW_MS

THREADS = click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="LATENCYSLO_THREADS",
    default=None,
    help="torch intra-op threads (default: torch's choice).",
)
DEVICE = click.option(
    "--device",
    envvar="LATENCYSLO_DEVICE",
    default="auto",
    show_default=True,
    help="auto (cuda when available), cpu, cuda or cuda:N.",
)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _model_dir(value: Path | None) -> Path:
    """The model directory; the default one is built on first use."""
    from inference_worker.demo_model import build_demo_model as build_family
    from inference_worker.demo_model import default_model_dir

    if value is not None:
        return value
    path = default_model_dir()
    if not (path / "variants.json").is_file():
        click.echo(f"no model in {path}: building the demo family once", err=True)
        build_family(path)
    return path


def _admin_token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise click.UsageError(f"--admin-token-file {token_file}: {exc}") from None
        if not token:
            raise click.UsageError(f"--admin-token-file {token_file} is empty")
        return token
    return os.environ.get("LATENCYSLO_ADMIN_TOKEN", "").strip() or None


@click.command()
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LATENCYSLO_MODEL_DIR",
    help="Folder holding variants.json [default: ~/.cache/latencyslo/demo-model, "
    "built on first use].",
)
@click.option("--host", envvar="LATENCYSLO_HOST", default="0.0.0.0", show_default=True)
@click.option(
    "--port", type=click.IntRange(0, 65535), envvar="LATENCYSLO_PORT", default=8080,
    show_default=True,
)  # fmt: skip
@click.option(
    "--admin-port", type=click.IntRange(0, 65535), envvar="LATENCYSLO_ADMIN_PORT",
    default=8081, show_default=True,
)  # fmt: skip
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LATENCYSLO_ADMIN_TOKEN_FILE",
    help="File holding the admin bearer token (else LATENCYSLO_ADMIN_TOKEN).",
)
@click.option("--no-admin", is_flag=True, help="Run without the admin API (no token needed).")
@click.option(
    "--runtime-config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LATENCYSLO_RUNTIME_CONFIG",
    help="Runtime-config JSON file, read at start and re-read when it changes.",
)
@THREADS
@DEVICE
@click.option("--variant", envvar="LATENCYSLO_VARIANT", help="Initial variant [manifest default].")
@click.option(
    "--batch-window-ms", type=click.FloatRange(0, MAX_WINDOW_MS),
    envvar="LATENCYSLO_BATCH_WINDOW_MS", default=0.0, show_default=True,
)  # fmt: skip
@click.option(
    "--max-batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), envvar="LATENCYSLO_MAX_BATCH_SIZE",
    default=32, show_default=True,
)  # fmt: skip
@click.option(
    "--max-queue", type=click.IntRange(min=1), envvar="LATENCYSLO_MAX_QUEUE", default=256,
    show_default=True, help="Queued requests before 503.",
)  # fmt: skip
@click.option(
    "--max-queue-wait-ms", type=click.FloatRange(min=0, max=MAX_QUEUE_WAIT_MS),
    envvar="LATENCYSLO_MAX_QUEUE_WAIT_MS", default=0.0, show_default=True,
    help="A request that waited longer than the batch window plus this in the queue is "
    "answered 503 unrun (0: no limit).",
)  # fmt: skip
@click.option(
    "--max-inputs", type=click.IntRange(1, 4096), envvar="LATENCYSLO_MAX_INPUTS", default=64,
    show_default=True, help="Texts per request.",
)  # fmt: skip
@click.option(
    "--request-timeout-ms", type=click.FloatRange(min=1), envvar="LATENCYSLO_REQUEST_TIMEOUT_MS",
    default=10000.0, show_default=True, help="Deadline of a request (504 after it).",
)  # fmt: skip
@click.option(
    "--preload", type=click.Choice(["all", "active"]), envvar="LATENCYSLO_PRELOAD",
    default="all", show_default=True,
    help="Load every variant after the active one is ready (fast switches), or on demand.",
)  # fmt: skip
@click.option(
    "--drain-delay", type=click.FloatRange(min=0), envvar="LATENCYSLO_DRAIN_DELAY_S",
    default=0.0, show_default=True,
    help="Seconds to keep serving after SIGTERM with readiness off, before draining.",
)  # fmt: skip
@click.option(
    "--frontends", type=click.IntRange(min=0, max=64), envvar="LATENCYSLO_FRONTENDS",
    default=0, show_default=True,
    help="HTTP frontend processes sharing the public port (SO_REUSEPORT) and feeding this "
    "process over a Unix socket; 0 serves HTTP in this process.",
)  # fmt: skip
@click.option(
    "--cuda-graphs/--no-cuda-graphs", envvar="LATENCYSLO_CUDA_GRAPHS", default=False,
    show_default=True,
    help="On CUDA, replay CUDA graphs of the forward per (batch, length) bucket.",
)  # fmt: skip
@click.option("--log-level", default="info", show_default=True)
def worker(
    model_dir: Path | None,
    host: str,
    port: int,
    admin_port: int,
    admin_token_file: Path | None,
    no_admin: bool,
    runtime_config: Path | None,
    threads: int | None,
    device: str,
    variant: str | None,
    batch_window_ms: float,
    max_batch_size: int,
    max_queue: int,
    max_queue_wait_ms: float,
    max_inputs: int,
    request_timeout_ms: float,
    preload: str,
    drain_delay: float,
    frontends: int,
    cuda_graphs: bool,
    log_level: str,
) -> None:
    """Serve the model variants over HTTP, with the admin API on its own port."""
    _setup_logging(log_level)
    from inference_worker.manifest import Manifest, ManifestError
    from inference_worker.server import Worker, WorkerOptions, set_torch_threads
    from inference_worker.variants import resolve_device

    token = None if no_admin else _admin_token(admin_token_file)
    if not no_admin and not token:
        raise click.UsageError(
            "the admin port needs a bearer token: --admin-token-file, "
            "LATENCYSLO_ADMIN_TOKEN_FILE or LATENCYSLO_ADMIN_TOKEN (or --no-admin)"
        )
    set_torch_threads(threads)
    try:
        manifest = Manifest.load(_model_dir(model_dir))
        dev = resolve_device(device)
    except (ManifestError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    opts = WorkerOptions(
        model_dir=manifest.root,
        host=host,
        port=port,
        admin_port=admin_port,
        admin_token=token,
        admin_token_file=None if no_admin else admin_token_file,
        admin_enabled=not no_admin,
        runtime_config=runtime_config,
        threads=threads,
        device=device,
        variant=variant,
        batch_window_ms=batch_window_ms,
        max_batch_size=max_batch_size,
        max_queue=max_queue,
        max_queue_wait_ms=max_queue_wait_ms,
        max_inputs=max_inputs,
        request_timeout_s=request_timeout_ms / 1000.0,
        preload=preload,
        drain_delay_s=drain_delay,
        frontends=frontends,
        cuda_graphs=cuda_graphs,
    )

    async def main() -> int:
        return await Worker(opts, manifest, dev).serve()

    try:
        code = asyncio.run(main())
    except ValueError as exc:  # invalid initial config (unknown --variant...)
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # port in use...
        raise click.ClickException(f"cannot start: {exc}") from None
    sys.exit(code)


@click.command("build-demo-model")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: LATENCYSLO_MODEL_DIR or ~/.cache/latencyslo/demo-model].",
)
@THREADS
@click.option("--force", is_flag=True, help="Rebuild even when the cached build is current.")
def build_demo_model(out: Path | None, threads: int | None, force: bool) -> None:
    """Build the demo family (full, quantized, distilled) from PyPI-shipped data, once."""
    _setup_logging("info")
    from inference_worker.demo_model import build_demo_model as build_family
    from inference_worker.demo_model import default_model_dir

    record = build_family(out, threads=threads, force=force)
    click.echo(
        json.dumps(
            {
                "out": str((out or default_model_dir()).expanduser().resolve()),
                "cached": record["cached"],
                "accuracy": record["accuracy"],
                "timings": record.get("timings"),
            },
            indent=2,
        )
    )


@click.command()
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LATENCYSLO_MODEL_DIR",
    help="Folder holding variants.json [default: the demo model, built on first use].",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Where to write the ProfileSet JSON.",
)  # fmt: skip
@THREADS
@DEVICE
@click.option("--max-batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--tokens", type=click.IntRange(3, 512), default=16, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 1000), default=7, show_default=True)
@click.option("--variant", "variants", multiple=True, help="Only these variants (repeatable).")
@click.option(
    "--refit", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Measure nothing: fit this profile's kept medians again and write it to --out.",
)  # fmt: skip
@click.option(
    "--cuda-graphs/--no-cuda-graphs", default=False, show_default=True,
    help="Time the forward as the worker's --cuda-graphs replays it (CUDA only).",
)  # fmt: skip
def calibrate(
    model_dir: Path | None,
    out: Path,
    threads: int | None,
    device: str,
    max_batch_size: int,
    tokens: int,
    repeats: int,
    variants: tuple[str, ...],
    refit: Path | None,
    cuda_graphs: bool,
) -> None:
    """Measure batch service time per variant, fit alpha + beta*b, write a profile JSON."""
    _setup_logging("info")
    from inference_worker.calibrate import refit as refit_profile
    from inference_worker.calibrate import run_calibration
    from inference_worker.manifest import Manifest, ManifestError
    from inference_worker.variants import resolve_device
    from slo_contracts.profiles import ProfileSet

    try:
        if refit is not None:
            profiles = refit_profile(ProfileSet.load(refit))
        else:
            profiles = run_calibration(
                Manifest.load(_model_dir(model_dir)),
                device=resolve_device(device),
                threads=threads,
                max_batch_size=max_batch_size,
                tokens=tokens,
                repeats=repeats,
                variants=variants or None,
                cuda_graphs=cuda_graphs,
            )
    except (ManifestError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    profiles.save(out)
    for name, p in profiles.variants.items():
        fit = profiles.extra["fit"][name]
        click.echo(
            f"{name:>10}: alpha {p.alpha_ms:7.3f} ms  beta {p.beta_ms:7.3f} ms/item  "
            f"R2 {fit['r2']:.4f}  max rel err {fit['max_rel_err']:.1%}  accuracy {p.accuracy}"
        )
    click.echo(f"wrote {out}")
