"""The Databricks launcher against a loopback workspace (databricks_server.py) that the real databricks-sdk
talks to: settings refused before anything is created, the dry-run plan (its run.json accepted by the SDK's
own SubmitTask), staging into a volume through the Files API, and the whole flow: stage → runs/submit → the
run executed as a local process from the wheel built from this checkout → collect → MLflow. (Ctrl-C, a failed
job, an error while waiting: the launcher conformance kit, tests/launchers.)

The real trainer runs the task's contract (run_trainer.py with the task's parameters, outputs copied to the
volume) in local mode, which runs that very task here; the job cluster's runs (the end-to-end flow, the relaunch
that resumes) run the stand-in trainer (tests/stand_in, through the cluster's runtime environment): what they
test is the launcher's and the workspace's, not the training."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from dbx_workspace import cli_refusal, job_cluster, workspace, workspace_server  # noqa: F401 - fixtures
from stand_in import stand_in  # noqa: F401 (fixture)

from platforms.core import launch, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress
from platforms.errors import UserError

VOLUME = "main.platbench.runs"


server = workspace_server(VOLUME)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("dbx") / "colors", train_per_class=12, test_per_class=4)


def run(job: Job, settings: dict, progress=None):
    return launch.launch("databricks", job, settings, progress or JobProgress(enabled=False))


def files_under(server, prefix: str) -> list[str]:
    return sorted(p for p in server.files if p.startswith(prefix))


BASE = {"volume": "/Volumes/main/platbench/runs", "poll_seconds": "0.2"}
# runs that must finish: a CPU node type, as the loopback's node is (a GPU node type's trainer runs on --device cuda)
CPU_NODE = {"node_type": "i3.xlarge", "runtime": "16.4.x-cpu-ml-scala2.12"}


@pytest.mark.parametrize("settings, message", [
    ({"node_type": "g9.huge"}, "unknown node type 'g9.huge' in this workspace (GPU node types: g4dn.xlarge"),
    ({"node_type": "i3.xlarge"}, "node type 'i3.xlarge' has no GPU"),
    ({"runtime": "14.3.x-gpu-ml-scala2.12"}, "runtime '14.3.x-gpu-ml-scala2.12' is not offered"),
    ({"runtime": "16.4.x-scala2.12"}, "is not a Databricks ML runtime"),
    ({"volume": "/Volumes/main/platbench/missing"}, "volume /Volumes/main/platbench/missing does not exist"),
    ({"volume": "s3://bucket/x"}, "is not a Unity Catalog volume"),
    ({"volume": None}, "no volume"),
    ({"spot": "maybe"}, "spot"),
    ({"colour": "blue"}, "unknown setting 'colour'"),
])
def test_bad_settings_fail_before_anything_is_created(dataset, tmp_path, monkeypatch, workspace, settings, message):
    monkeypatch.chdir(tmp_path)
    before, runs = dict(workspace.files), dict(workspace.runs)
    s = {k: v for k, v in {**BASE, **settings}.items() if v is not None}
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), s)
    assert workspace.files == before and workspace.runs == runs
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_credentials_are_one_line_exit_2_and_nothing_is_created(dataset, tmp_path, monkeypatch, capsys,
                                                                         workspace):
    before = dict(workspace.files)
    monkeypatch.chdir(tmp_path)
    for var in [k for k in os.environ if k.startswith("DATABRICKS_")]:
        monkeypatch.delenv(var)
    line = cli_refusal(capsys, monkeypatch, "launch", "databricks", "--data", str(dataset), "--set",
                       "volume=/Volumes/main/platbench/runs")
    assert "no Databricks credentials found" in line
    assert workspace.files == before and not (tmp_path / "mlflow.db").exists()


def test_credentials_are_found_offline(tmp_path, monkeypatch):
    from platforms.databricks import credentials

    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
                "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "databrickscfg"
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    assert credentials.find()[0] is False
    cfg.write_text("[DEFAULT]\nhost = https://x.cloud.databricks.com\n\n[dev]\nhost = https://d.cloud.databricks.com\n"
                   "token = dapi1\n")
    found, where = credentials.find()
    assert not found and "no token" in where
    found, where = credentials.find("dev")
    assert found and "[dev]" in where and "personal access token" in where
    monkeypatch.setenv("DATABRICKS_HOST", "https://x.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi2")
    assert credentials.find()[0] and "DATABRICKS_TOKEN" in credentials.find()[1]


def test_dry_run_prints_databricks_commands_and_a_run_the_sdk_accepts(dataset, tmp_path):
    from databricks.sdk.service.jobs import JobsAPI
    from request_checks import body_problems

    settings = {**BASE, "spot": "true", "run_name": "pb-plan", "host": "https://adb-1.azuredatabricks.net",
                "node_type": "Standard_NC4as_T4_v3"}
    text = launch.plan_text("databricks", Job(data=dataset, out=tmp_path / "o", epochs=2), settings)
    for needle in ("databricks jobs submit --json @run.json", "databricks jobs get-run RUN_ID",
                   "databricks jobs cancel-run RUN_ID", "databricks volumes read main.platbench.runs",
                   "databricks fs cp SHARD.tar dbfs:/Volumes/main/platbench/runs/platbench/shards/<sha256>.tar",
                   "databricks clusters list-node-types"):
        assert needle in text, needle
    spec = json.loads(re.search(r"run\.json: (\{.*\})$", text, re.M).group(1))
    assert body_problems(JobsAPI.submit, spec) == []  # the whole runs/submit body, as the loopback server checks it
    (task,) = spec["tasks"]
    cluster = task["new_cluster"]
    assert cluster["num_workers"] == 0 and cluster["custom_tags"]["ResourceClass"] == "SingleNode"
    assert cluster["azure_attributes"] == {"availability": "SPOT_WITH_FALLBACK_AZURE", "first_on_demand": 0}
    params = task["spark_python_task"]["parameters"]
    assert params[:2] == ["train", "--data"] and params[params.index("--epochs") + 1] == "2"
    assert params[params.index("--out") + 1] == "/Volumes/main/platbench/runs/platbench/jobs/pb-plan/outputs"
    assert task["libraries"][0]["whl"].endswith("platbench-0.1.0-py3-none-any.whl")


@pytest.mark.parametrize("node_type, runtime, device", [
    ("g4dn.xlarge", "16.4.x-gpu-ml-scala2.12", ["--device", "cuda"]),
    ("i3.xlarge", "16.4.x-cpu-ml-scala2.12", []),
])
def test_a_gpu_node_type_starts_the_trainer_on_cuda(dataset, tmp_path, workspace, node_type, runtime, device):
    """The node type's GPUs (clusters/list-node-types, read by check) decide the trainer's device: a GPU node
    type's task carries --device cuda, so a node whose CUDA is unusable fails in one line instead of training
    on its CPU at a GPU's price; a CPU node type's carries none (the trainer's auto)."""
    from platforms.core import registry

    job = Job(data=dataset, out=tmp_path / "out", epochs=1)
    platform = registry.get("databricks")({**BASE, "node_type": node_type, "runtime": runtime})
    platform.check(job)
    spec = platform.run_spec(job, "pb-device", "k", "colors", "w/platbench.whl", "token")
    params = spec["tasks"][0]["spark_python_task"]["parameters"]
    assert [p for i, p in enumerate(params) if "--device" in params[i - 1:i + 1]] == device


def test_end_to_end_stage_submit_collect_mlflow(stand_in, tmp_path, monkeypatch, job_cluster):
    workspace = job_cluster
    workspace.runtime_env.update(stand_in.env(base={}))
    monkeypatch.chdir(tmp_path)
    seen = len(workspace.requests)
    job = Job(data=stand_in.data, out=tmp_path / "out", epochs=2, model="small")

    class Seen(JobProgress):
        epochs_done: list = []

        def epoch_done(self, epoch, status):
            self.epochs_done.append(epoch)

    progress = Seen(enabled=False)
    outcome, run_id = run(job, {**BASE, **CPU_NODE, "run_name": "pb-e2e-1"}, progress)
    assert outcome.status == "finished", outcome.message
    # epochs come from the driver's log through runs/get-output, each once, in order
    assert progress.epochs_done and progress.epochs_done == sorted(set(progress.epochs_done))
    assert [p for p, _ in progress.phases][:3] == ["staging", "submitting", "provisioning"]
    root = "/Volumes/main/platbench/runs/platbench/"
    assert files_under(workspace, root + "shards/") and files_under(workspace, root + "datasets/")
    wheels = files_under(workspace, root + "wheels/")
    assert any(w.endswith(".whl") for w in wheels) and any(w.endswith("/run_trainer.py") for w in wheels)
    out = root + "jobs/pb-e2e-1/outputs/"
    assert {out + "results.json", out + "metrics.jsonl", out + "model/model.pt"} <= set(files_under(workspace, out))
    results = json.loads((job.out / "results.json").read_text())
    assert results["platform"] == "databricks" and results["epochs_completed"] == 2
    submitted = [p for m, p in workspace.requests[seen:] if p == "/api/2.2/jobs/runs/submit"]
    assert len(submitted) == 1

    c = tracking.client()
    r = c.get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    assert m["phase_seconds_training"] > 0 and m["phase_seconds_provisioning"] > 0
    for name in ("upload_s_per_mb", "final_test_accuracy", "wheel_seconds", "collect_mb", "cost_usd"):
        assert name in m, name
    # the estimate is the cluster's seconds (setup + execution + cleanup) × (VM + DBU) per hour
    cluster_s = sum(m[f"phase_seconds_{p}"] for p in ("provisioning", "training", "stopping") if f"phase_seconds_{p}" in m)
    assert m["cost_usd"] == pytest.approx(cluster_s * (0.312 + 0.15) / 3600, rel=1e-6)
    assert t["platbench.runner"] == "databricks-runtime"
    assert t["platbench.databricks.runtime"] == "16.4.x-cpu-ml-scala2.12"
    assert len(t["platbench.databricks.wheel_sha256"]) == 64
    assert t[tracking.Tag.INSTANCE_TYPE] == "i3.xlarge" and t[tracking.Tag.PLATFORM] == "databricks"
    assert tracking.Tag.IMAGE_DIGEST not in t  # not run from an image: the runtime stands in its place
    assert t[tracking.Tag.MLFLOW_MODEL] == "pyfunc" and t[tracking.Tag.CHECK] == "passed", t.get(tracking.Tag.CHECK_REASON)
    assert "estimate" in t["platbench.cost_basis"]


def test_local_mode_runs_the_task_here_without_the_jobs_api(dataset, tmp_path, monkeypatch, workspace):
    monkeypatch.chdir(tmp_path)
    seen = len(workspace.requests)
    job = Job(data=dataset, out=tmp_path / "out", epochs=1, model="small")
    outcome, run_id = run(job, {**BASE, "run_name": "pb-local-1", "local": "true"})
    assert outcome.status == "finished", outcome.message
    paths = [p for _, p in workspace.requests[seen:]]
    assert not [p for p in paths if p.startswith(("/api/2.2/jobs/", "/api/2.1/clusters/"))]  # no run, no cluster
    assert "/api/2.0/fs/files/Volumes/main/platbench/runs/platbench/jobs/pb-local-1/outputs/results.json" in paths
    assert json.loads((job.out / "results.json").read_text())["platform"] == "databricks"
    t = tracking.client().get_run(run_id).data
    assert t.tags[tracking.Tag.LOCAL_MODE] == "true" and "cost_usd" not in t.metrics  # nothing billed here
    assert t.metrics["phase_seconds_training"] > 0


def test_a_relaunch_of_a_run_name_is_a_new_run_resuming_from_the_volume(stand_in, tmp_path, monkeypatch, job_cluster):
    """A token that exists returns the existing run and starts none (jobs.submit,
    https://docs.databricks.com/api/workspace/jobs/submit): each launch has its own, so a second launch under the
    same run_name is a new run. It resumes from the checkpoint the first left in the volume, where the trainer's
    outputs are copied from the driver's local disk (the loopback volume, like the real one, takes no appends)."""
    workspace = job_cluster
    workspace.runtime_env.update(stand_in.env(base={}))
    monkeypatch.chdir(tmp_path)
    first_job = Job(data=stand_in.data, out=tmp_path / "first", epochs=1, model="small")
    first, first_id = run(first_job, {**BASE, **CPU_NODE, "run_name": "pb-resume"})
    assert first.status == "finished", first.message
    out = "/Volumes/main/platbench/runs/platbench/jobs/pb-resume/outputs/"
    assert {out + "checkpoints/last.ckpt", out + "train.log", out + "metrics.jsonl"} <= set(files_under(workspace, out))
    again_job = Job(data=stand_in.data, out=tmp_path / "again", epochs=1, model="small")
    again, again_id = run(again_job, {**BASE, **CPU_NODE, "run_name": "pb-resume"})
    assert again.status == "finished", again.message
    run_ids = [tracking.client().get_run(r).data.tags[tracking.Tag.JOB_ID] for r in (first_id, again_id)]
    assert run_ids[0] != run_ids[1]  # a new Databricks run, not the first one returned for a reused token
    assert json.loads((again_job.out / "results.json").read_text())["resumed_from_epoch"] == 1


def test_the_task_script_leaves_lightning_to_the_trainer(tmp_path):
    """run_trainer.py, the task's python_file, imports only the trainer's torch-free CLI: a run whose data the
    trainer refuses ends in the trainer's one line without Lightning (the script named the checkpoint file from
    trainer.recorder, which imports it: seconds of every run before the trainer had checked anything)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "platforms" / "databricks" / "run_trainer.py"
    probe = ("import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit as exc:\n    print('exit', exc.code, 'lightning' in sys.modules)\n")
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, "-c", probe, str(script), "train", "--data", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.stdout.strip() == "exit 2 False", r.stdout + r.stderr
    assert "is not a dataset" in r.stderr and "Traceback" not in r.stderr, r.stderr
