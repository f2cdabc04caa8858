"""`platbench` run in the test's own process, for one-line refusals, --help and dry runs: a subprocess
spends seconds importing the CLI (and the SDKs a plan names) and proves nothing more there. The console
script's own `main()` runs (its UserError -> one line, exit 2), under typer's CliRunner isolation (stdin,
stdout, stderr and os.environ swapped for the call), in `cwd`. The answer has a subprocess's shape, so
conftest's assert_one_line_error reads it unchanged. Each command keeps one test through the real entry
point (conftest.platbench), where import-time output and the exit status of the process are proved."""
from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

from typer.testing import CliRunner


def platbench_here(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    from platforms.cli import main

    before, argv = Path.cwd(), sys.argv
    code = 0
    with CliRunner().isolation(env=env) as (out, err, _):
        os.chdir(cwd)
        sys.argv = ["platbench", *args]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # noqa: BLE001 - what the process would print before dying with status 1
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            sys.argv = argv
            os.chdir(before)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
    return subprocess.CompletedProcess(["platbench", *args], code, stdout, stderr)
