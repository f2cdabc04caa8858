"""Launcher conformance kit, Ctrl-C (docs/design.md, "Testing without clouds"): for every platform that runs
our image, in its native local mode and on its loopback cloud, Ctrl-C while the job trains stops every
process the job started, leaves no scratch folder and no collected half-run, cancels the cloud job (through
transient faults on the cancel call), and marks the MLflow run KILLED. Jobs run the stand-in trainer
(tests/stand_in): what is tested is the launcher's."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import VENV_BIN
from conftest_clouds import aws, gcs, gcs_server, moto_server  # noqa: F401 (fixtures)
from launcher_rigs import kit_store  # noqa: F401 (fixture)
from launcher_rigs import MARK, RaiseInTraining, nothing_left, open_rig, rigs, wait_for_census, wait_gone
from azureml_server import azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env  # noqa: F401 (fixtures)
from _apolo_server import apolo_stand_in  # noqa: F401 (fixture)
from dbx_workspace import job_cluster, workspace, workspace_server  # noqa: F401 (fixtures)
from sagemaker_fixtures import job_runner, sagemaker_server, sm_api  # noqa: F401 (fixtures)
from stand_in import stand_in  # noqa: F401 (fixture)
from vertex_fixtures import job_service  # noqa: F401 (fixture)

from platforms.core import launch
from platforms.core.api import Job

server = workspace_server("main.platbench.runs")  # the Databricks workspace (dbx_workspace.workspace's)


@pytest.mark.parametrize("rig", rigs(lambda r: r.local_mode and r.name != "local"))
def test_ctrl_c_in_local_mode_leaves_nothing_behind(rig, request, stand_in, tmp_path, monkeypatch, kit_store):
    """Each cloud launcher's native local mode: the trainer it started is stopped and its scratch removed."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    for k, v in ctx.env(stand_in, epoch_seconds=0.5).items():
        monkeypatch.setenv(k, v)
    progress = RaiseInTraining(ctx.mark, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        launch.launch(rig.name, Job(data=stand_in.data, out=tmp_path / "out", epochs=1000), rig.local(ctx), progress)
    nothing_left(progress.procs, tmp_path / "out")
    # the scratch folder the trainer ran in (the job's /opt/ml, /gcs, outputs …) is gone
    assert all(p.cwd is not None and not p.cwd.exists() for p in progress.procs), progress.procs


def test_ctrl_c_in_a_local_launch_leaves_nothing_behind(stand_in, tmp_path):
    """`platbench launch local` trains in its own process: Ctrl-C (SIGINT) after the first epoch-end checkpoint
    ends it with 130, one line saying how to resume, the run KILLED with the epochs done recorded."""
    mark = "local-" + tmp_path.name
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "launch", "local", "--data", str(stand_in.data), "--epochs",
                             "200", "--hp", "batch_size=8", "--out", "runs/x"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **stand_in.env(epoch_seconds=0.5), MARK: mark})
    ckpt = tmp_path / "runs/x/checkpoints/last.ckpt"
    deadline = time.time() + 600  # a bound, not a measure: platbench's imports took over 240 s at load 24
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "no epoch-end checkpoint appeared"
    procs = wait_for_census(mark)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--checkpoint-dir" in stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "KILLED"
    assert client.get_metric_history(run.info.run_id, "test_accuracy")  # the epochs done are recorded
    assert wait_gone(procs) == []


@pytest.mark.parametrize("rig", rigs(lambda r: r.cloud))
def test_ctrl_c_in_the_cloud_cancels_the_job_through_faults_on_the_cancel_call(rig, request, stand_in, tmp_path,
                                                                                monkeypatch, kit_store):
    """Ctrl-C once the job trains: the launcher cancels it, the server stops the container (SIGTERM) and
    the job ends cancelled; the MLflow run is KILLED. The job API fails the cancel call once per transient fault
    (test_kit_faults.py's faults): the cancel is retried until the service takes it."""
    assert rig.job_server, f"{rig.name}: a cloud rig's job server takes faults"
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    rig.runtime(ctx, ctx.env(stand_in, epoch_seconds=0.5))
    rig.transient(ctx, "cancel", 1)
    progress = RaiseInTraining(ctx.mark, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        launch.launch(rig.name, Job(data=stand_in.data, out=tmp_path / "out", epochs=1000), rig.remote(ctx), progress)
    rig.cancelled(ctx)
    nothing_left(progress.procs, tmp_path / "out")
    assert rig.faults_left(ctx) == 0
