"""The `platbench` command. Heavy imports (torch, Lightning, MLflow, cloud SDKs) happen inside the
commands that need them, so `platbench --help` and bad-input errors stay fast."""
from __future__ import annotations

import sys

import typer

from platforms.errors import UserError

app = typer.Typer(
    name="platbench",
    help="Run one CIFAR-10 trainer on each ML platform and compare speed, accuracy, cost and usability.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main() -> None:
    """Console-script entry: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"platbench: error: {exc}", err=True)
        sys.exit(2)
