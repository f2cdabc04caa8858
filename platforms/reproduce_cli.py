"""`platbench reproduce STUDY`: check the input, print the plan (--dry-run) or run it, then write the page.
The command's layer (docs/design.md, Layers): it checks inputs with preflight and writes the report's page."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from platforms.errors import UserError


def cli_main(study: str, platforms: list[str], data: Optional[Path], dry_run: bool, max_usd: Optional[float],
             full: bool, set_: list[str], out: Optional[Path], console) -> int:
    from platforms.bench.sweep import parse_list, parse_settings
    from platforms.core import registry
    from platforms.reproduce import execute, plan as plan_mod, protocol

    proto = protocol.load(study)
    plats = parse_list(platforms or [registry.this_machine()], "--platform")
    if data is not None and not Path(data).is_dir():
        raise UserError(f"--data {data}: no such folder")
    settings = parse_settings(set_, plats)
    # every check before anything is written: the bundled digits are prepared only for a run that will start
    plan = plan_mod.make(proto, plats, Path(data) if data is not None else execute.DIGITS, full, settings)
    if dry_run:
        if data is None:  # a platform's preflight reads the data: the digits in a folder removed after
            import tempfile

            with tempfile.TemporaryDirectory(prefix="platbench-reproduce-") as tmp:
                plan.data = execute.bundled_digits(Path(tmp) / "digits")
                text = plan_mod.text(plan, max_usd)
            print(text.replace(str(plan.data), f"the bundled digits ({execute.DIGITS} when run)"))
        else:
            print(plan_mod.text(plan, max_usd))
        return 0
    plan_mod.refuse_blocked(plan)
    plan_mod.check_endpoints(plan, max_usd)
    if max_usd is not None:  # the whole plan's upper bound, refused before anything is created
        plan_mod.text(plan, max_usd)
    from platforms import preflight
    from platforms.core.tracking import tracking_uri

    if out is not None:
        preflight.output_folder(out)
    preflight.tracking_store(tracking_uri())
    if data is None:
        execute.bundled_digits(plan.data)
    from platforms.reproduce.ledger import Ledger

    ledger = Ledger(max_usd)  # one budget for the whole command: sweeps, endpoints and pipeline share it
    code = execute.run(plan, console, ledger)
    if plan.proto.batch_unit:  # the paper's per-batch pipeline, on each platform's trained model
        from platforms.reproduce import pipeline

        code = max(code, pipeline.run(plan, console, ledger))
    from platforms.report import study_page

    md, html = study_page.write(proto, Path(out) if out else Path("runs") / "reproduce" / study)
    print(f"reproduce {study}: wrote {md} and {html}")
    return code
