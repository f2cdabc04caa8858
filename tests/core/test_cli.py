"""The CLI as a user meets it: every --help renders, and bad targets/kinds are one line and a non-zero exit."""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from platforms.cli import app
from stand_in import stand_in  # noqa: F401 (fixture)

PY = sys.executable


def _commands(cmd, path: tuple[str, ...] = ()):
    yield path
    if getattr(cmd, "commands", None):  # a group (typer ships its own click: no isinstance check)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, path + (name,))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "launch", "load", "platforms", "data prepare", "scenario record", "report"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "platbench")
def test_every_help_renders(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exception is None, f"{' '.join(path)} --help raised {result.exception!r}"
    assert result.exit_code == 0
    assert "Usage:" in result.output


def _platbench(args, cwd, **env):
    return subprocess.run([PY, "-m", "platforms", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def _here(args, cwd):
    """The same command in this process (tests/stand_in/cli.py): the subprocess proves no more than its
    seconds of imports where one run of the command through a process is kept."""
    from stand_in.cli import platbench_here

    return platbench_here(*args, cwd=cwd)


@pytest.mark.parametrize("target,says", [("notaurl.invalid", "cannot resolve host 'notaurl.invalid'"),
                                         ("closed", "answered nothing")])
def test_load_against_nothing_is_one_line_and_records_nothing(tmp_path, target, says):
    """A name that does not resolve is said so (issue 28), a closed port is a server that answers nothing.
    The first through a process (`python -m platforms load`), the second in this one."""
    run = _platbench if target == "notaurl.invalid" else _here
    if target == "closed":
        target = f"http://127.0.0.1:{_closed_port()}"
    r = run(["load", target, "-n", "5", "--warmup", "0", "--retries", "0"], tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "mlflow.db").exists()


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args):
        pass


def test_a_load_run_where_every_request_failed_is_recorded_as_failed(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = _here(["load", f"http://127.0.0.1:{server.server_port}", "-n", "6", "--warmup", "0",
                   "--retries", "0", "-c", "2"], tmp_path)
    finally:
        server.shutdown()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "every one of 6 requests failed (6× HTTP 500)" in r.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["platbench.status"] == "failed"
    assert run.data.metrics["load_failed"] == 6
    assert not any(k.startswith("load_latency") or k == "load_requests_per_s" for k in run.data.metrics)


def test_runs_with_an_unknown_kind_names_the_kinds(tmp_path):
    r = _here(["runs", "--kind", "bogus"], tmp_path)
    assert r.returncode == 2
    assert "choose one of: train, load" in r.stderr and r.stderr.strip().count("\n") == 0


# The console script (.venv/bin/platbench) run as it is, and at exit a note of the Lightning modules its process
# imported, to the file named first
_CONSOLE_SCRIPT_NOTING_LIGHTNING = """
import atexit, runpy, sys
del sys.argv[0]  # "-c": the console script is argv[0], as when it runs by itself
note = sys.argv.pop(1)
atexit.register(lambda: open(note, "w").write(repr(sorted(
    m for m in ("lightning", "pytorch_lightning") if m in sys.modules))))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_piped_launch_prints_only_the_results_table(tmp_path, stand_in):
    """Issue 28, quiet pipes: stdout holds the results table alone; stderr no per-epoch log line and no MLflow
    artifact progress bar (without --verbose); the log lines are all in train.log.

    And `platbench launch local` hands the trainer plain progress hooks (trainer.train forwards them to
    Lightning), so on the stand-in no Lightning is imported: it cost every local launch and sweep cell of the
    suite ~6 s of a ~20 s stand-in launch (helper measurement at load 8). One launch proves both (this was
    tests/stand_in's test_launch_local_on_the_stand_in_imports_no_lightning)."""
    note = tmp_path / "lightning-modules"
    r = subprocess.run([PY, "-c", _CONSOLE_SCRIPT_NOTING_LIGHTNING, str(Path(PY).parent / "platbench"), str(note),
                        "launch", "local", "--data", str(stand_in.data), "--epochs", "2", "--out", "o"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, **stand_in.env()}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.lstrip().startswith("local · small") and r.stdout.rstrip().endswith("┘"), r.stdout
    assert "MLflow run" in r.stdout and "- Epoch" not in r.stdout
    assert "- Epoch" not in r.stderr and "artifacts" not in r.stderr.lower(), r.stderr
    assert "- Epoch: 2" in (tmp_path / "o" / "train.log").read_text()
    assert note.read_text() == "[]"


def test_runs_on_a_new_folder_says_how_to_record_one_and_makes_no_store(tmp_path):
    from stand_in.cli import platbench_here

    r = platbench_here("runs", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", r.stdout
    assert "no train runs in" in r.stderr and "platbench launch local" in r.stderr, r.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_sweep_parent_row_names_its_sweep():
    from rich.console import Console

    from platforms.runs_table import runs_table

    row = {"run_id": "abcdef123", "start_time": 0, "status": "FINISHED", "platform": None, "model": None,
           "dataset": None, "per_class": None, "seed": None, "test_accuracy": None, "seconds_train": None,
           "seconds_to_target": None, "kind": "sweep", "name": "sw-1"}
    console = Console(record=True, width=200)
    console.print(runs_table([row], "sqlite:///x.db"))
    assert "sweep sw-1" in console.export_text()
