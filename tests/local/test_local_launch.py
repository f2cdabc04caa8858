"""`platbench launch local` through the real CLI: results table/JSON, the MLflow run in the embedded
store (and in MLFLOW_TRACKING_URI's when set), `platbench runs`, interrupts, and bad input.

The real trainer trains the module's one launch (`launched`: the local contract end to end, in this
process). Where a test is about what platbench does around a training (the tracking store, SIGTERM, a process
that died), the launch runs the stand-in trainer (tests/stand_in: the same launcher, CLI and MLflow code, a `trainer` that
replays a golden run). Refusals run the CLI in this process (tests/stand_in/cli.py); one stays a subprocess.
Ctrl-C is the launcher conformance kit's (tests/launchers), as for every platform."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import VENV_BIN, assert_one_line_error, platbench

from mlflow.tracking import MlflowClient
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here


@pytest.fixture(scope="module")
def launched(color_data, tmp_path_factory):
    """The real trainer through `platbench launch local`'s entry in this process (tests/stand_in/cli.py), as the
    console script runs it (the local platform trains in platbench's own process); the stand-in launches below
    are the console script itself."""
    cwd = tmp_path_factory.mktemp("launch")
    proc = platbench_here("launch", "local", "--data", str(color_data), "--epochs", "2", "--hp", "batch_size=32",
                          "--target-accuracy", "0.4", "--json", "--out", "runs/one", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd, json.loads(proc.stdout)


def test_json_output_and_files(launched):
    cwd, doc = launched
    res = doc["results"]
    assert res["platform"] == "local" and res["epochs_completed"] == 2
    out = cwd / "runs/one"
    for name in ("results.json", "metrics.jsonl", "train.log", "model/model.pt", "model/model.json"):
        assert (out / name).is_file(), name


def test_mlflow_run_in_the_embedded_store(launched):
    cwd, doc = launched
    assert (cwd / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    run = client.get_run(doc["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["platbench.platform"] == "local" and tags["platbench.status"] == "finished"
    assert tags["platbench.dataset_fingerprint"] == doc["results"]["dataset"]["fingerprint"]
    assert tags["platbench.git_commit"]
    assert params["model"] == "small" and params["epochs"] == "2" and params["hp.batch_size"] == "32"
    assert metrics["final_test_accuracy"] == pytest.approx(doc["results"]["test_accuracy"])
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "metrics.jsonl", "train.log", "model"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.pt", "model/model.json"} <= model_files
    assert (cwd / "mlartifacts").is_dir()


def test_runs_lists_the_run(launched):
    cwd, doc = launched
    # in this process (tests/stand_in/cli.py); the subprocess form: test_a_run_whose_process_died_is_reconciled_as_lost
    proc = platbench_here("runs", "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["run_id"] == doc["mlflow_run_id"] and rows[0]["status"] == "FINISHED"
    table = platbench_here("runs", cwd=cwd)
    assert doc["mlflow_run_id"][:6] in table.stdout and "finished" in table.stdout


def test_tracking_uri_from_the_environment_wins_and_its_artifacts_live_beside_it(stand_in, tmp_path):
    """MLFLOW_TRACKING_URI names a sqlite store away from the working folder: the run is there, the artifacts
    beside that store, and nothing is written where platbench was started (no embedded mlflow.db)."""
    store = tmp_path / "store"
    store.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    uri = f"sqlite:///{store / 'elsewhere.db'}"
    proc = platbench("launch", "local", "--data", str(stand_in.data), "--epochs", "1", "--json", "--out",
                     str(tmp_path / "out"), cwd=work, env={"MLFLOW_TRACKING_URI": uri, **stand_in.env()})
    assert proc.returncode == 0, proc.stderr
    assert (store / "elsewhere.db").is_file() and not (work / "mlflow.db").exists()
    run = MlflowClient(tracking_uri=uri).get_run(json.loads(proc.stdout)["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert (store / "mlartifacts").is_dir() and list(work.iterdir()) == []


def launch_until_first_checkpoint(stand_in, cwd) -> subprocess.Popen:
    """A long local launch (the stand-in trainer, 200 epochs of half a second), returned once its first
    epoch-end checkpoint exists."""
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "launch", "local", "--data", str(stand_in.data), "--epochs",
                             "200", "--hp", "batch_size=8", "--out", "runs/x"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **stand_in.env(epoch_seconds=0.5)})
    ckpt = cwd / "runs/x/checkpoints/last.ckpt"
    deadline = time.time() + 600  # a bound, not a measure: platbench's imports took over 240 s at load 24
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "no epoch-end checkpoint appeared"
    return proc


# (SIGINT, Ctrl-C: the launcher conformance kit, tests/launchers/test_kit_ctrl_c.py)
@pytest.mark.parametrize("sig, status, code", [(signal.SIGTERM, "KILLED", 143)])
def test_interrupted_run_is_marked_killed_never_left_running(stand_in, tmp_path, sig, status, code):
    proc = launch_until_first_checkpoint(stand_in, tmp_path)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "--checkpoint-dir" in stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == status
    assert client.get_metric_history(run.info.run_id, "test_accuracy")  # the epochs done are recorded


@pytest.mark.parametrize("args, message", [
    (["--data", "{missing}"], "does not exist"),
    (["--data", "{data}", "--model", "vgg"], "unknown model 'vgg'"),
    (["--data", "{data}", "--hp", "lr"], "--hp takes KEY=VALUE"),
    (["--data", "{data}", "--hp", "lr=fast"], "is not a float"),
    (["--data", "{data}", "--set", "region=x"], "takes no --set options"),
    (["--data", "{corrupt}"], "cannot read image"),
])
def test_bad_input_one_line_nothing_written(color_data, tmp_path, args, message):
    from conftest import write_folder_dataset

    corrupt = write_folder_dataset(tmp_path / "corrupt", 2, 1)
    (corrupt / "train/red/0000.png").write_bytes(b"garbage")
    work = tmp_path / "work"
    work.mkdir()
    args = [a.format(missing=tmp_path / "nope", data=color_data, corrupt=corrupt) for a in args]
    proc = platbench_here("launch", "local", *args, cwd=work)
    assert_one_line_error(proc)
    assert message in proc.stderr
    assert list(work.iterdir()) == []  # no MLflow store, no run folder


def test_bad_platform_and_usage_errors(tmp_path, color_data):
    """The subprocess form of a refusal: the console script itself."""
    assert_one_line_error(platbench("launch", "nowhere", "--data", str(color_data), cwd=tmp_path))
    proc = platbench_here("launch", "local", "--data", str(color_data), "--epochs", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_dry_run_creates_nothing(color_data, tmp_path):
    proc = platbench_here("launch", "local", "--data", str(color_data), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0 and "python -m trainer train" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_process_died_is_reconciled_as_lost(stand_in, tmp_path):
    proc = launch_until_first_checkpoint(stand_in, tmp_path)
    proc.kill()  # SIGKILL: nothing in the process can end its MLflow run
    proc.communicate(timeout=60)
    rows = json.loads(platbench("runs", "--json", cwd=tmp_path).stdout)
    assert rows[0]["status"] == "FAILED"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(rows[0]["run_id"]).data.tags["platbench.status"] == "lost"
