"""`platbench ARGS` run in the test's own process: the console script's entry (platforms.cli.main: typer's
app, a UserError as one line on stderr and exit 2) with sys.argv, the working folder and the environment
set as a subprocess would have them, stdout and stderr captured. For refusals and dry runs, where a
subprocess proves nothing more than its seconds of imports; each command keeps one subprocess form.

Returns a subprocess.CompletedProcess, so tests/conftest.py's assert_one_line_error reads it alike."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path


def platbench_here(*args: str, cwd: Path, env: dict | None = None, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`drop`: prefixes of environment variables to remove first (a subprocess started without them)."""
    from platforms.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    code = 0
    try:
        sys.argv = ["platbench", *args]
        os.chdir(cwd)
        for name in [k for k in os.environ if drop and k.startswith(drop)]:
            del os.environ[name]
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=sys.stderr)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["platbench", *args], code, out.getvalue(), err.getvalue())
