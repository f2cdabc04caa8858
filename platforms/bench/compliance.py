"""`platbench check RUN_DIR|RUN_ID`: the compliance checker (trainer/check.py, in the spirit of MLPerf's) on a
run directory, or on a tracked run's results.json / metrics.jsonl / train.log downloaded from MLflow; a
tracked run gets the verdict as its `platbench.check` tag, so the report leaves it out when it fails."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from platforms.errors import UserError

FILES = ("results.json", "metrics.jsonl", "train.log")


def check(ref: str, container: Optional[bool]) -> tuple[str, list[str], list[str]]:
    """(what was checked, problem lines, notes)."""
    from trainer.check import UnusableInput, run_checks

    path = Path(ref)
    try:
        if path.exists():
            report = run_checks(path, container=container)
            return str(path), [str(p) for p in report.problems], report.notes
        if "/" in ref or ref.startswith("."):
            raise UserError(f"{ref}: no such run folder")
        return _check_tracked(ref, container)
    except UnusableInput as exc:
        raise UserError(str(exc)) from None


def _check_tracked(ref: str, container: Optional[bool]) -> tuple[str, list[str], list[str]]:
    from platforms.core import tracking
    from platforms.core.launch import find_run

    run = find_run(ref, "run")
    c = tracking.client()
    tags = run.data.tags
    if container is None:  # as its launch was checked (a cloud launcher's native local mode runs outside the image)
        container = {"true": True, "false": False}.get(tags.get(tracking.Tag.IN_IMAGE))
    with tempfile.TemporaryDirectory() as tmp:
        names = {a.path for a in c.list_artifacts(run.info.run_id)}
        if "results.json" not in names:
            raise UserError(f"run {run.info.run_id[:8]} has no results.json artifact (a run that did not finish "
                            "training, or not a training run)")
        for name in FILES:
            if name in names:
                c.download_artifacts(run.info.run_id, name, tmp)
        report = tracking.TrackedRun(c, run.info.run_id).record_check(Path(tmp), container)
    return f"run {run.info.run_id[:8]}", [str(p) for p in report.problems], report.notes


def cli_main(ref: str, container: Optional[bool]) -> int:
    what, lines, notes = check(ref, container)
    for line in lines:
        print(line)
    for note in notes:
        print(f"note: {note}")
    if not lines:
        print(f"ok: {what} keeps the output contract")
    return 1 if lines else 0
