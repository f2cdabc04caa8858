"""Two data-parallel CPU processes (gloo) under torchrun, for real, on the bundled digits: `platbench launch
local --devices 2` against one process of the same job. SIGTERM goes to ONE rank (not the launcher): every
rank stops at the same step, the launch ends preempted, and the same command resumes from the last
epoch-end checkpoint and finishes with a complete, compliant results.json.

Tolerance: the two runs train the same global batches with the same schedule, but BatchNorm statistics
are per rank (half a batch each) and the float sums are ordered differently, so the accuracies are close,
not equal: within ACCURACY_TOLERANCE on the 355 test digits (measured gap 0.002–0.02)."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import psutil
import pytest
from stand_in.cli import platbench_here
from _cli import trainer_here
from _runs import DIGITS_EPOCHS, digits_run
from conftest import VENV_BIN

from mlflow.tracking import MlflowClient

EPOCHS = str(DIGITS_EPOCHS)  # as many as the one-process reference run
ACCURACY_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def one_process(digits_data, tmp_path_factory):
    """One process of the same job: the session's shared digits run (tests/_runs.py, its target only recorded)."""
    return json.loads((digits_run(tmp_path_factory, digits_data) / "results.json").read_text())


def _ranks(proc: subprocess.Popen) -> list[psutil.Process]:
    """The trainer processes torchrun started for this launch (children running `-m trainer train`)."""
    return [p for p in psutil.Process(proc.pid).children(recursive=True)
            if "trainer" in p.cmdline() and "train" in p.cmdline()]


@pytest.fixture(scope="module")
def preempted_then_resumed(digits_data, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ddp")
    args = ["launch", "local", "--data", str(digits_data), "--devices", "2", "--epochs", EPOCHS, "--out", "runs/two",
            "--json"]
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ckpt = cwd / "runs/two/checkpoints/last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "no epoch-end checkpoint appeared"
    ranks = _ranks(proc)
    assert len(ranks) == 2, [r.cmdline() for r in ranks]
    by_rank = {int(r.environ()["RANK"]): r for r in ranks}
    by_rank[1].send_signal(signal.SIGTERM)  # one rank only, and not rank 0
    _, stderr = proc.communicate(timeout=180)
    first = {"code": proc.returncode, "stderr": stderr, "metrics": (cwd / "runs/two/metrics.jsonl").read_text()}
    # the same command again, in this process (tests/stand_in/cli.py: the launch above is the console script);
    # its torchrun agent and ranks are processes as ever
    resumed = platbench_here(*args, cwd=cwd)
    return cwd, first, resumed


def test_sigterm_to_one_rank_stops_every_rank_preempted(preempted_then_resumed):
    cwd, first, _ = preempted_then_resumed
    assert first["code"] == 143, first["stderr"]
    assert "preempted" in first["stderr"] and "--checkpoint-dir" in first["stderr"]
    assert "Traceback" not in first["stderr"]
    assert not (cwd / "runs/two/results.json").exists() or first["metrics"]  # nothing finished yet
    epochs_done = len(first["metrics"].splitlines())
    assert 1 <= epochs_done < int(EPOCHS)
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("platbench").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]
    assert runs[0].data.tags["platbench.status"] == "preempted"
    # the report reads the scale of a run from MLflow
    assert runs[1].data.metrics["world_size"] == 2 and runs[1].data.metrics["nodes"] == 1


def test_resumed_two_process_run_is_complete_and_compliant(preempted_then_resumed, one_process):
    cwd, first, resumed = preempted_then_resumed
    assert resumed.returncode == 0, resumed.stderr
    res = json.loads(resumed.stdout)["results"]
    assert res["hardware"]["world_size"] == 2 and res["hardware"]["nodes"] == 1
    assert one_process["hardware"]["world_size"] == 1 and one_process["hardware"]["nodes"] == 1
    assert res["resumed_from_epoch"] == len(first["metrics"].splitlines())  # epochs done before the resume
    assert res["epochs_completed"] == int(EPOCHS) and res["status"] == "finished"
    # the same global batches and schedule as one process: the same optimizer steps
    assert res["schedule"] == one_process["schedule"]
    assert res["dataset"]["train_count"] == one_process["dataset"]["train_count"]
    # every rank evaluated a slice; the figures cover the whole test set
    assert sum(map(sum, res["confusion_matrix"])) == one_process["dataset"]["test_count"]
    assert abs(res["test_accuracy"] - one_process["test_accuracy"]) <= ACCURACY_TOLERANCE
    # in this process (tests/_cli.py): `python -m trainer check`'s subprocess form is tests/test_check.py's
    check = trainer_here("check", str(cwd / "runs/two"), "--native")
    assert check.returncode == 0, check.stdout + check.stderr
    # training time excludes evaluation on every epoch (the recorder's clock, rank 0)
    metrics = [json.loads(line) for line in (cwd / "runs/two/metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, int(EPOCHS) + 1))
    assert res["seconds"]["eval"] > 0 and res["seconds"]["train"] == pytest.approx(metrics[-1]["train_seconds"], abs=1e-5)
    # only rank 0 wrote the log: every epoch's line once
    log = (cwd / "runs/two/train.log").read_text()
    assert log.count(f"- Epoch: {EPOCHS}") == 1


def test_local_refuses_several_nodes_and_more_processes_than_devices(digits_data, tmp_path):
    from conftest import assert_one_line_error

    # in this process (tests/stand_in/cli.py): the launch above is `launch local` through the real entry point
    proc = platbench_here("launch", "local", "--data", str(digits_data), "--nodes", "2", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--nodes 2" in proc.stderr and list(tmp_path.iterdir()) == []
    proc = platbench_here("launch", "local", "--data", str(digits_data), "--devices", "64", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--devices 64" in proc.stderr and list(tmp_path.iterdir()) == []


def test_dry_run_shows_the_torchrun_command(digits_data, tmp_path):
    proc = platbench_here("launch", "local", "--data", str(digits_data), "--devices", "2", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torchrun --standalone --nnodes 1 --nproc-per-node 2" in proc.stdout
    assert list(tmp_path.iterdir()) == []
