"""`ruff check` ([tool.ruff] in pyproject.toml) over the code: a finding fails the suite with ruff's own
output, and RUF100 makes a `noqa` that suppresses nothing a finding too, so the markers left mean something."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["platforms", "trainer", "tests", "benchmarks", "scripts"]


def ruff() -> str:
    """The ruff beside this Python (the venv's, pinned in constraints.txt), else the one on PATH."""
    here = Path(sys.executable).with_name("ruff")
    found = str(here) if here.is_file() else shutil.which("ruff")
    assert found, "ruff is not installed: pip install -e '.[dev]' -c constraints.txt"
    return found


def test_ruff_finds_nothing():
    cmd = [ruff(), "check", "--no-cache", "--output-format", "concise", *CHECKED]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd[1:])}:\n{done.stdout}{done.stderr}"
