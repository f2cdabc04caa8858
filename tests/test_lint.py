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


def test_no_second_conftest_module_shadows_the_first():
    """A conftest.py in a test folder that is not a package is imported as the module `conftest`, like
    tests/conftest.py: in a worker that loads it first, `from conftest import …` finds the wrong one (this
    cost 35 failures once). Fixtures of a folder go in a named module its tests import."""
    root = Path(__file__).resolve().parent
    shadows = [str(p.relative_to(root)) for p in root.rglob("conftest.py")
               if p.parent != root and not (p.parent / "__init__.py").is_file()]
    assert shadows == []
