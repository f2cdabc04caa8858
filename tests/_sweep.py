"""The end-to-end local sweep shared by tests/bench/test_sweep.py and the report tests (real runs: CPU,
model small, bundled digits data), made once per test session."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from conftest import VENV_BIN

SWEEP_NAME = "e2e"
SWEEP_ARGS = ["--model", "small", "--per-class", "5,20", "--seeds", "0,1", "--epochs", "1", "--name", SWEEP_NAME]


def _sweep_cmd(data: Path, *extra: str) -> list[str]:
    return [str(VENV_BIN / "platbench"), "sweep", "--data", str(data), *SWEEP_ARGS, *extra]


def swept(tmp_path_factory, digits_data) -> Path:
    """The end-to-end sweep (4 local runs), done once per session and shared with test_report.py and
    test_report_browser.py, across pytest-xdist workers too (tests/_runs.session_folder): first session killed
    with SIGKILL while its second cell trains, second session resumes it. Returns the working folder
    (mlflow.db, runs/, session outputs, and `data`: the dataset path the sweep was run on, which later
    commands on the sweep must name). Readers only read it."""
    from _runs import session_folder

    def make(cwd: Path) -> None:
        cwd.mkdir(parents=True)
        _sweep(cwd, digits_data)

    return session_folder(tmp_path_factory, "local-sweep", make)


def _sweep(cwd: Path, digits_data: Path) -> None:
    (cwd / "data").write_text(str(digits_data))
    log = (cwd / "session1.log").open("w")
    first = subprocess.Popen(_sweep_cmd(digits_data), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    second_worker = cwd / "runs/sweeps" / SWEEP_NAME / "local-small-pc5-seed1" / "worker.json"
    deadline = time.time() + 600
    while not second_worker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert second_worker.exists(), (cwd / "session1.log").read_text()
    first.kill()  # SIGKILL: the coordinator cannot pass anything on; its worker goes on alone
    first.wait(30)
    log.close()
    pid = json.loads(second_worker.read_text())["pid"]
    second = subprocess.run(_sweep_cmd(digits_data, "--json"), cwd=cwd, capture_output=True, text=True, timeout=1200)
    (cwd / "session2.err").write_text(second.stderr)
    assert second.returncode == 0, second.stderr
    (cwd / "worker-pid").write_text(str(pid))
    (cwd / "session2.json").write_text(second.stdout)  # last: it marks the sweep done
