"""`platbench report`: the comparison page (report.md + index.html) from the MLflow runs."""
from __future__ import annotations


def cli_main(out, sweeps, root, alpha, console) -> None:
    from platforms.errors import UserError

    raise UserError("platbench report is not finished yet")
