"""The end-to-end local sweep shared by tests/bench/test_sweep.py and the report tests, made once per test
session: the real `platbench sweep` (coordinator, workers, local launches, MLflow) with the stand-in trainer
(tests/stand_in) in its cells: what these tests check — parent and nested children, skip / re-attach / launch
on resume, report rows equal to MLflow — comes from the sweep machinery, not from training. Each images-per-
class group replays a golden run the real trainer made here (model small, 1 epoch, the bundled digits)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import VENV_BIN

SWEEP_NAME = "e2e"
# min_steps=1: one optimizer step a pass for the golden runs (the trainer's default, 200, is minutes on a loaded
# machine), and the same hyperparameters in the sweep, whose cells replay them
SWEEP_ARGS = ["--model", "small", "--per-class", "5,20", "--seeds", "0,1", "--epochs", "1", "--hp", "min_steps=1",
              "--name", SWEEP_NAME]
# the first session's cells: the killed coordinator's still-running one is held stopped (SIGSTOP) from moments
# after its worker starts until the second session has opened the sweep (see _sweep), so the second session
# finds it alive whatever the epoch's length; this only keeps it alive through those moments, which the
# worker's start-up (seconds of imports before its first epoch) already covers
FIRST_SESSION_EPOCH_SECONDS = 1


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


def _goldens(cwd: Path, digits_data: Path) -> dict[int, Path]:
    """One real training per images-per-class value of the sweep (the stand-in replays only what was trained),
    in one process: each is mostly torch's start-up, paid once."""
    from _runs import train_several

    outs = {pc: cwd / f"golden-pc{pc}" for pc in (5, 20)}
    train_several([(digits_data, out, ("--model", "small", "--epochs", "1", "--seed", "0", "--per-class", str(pc),
                                       "--min-steps", "1")) for pc, out in outs.items()])
    return outs


def _sweep(cwd: Path, digits_data: Path) -> None:
    from mlflow.tracking import MlflowClient
    from stand_in import StandIn

    goldens = _goldens(cwd, digits_data)
    (cwd / "data").write_text(str(digits_data))
    # session 1 runs the pc5 cells, session 2 launches only the pc20 ones (a pc5 cell launched again there would
    # be refused by the stand-in: the test of "nothing run twice" stays strict)
    first_env = {**os.environ, **StandIn(goldens[5], digits_data).env(epoch_seconds=FIRST_SESSION_EPOCH_SECONDS)}
    second_env = {**os.environ, **StandIn(goldens[20], digits_data).env()}
    log = (cwd / "session1.log").open("w")
    first = subprocess.Popen(_sweep_cmd(digits_data), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True,
                             env=first_env)
    second_worker = cwd / "runs/sweeps" / SWEEP_NAME / "local-small-pc5-seed1" / "worker.json"
    deadline = time.time() + 600
    while not second_worker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert second_worker.exists(), (cwd / "session1.log").read_text()
    first.kill()  # SIGKILL: the coordinator cannot pass anything on; its worker goes on alone
    first.wait(30)
    log.close()
    pid = json.loads(second_worker.read_text())["pid"]
    # the worker (its own process group) held stopped until the second session has opened the sweep, so that
    # session finds it running whatever the machine's load; it goes on from there
    os.killpg(pid, signal.SIGSTOP)
    try:
        with (cwd / "session2.out").open("w") as out, (cwd / "session2.err").open("w") as err:
            second = subprocess.Popen(_sweep_cmd(digits_data, "--json"), cwd=cwd, stdout=out, stderr=err, text=True,
                                      env=second_env)
            client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
            exp = client.get_experiment_by_name("platbench")
            deadline = time.time() + 600
            while second.poll() is None and time.time() < deadline:  # its pid on the parent run: it opened it
                parents = client.search_runs([exp.experiment_id], f"tags.`platbench.pid` = '{second.pid}'")
                if parents:
                    break
                time.sleep(0.2)
        os.killpg(pid, signal.SIGCONT)
        second.wait(1200)
    finally:
        try:
            os.killpg(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert second.returncode == 0, (cwd / "session2.err").read_text()
    (cwd / "worker-pid").write_text(str(pid))
    (cwd / "session2.json").write_text((cwd / "session2.out").read_text())  # last: it marks the sweep done
