"""`latencyslo crd`: print, write or check the generated CRD, or its reference tables."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from slo_operator.crd import build_crd, crd_yaml
from slo_operator.crd_docs import reference_tables
from slo_operator.crd_lint import lint_crd


@click.command("crd")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CRD to this file instead of standard output.",
)
@click.option(
    "--check",
    "check_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Exit 1 unless this file is the generated CRD (with --reference: contains the tables).",
)
@click.option(
    "--reference",
    is_flag=True,
    help="Print the field and rule tables of docs/crd.md instead of the CRD.",
)
def crd_command(output: Path | None, check_file: Path | None, reference: bool) -> None:
    """Print the LatencySLO CRD generated from the pydantic models."""
    text = reference_tables() if reference else crd_yaml()
    problems = lint_crd(build_crd())
    if problems:
        raise click.ClickException("the generated CRD is invalid:\n  " + "\n  ".join(problems))
    if check_file is not None:
        current = check_file.read_text()
        if not (text in current if reference else current == text):
            what = (
                "reference tables (`latencyslo crd --reference`)"
                if reference
                else f"CRD (`latencyslo crd -o {check_file}`)"
            )
            click.echo(f"{check_file} differs from the generated {what}", err=True)
            sys.exit(1)
        click.echo(f"{check_file} is up to date", err=True)
        return
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    else:
        click.echo(text, nl=False)
