"""The progress bar on a terminal (platforms/core/progress.py): redrawn in place while the job runs, its last
line left once when the job ends and gone when it fails (issue 28: "the last training 3/3 line is drawn
twice"; not reproduced through script(1) at 60, 80 or 120 columns — this pins the behaviour)."""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from platforms.core.progress import JobProgress


def _frames(text: str) -> list[str]:
    """What a terminal shows at the end: text, carriage returns, newlines, cursor up (ESC[nA) and erase line
    (ESC[2K) played on a grid of lines; colours and cursor visibility ignored."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", text):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token.endswith("A"):
            row = max(0, row - int(token[2:-1] or 1))
        elif token.endswith("K") and token[2:-1] == "2":
            lines[row] = ""
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [line for line in lines if line.strip()]


def _run(fail: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with pytest.raises(RuntimeError) if fail else _nothing():
        with JobProgress(console) as progress:
            progress.phase("staging")
            progress.phase("training")
            progress.epochs(3)
            for epoch in (1, 2, 3):
                progress.log_line(f"- Test accuracy: 0.{epoch}")
                progress.log_line(f"- Epoch: {epoch}")
            if fail:
                raise RuntimeError("the job failed")
    return out.getvalue()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_last_line_is_left_once():
    kept = _frames(_run())
    assert len(kept) == 1 and "3/3" in kept[0] and "test acc 0.3000" in kept[0], kept


def test_a_failed_job_leaves_no_bar():
    assert [line for line in _frames(_run(fail=True)) if line.strip()] == []
