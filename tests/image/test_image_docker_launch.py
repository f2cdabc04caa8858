"""`platbench launch docker` end to end (issue 18), under scripts/image-test: the real engine, the image the
script built and recorded with `platbench image build`, CPU only (no GPU reservation), the bundled digits.

- Ctrl-C (SIGINT to the launch) mid-training: the container is stopped with SIGTERM, the trainer
  checkpoints, the MLflow run ends KILLED; a second launch with the same job name resumes and finishes;
- that second launch is the full run (one training run for both tests, issue 30): results.json and the MLflow
  run FINISHED, both naming the image by the engine's own identity (platforms/image/engine.identity) with no
  variable set by the user; the container ran as the image's non-root user; nothing left behind in the engine;
- bad input against the real engine: an image it lacks, a GPU request it cannot meet, a left-over container
  of the same job: one line, exit 2, no MLflow run, no container."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import VENV_BIN, assert_one_line_error, platbench

from image.test_image import DIGEST, IMAGE, IMAGE_UID, WORK, docker, wait_for
from image.test_image_registry import project

# long enough to press Ctrl-C after the first checkpoint (the epochs after it are the margin), short enough
# to resume; at batch 64 (was 6 epochs at batch 16: four times the steps)
EPOCHS_TO_INTERRUPT = 4
INTERRUPT_BATCH = 64


@pytest.fixture(scope="module")
def digits() -> Path:
    from trainer.data.prepare import digits as load, write_folder

    classes, splits = load()
    root = write_folder(WORK / "docker-launch-data" / "digits", classes, splits)
    # write_folder's folder is mkdtemp's (0700): as a user's data usually is, readable by the container's uid
    subprocess.run(["chmod", "-R", "a+rX", str(root.parent)], check=True)
    return root


@pytest.fixture(scope="module")
def identity() -> str:
    """What the engine says the image is (its registry digest once pushed, else its ID): what the run must record."""
    from platforms.image import engine

    return engine.identity(engine.api(), IMAGE)


def mlflow_runs(cwd: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (cwd / "mlflow.db").is_file():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("platbench")
    return client.search_runs([exp.experiment_id]) if exp else []


def job_containers() -> list[str]:
    return docker("ps", "-aq", "--filter", "label=platbench.job_name").stdout.split()


def launch_args(data: Path, job: str, epochs: int, *extra: str, batch: int = 16) -> list[str]:
    return ["launch", "docker", "--data", str(data), "--epochs", str(epochs), "--hp", f"batch_size={batch}",
            "--set", f"job_name={job}", "--json", "--verbose", *extra]  # log lines piped: only when asked (issue 28)


@pytest.fixture(scope="module")
def interrupted_then_resumed(digits):
    """One training run for the two tests below: a launch Ctrl-C'd (SIGINT) after its first checkpoint, then a
    second launch of the same job that resumes and finishes it. What the engine, the folder and MLflow held
    between the two launches is kept for the Ctrl-C test; the second launch is the full run."""
    cwd = project("docker-launch-resume")
    job = "pbit-resume"
    checkpoint = cwd / "runs" / "checkpoints" / job / "last.ckpt"
    log = cwd / "first-launch.log"
    running, stopped_in = False, float("inf")
    with log.open("w") as err:
        proc = subprocess.Popen([str(VENV_BIN / "platbench"), *launch_args(digits, job, EPOCHS_TO_INTERRUPT,
                                                                             batch=INTERRUPT_BATCH)], cwd=cwd,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            wait_for(lambda: checkpoint.is_file() or proc.poll() is not None, 600, "the first epoch's checkpoint")
            running = proc.poll() is None
            if running:
                t0 = time.time()
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=300)
                stopped_in = time.time() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    first = SimpleNamespace(running=running, returncode=proc.returncode, log=log.read_text(), stopped_in=stopped_in,
                            checkpoint=checkpoint.is_file(), containers=job_containers(), runs=mlflow_runs(cwd))
    second = platbench(*launch_args(digits, job, EPOCHS_TO_INTERRUPT, batch=INTERRUPT_BATCH), cwd=cwd, timeout=900)
    return SimpleNamespace(cwd=cwd, job=job, first=first, second=second)


def test_a_full_run_records_the_images_identity(interrupted_then_resumed, identity):
    """The launch that resumed the job and finished it (the fixture's second launch)."""
    cwd, job, proc = interrupted_then_resumed.cwd, interrupted_then_resumed.job, interrupted_then_resumed.second
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"- Epoch: {EPOCHS_TO_INTERRUPT}" in proc.stderr  # the container's log lines reached the launcher
    doc = json.loads(proc.stdout)
    res = doc["results"]
    assert res["platform"] == "docker" and res["epochs_completed"] == EPOCHS_TO_INTERRUPT
    assert res["image_digest"] == identity
    assert res["image_id"] == DIGEST  # the config digest (trainer/image_record.py): the same in build and run
    out = Path(doc["output_dir"])
    assert out.resolve().is_relative_to(cwd.resolve())
    for name in ("results.json", "metrics.jsonl", "train.log", "model/model.pt"):
        assert (out / name).stat().st_uid == IMAGE_UID, f"{name}: not written by the image's non-root user"

    runs = {r.info.run_id: r for r in mlflow_runs(cwd)}
    assert len(runs) == 2  # this run and the Ctrl-C'd one before it
    run = runs[doc["mlflow_run_id"]]
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.run_id == doc["mlflow_run_id"] and run.info.status == "FINISHED"
    assert tags["platbench.platform"] == "docker" and tags["platbench.image_digest"] == identity
    assert tags["platbench.image_id"] == DIGEST and tags["platbench.job_id"] == job
    assert tags["platbench.check"] == "passed", tags.get("platbench.check_reason")
    # queue = created → started by the engine's clock, a small part of the container's life
    assert 0 <= metrics["phase_seconds_queued"] < metrics["phase_seconds_training"] <= metrics["seconds_wall"]
    print(f"launch docker, digits, small, resumed to {EPOCHS_TO_INTERRUPT} epochs, CPU: queued "
          f"{metrics['phase_seconds_queued']:.2f} s (created → started), container {metrics['phase_seconds_training']:.1f} s, "
          f"launch wall {metrics['seconds_wall']:.1f} s, train {res['seconds']['train']:.1f} s")  # -rP, docs/benchmarks.md
    assert "cost_usd" not in metrics  # your own machine: no price, none invented
    assert job_containers() == [], "the job's container was left in the engine"


def test_ctrl_c_checkpoints_the_run_killed_and_a_second_launch_resumes(interrupted_then_resumed, identity):
    first, proc = interrupted_then_resumed.first, interrupted_then_resumed.second
    assert first.running, first.log[-3000:]  # still training when its first checkpoint appeared
    assert first.returncode == 130, first.log[-3000:]
    assert "SIGTERM received" in first.log, first.log[-3000:]  # the trainer's own line: the stop reached it as SIGTERM
    assert first.stopped_in < 60, "the container did not stop within the grace period (SIGKILL)"
    assert first.checkpoint and first.containers == []
    (killed,) = first.runs
    assert killed.info.status == "KILLED" and killed.data.tags["platbench.status"] == "killed"
    assert killed.data.tags["platbench.image_digest"] == identity

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Resuming from /platbench/checkpoints/last.ckpt" in proc.stderr, proc.stderr[-3000:]
    res = json.loads(proc.stdout)["results"]
    assert res["resumed_from_epoch"] is not None and res["resumed_from_epoch"] >= 1
    assert res["epochs_completed"] == EPOCHS_TO_INTERRUPT and res["image_digest"] == identity
    finished = [r for r in mlflow_runs(interrupted_then_resumed.cwd) if r.info.run_id != killed.info.run_id]
    assert [r.info.status for r in finished] == ["FINISHED"]
    assert job_containers() == []


def assert_nothing_created(proc: subprocess.CompletedProcess, cwd: Path) -> None:
    assert_one_line_error(proc)
    assert proc.returncode == 2
    assert sorted(p.name for p in cwd.iterdir()) == [".platbench"], "a refused launch left files"
    assert job_containers() == [] and not docker("ps", "-aq", "--filter", "name=platbench-gpu-probe").stdout.strip()


def test_an_image_the_engine_lacks_is_one_line(digits):
    cwd = project("docker-launch-no-image")
    proc = platbench(*launch_args(digits, "pbit-none", 1, "--set", "image=platbench:no-such-tag"), cwd=cwd)
    assert_nothing_created(proc, cwd)
    assert "platbench:no-such-tag" in proc.stderr


def test_a_gpu_request_the_engine_cannot_meet_is_one_line(digits):
    if shutil.which("nvidia-container-runtime-hook"):
        pytest.skip("this engine's host has the NVIDIA Container Toolkit: the request could be met")
    cwd = project("docker-launch-gpu")
    proc = platbench(*launch_args(digits, "pbit-gpu", 1, "--gpus", "all"), cwd=cwd)
    assert_nothing_created(proc, cwd)
    assert "--gpus all" in proc.stderr


def test_a_left_over_container_of_the_same_job_is_one_line(digits):
    cwd = project("docker-launch-left-over")
    docker("create", "--name", "platbench-pbit-left", "--label", "platbench.job_name=pbit-left", "--network", "none",
           IMAGE, "true")
    try:
        proc = platbench(*launch_args(digits, "pbit-left", 1), cwd=cwd)
        assert_one_line_error(proc)
        assert proc.returncode == 2 and "docker rm platbench-pbit-left" in proc.stderr
        assert sorted(p.name for p in cwd.iterdir()) == [".platbench"]
    finally:
        docker("rm", "-f", "platbench-pbit-left", check=False)
