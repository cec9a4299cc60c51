"""The `latencyslo` command.

Subcommands are imported only when invoked, so `latencyslo validate` does not pay for
importing torch and `latencyslo worker` does not import kopf. Each entry of `COMMANDS` names
a module attribute holding a click command.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, attribute, one-line help)
    "worker": ("inference_worker.cli:worker", "Run an inference worker (HTTP + admin API)."),
    "build-demo-model": (
        "inference_worker.cli:build_demo_model",
        "Build the demo model family (full, quantized, distilled) offline.",
    ),
    "calibrate": (
        "inference_worker.cli:calibrate",
        "Measure per-variant batch service time and write a profile JSON.",
    ),
    "validate": (
        "slo_operator.validate:validate_command",
        "Validate LatencySLO manifests offline.",
    ),
    "crd": (
        "slo_operator.crd_cli:crd_command",
        "Print the LatencySLO CRD generated from the models.",
    ),
    "simulate": (
        "slo_operator.sim.cli:simulate",
        "Compare policies in the discrete-event simulator.",
    ),
    "operator": ("slo_operator.run:operator_command", "Run the Kubernetes operator (kopf)."),
    "demo": (
        "slo_local.demo.cli:demo",
        "Run the whole loop locally: workers, load, controller.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        target, _help = entry
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise click.ClickException(
                    f"'{cmd_name}' is not available in this build ({module_name} missing)"
                ) from exc
            raise
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latencyslo")
def main() -> None:
    """latencyslo: hold a latency SLO at the lowest cost (replicas, batch window, variant)."""


if __name__ == "__main__":
    main()
