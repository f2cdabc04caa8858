"""`python -m trainer ARGS` run in the test's own process, for refusals and checks where a subprocess proves
nothing more than its seconds of imports (torch among them): trainer.cli.main, whose return value is the
process's exit status, with the environment set as a subprocess would have it and stdout and stderr
captured. The `platbench` counterpart is tests/stand_in/cli.py's platbench_here; each command keeps one
subprocess form. Returns a subprocess.CompletedProcess, so conftest's assert_one_line_error reads it alike."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys


def trainer_here(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    from trainer.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    try:
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's refusals
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([sys.executable, "-m", "trainer", *args], code, out.getvalue(), err.getvalue())
