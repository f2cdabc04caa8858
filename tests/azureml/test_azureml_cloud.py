"""The Azure ML launcher's cloud mode end to end: the real azure-ai-ml SDK and DefaultAzureCredential send
every request to the loopback control plane (azureml_server.py), which checks each body against the SDK's
own REST models and runs the command job as Azure ML documents it (azureml_jobs.py, nothing of platforms/),
reading from and writing to Azurite. Stage → submit → statuses → collect → MLflow; Ctrl-C and errors cancel the
job; bad settings stop before anything is uploaded or created."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from azureml_server import SUBSCRIPTION, azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env, new_container  # noqa: F401 (fixtures)
from conftest import write_folder_dataset
from stand_in import stand_in  # noqa: F401 (fixture)

from platforms.core import launch, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress
from platforms.errors import UserError

IMAGE = "myacr.azurecr.io/platbench@sha256:" + "c" * 64
CPU_CLUSTER = "cpu-cluster"  # a compute cluster of CPU VMs (Standard_D4s_v3), registered by the settings fixture


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("azc") / "colors", train_per_class=24, test_per_class=8)


@pytest.fixture
def settings(blob_env, azure_ml):
    # The loopback server's nodes are this machine, which has no GPU: a job that must finish runs on a CPU size
    # (a GPU size's trainer is started with --device cuda and fails here, as it should: test_a_gpu_size_...).
    azure_ml.computes[CPU_CLUSTER] = {"vmSize": "Standard_D4s_v3"}
    return {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "workspace": "ws", "image": IMAGE,
            "container": new_container(blob_env), "poll_seconds": "0.2"}


@pytest.fixture
def stand_in_data(azure_ml, stand_in) -> Path:
    """Jobs run the stand-in trainer (tests/stand_in) where what is tested is the launcher's, not the trainer's:
    the server's runtime starts it, on the dataset its golden run was trained on. (The real trainer runs in
    the two-node job, test_azureml_multinode.py, and the GPU-size refusal.)"""
    azure_ml.runtime_env.update(stand_in.env(base={}))
    return stand_in.data


def blobs(conn: str, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    return [b.name for b in BlobServiceClient.from_connection_string(conn).get_container_client(container).list_blobs()]


def run(job: Job, settings: dict, progress=None):
    return launch.launch("azureml", job, settings, progress or JobProgress(enabled=False))


def test_command_job_on_a_cluster_end_to_end(stand_in_data, tmp_path, monkeypatch, blob_env, azure_ml, settings):
    """On the stand-in: the real trainer runs this contract in test_azureml_multinode.py (a command job on a
    cluster, its results.json written by rank 0)."""
    monkeypatch.chdir(tmp_path)
    job = Job(data=stand_in_data, out=tmp_path / "out", epochs=1, model="small")
    outcome, run_id = run(job, {**settings, "compute": CPU_CLUSTER, "job_name": "pb-cloud-1"})
    assert outcome.status == "finished", outcome.message
    srv = azure_ml
    assert srv.refusals == []
    # what the SDK sent, in order: the workspace and compute checked, the datastore registered, the image
    # as an anonymous environment version, then the job
    puts = [p for m, p, _ in srv.log if m == "PUT"]
    assert [p.rsplit("/", 2)[-2] for p in puts] == ["datastores", "versions", "jobs"]
    assert srv.calls("GET", r"/workspaces/ws$") and srv.calls("GET", rf"/computes/{CPU_CLUSTER}$")
    job_doc = srv.resources[puts[-1].lower()]["properties"]
    assert job_doc["computeId"].endswith(f"/computes/{CPU_CLUSTER}")
    assert "--device" not in job_doc["command"]  # a CPU size: the trainer's auto
    assert re.fullmatch(r"azureml://datastores/platbench/paths/platbench/inputs/[0-9a-f]{64}/",
                        job_doc["inputs"]["data"]["uri"])  # the dataset's staging folder, not the root
    assert job_doc["outputs"]["results"]["uri"] == "azureml://datastores/platbench/paths/platbench/jobs/pb-cloud-1/outputs/"
    assert job_doc["environmentVariables"]["PLATBENCH_IMAGE_DIGEST"] == "sha256:" + "c" * 64
    env_doc = srv.resources[puts[1].lower()]["properties"]
    assert env_doc["image"] == IMAGE
    # the job ran: its output is in the container, collected, and the trainer saw Azure ML's run id
    keys = blobs(blob_env, settings["container"])
    out = "platbench/jobs/pb-cloud-1/outputs/"
    assert {out + "results.json", out + "model/model.pt"} <= set(keys)
    assert any(k.startswith(out + "checkpoints/") for k in keys)
    results = json.loads((job.out / "results.json").read_text())
    assert "pb-cloud-1" in json.dumps(results)
    r = tracking.client().get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    # phases from the statuses seen while polling (Queued/Preparing can pass between two polls here)
    assert m["phase_seconds_training"] > 0
    assert t[tracking.Tag.JOB_ID] == "pb-cloud-1" and t["platbench.azureml.status"] == "Completed"
    assert t[tracking.Tag.INSTANCE_TYPE] == "Standard_D4s_v3" and t[tracking.Tag.REGION] == "eastus"
    assert "estimate" in t["platbench.cost_basis"]
    # cost: running seconds x the cluster size's list price, nothing billed reported
    assert m["cost_usd"] == pytest.approx(m["phase_seconds_training"] / 3600 * 0.192, rel=0.05)
    assert "billed_seconds" not in m

    # the report shows the Azure run beside the others: in the runs table and the cost table, as a cloud
    # run (not local mode), its instance, no billed seconds, the price table's status
    from platforms import report

    written = report.build(tmp_path / "rep")
    md = written.markdown.read_text()
    rows = [line for line in md.splitlines() if run_id in line and line.startswith("|")]
    assert any("| azureml |" in row and "local mode" not in row for row in rows), rows
    cost_row = next(row for row in rows if "Standard_D4s_v3" in row)
    assert "unverified" in cost_row and "| – |" in cost_row  # no billed seconds


def test_serverless_job_on_a_registered_datastore_with_a_downloaded_input(stand_in_data, tmp_path, monkeypatch,
                                                                         blob_env, azure_ml, settings):
    """Serverless compute (instance type, low-priority tier → job_tier spot); a datastore the workspace
    already has for this container is used, not registered again.
    input_mode=download copies the whole input folder onto the node before the command starts
    (how-to-read-write-data-v2): the input is the dataset's manifest and shards, not the staging root with the
    container's past outputs and models."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import AzureBlobDatastore
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg", "ws").datastores.create_or_update(
        AzureBlobDatastore(name="pbdata", account_name="devstoreaccount1", container_name=settings["container"]))
    past = ContainerClient.from_connection_string(blob_env, settings["container"])
    past.upload_blob("platbench/jobs/an-old-run/outputs/model/model.pt", b"0" * (4 << 20))
    past.upload_blob("platbench/models/an-old-model/model.pt", b"0" * (4 << 20))
    monkeypatch.chdir(tmp_path)
    outcome, _ = run(Job(data=stand_in_data, out=tmp_path / "out", epochs=1, model="small"),
                     {**settings, "instance_type": "Standard_D4s_v3", "tier": "low_priority", "job_name": "pb-sl",
                      "datastore": "pbdata", "input_mode": "download"})
    assert outcome.status == "finished", outcome.message
    assert len(azure_ml.calls("PUT", r"/datastores/")) == 1  # the test's own
    doc = azure_ml.resources[azure_ml.calls("PUT", r"/jobs/pb-sl$")[0].lower()]["properties"]
    assert doc["resources"]["instanceType"] == "Standard_D4s_v3" and doc["queueSettings"]["jobTier"].lower() == "spot"
    assert "computeId" not in doc and doc["inputs"]["data"]["uri"].startswith("azureml://datastores/pbdata/")
    assert "--device" not in doc["command"]  # a CPU size: the trainer's auto
    assert (tmp_path / "out" / "results.json").is_file()
    # the downloaded input: the dataset's folder, and nothing else of the container came down
    folder = doc["inputs"]["data"]["uri"].split("/paths/", 1)[1]
    assert doc["inputs"]["data"]["mode"] == "Download" and folder != "platbench/"
    inside = {b.name: b.size for b in past.list_blobs(name_starts_with=folder)}
    assert inside and all(k.endswith(("/platbench-manifest.json", ".tar")) for k in inside)
    assert azure_ml.jobs["pb-sl"].figures["download_bytes"] == sum(inside.values())


def test_a_job_name_is_used_once_and_a_run_resumes_under_a_new_one(stand_in_data, tmp_path, monkeypatch, blob_env,
                                                                     azure_ml, settings, capsys):
    """A job name is unique in the workspace (reference-yaml-job-command): a launch under a job_name in use is
    refused before anything is uploaded, naming the way to resume; a launch under its run_name is a new job with a
    new name whose output folder is the run's, so the trainer resumes from its checkpoint."""
    monkeypatch.chdir(tmp_path)
    dataset = stand_in_data
    first_job = Job(data=dataset, out=tmp_path / "first", epochs=1, model="small")
    first, _ = run(first_job, {**settings, "compute": CPU_CLUSTER, "job_name": "pb-twice"})
    assert first.status == "finished", first.message
    puts, uploads = len(azure_ml.calls("PUT", r"/jobs/")), len(blobs(blob_env, settings["container"]))
    with pytest.raises(UserError, match=r"job 'pb-twice' already exists .* --set run_name=pb-twice and no job_name"):
        run(Job(data=dataset, out=tmp_path / "again", epochs=1, model="small"),
            {**settings, "compute": CPU_CLUSTER, "job_name": "pb-twice"})
    assert len(azure_ml.calls("PUT", r"/jobs/")) == puts and len(blobs(blob_env, settings["container"])) == uploads
    resumed_job = Job(data=dataset, out=tmp_path / "resumed", epochs=1, model="small")
    resumed, run_id = run(resumed_job, {**settings, "compute": CPU_CLUSTER, "run_name": "pb-twice"})
    assert resumed.status == "finished", resumed.message
    t = tracking.client().get_run(run_id).data.tags
    assert t[tracking.Tag.JOB_ID].startswith("pb-twice-") and t["platbench.run_name"] == "pb-twice"
    assert json.loads((resumed_job.out / "results.json").read_text())["resumed_from_epoch"] == 1


def test_a_gpu_size_runs_the_trainer_on_cuda_never_silently_on_the_cpu(dataset, tmp_path, monkeypatch, blob_env,
                                                                        azure_ml, settings):
    """A GPU size (the workspace lists its GPUs: Virtual Machine Sizes - List) starts the trainer with --device
    cuda. The loopback node is this machine, without a GPU, as a node would be whose driver the image's torch
    cannot use: the job fails in the trainer's one line, nothing written to its output, instead of training on
    the CPU at the GPU's price (issue 24 item 9)."""
    monkeypatch.chdir(tmp_path)
    outcome, _ = run(Job(data=dataset, out=tmp_path / "out", epochs=1, model="small"),
                     {**settings, "compute": "gpu-cluster", "job_name": "pb-gpu"})
    doc = azure_ml.resources[azure_ml.calls("PUT", r"/jobs/pb-gpu$")[0].lower()]["properties"]
    assert doc["computeId"].endswith("/computes/gpu-cluster") and "--device cuda" in doc["command"]
    assert outcome.status == "failed"
    job = azure_ml.jobs["pb-gpu"]
    assert job.status == "Failed" and "error: --device cuda: CUDA is not usable: " in job.error, job.error
    assert not any("/jobs/pb-gpu/outputs/" in k for k in blobs(blob_env, settings["container"]))


@pytest.mark.parametrize("extra, message", [
    ({"instance_type": "Standard_NC99as_Z9_v9"}, "unknown VM size 'Standard_NC99as_Z9_v9': not offered in eastus"),
    ({"compute": "no-such-cluster"}, "compute 'no-such-cluster' in workspace 'ws': not found"),
    ({"workspace": "missing-ws"}, "workspace 'missing-ws' in resource group 'rg': not found"),
    ({"resource_group": "other-rg"}, "workspace 'ws' in resource group 'other-rg': not found"),
])
def test_what_the_service_refuses_stops_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env,
                                                                   azure_ml, settings, extra, message):
    refused_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env, azure_ml, {**settings, **extra},
                                       message)
    assert not (tmp_path / "mlflow.db").exists()


def refused_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env, azure_ml, settings, message):
    """The launch fails with `message`, and neither a blob nor a create/delete call reached the service."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    assert blobs(blob_env, settings["container"]) == []
    assert [p for m, p, _ in azure_ml.log if m in ("PUT", "POST", "DELETE")] == []


def test_a_datastore_pointing_elsewhere_is_refused(dataset, tmp_path, monkeypatch, azure_ml, settings):
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import AzureBlobDatastore
    from azure.identity import DefaultAzureCredential

    MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg", "ws").datastores.create_or_update(
        AzureBlobDatastore(name="platbench", account_name="otheraccount", container_name="other"))
    with pytest.raises(UserError, match="datastore 'platbench' points at otheraccount/other"):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    assert azure_ml.calls("PUT", r"/jobs/") == []


def test_the_server_refuses_a_body_the_sdk_models_do_not_allow(azure_ml):
    """The loopback server's own check: a field the REST model lacks, a required one missing, an unknown
    job type are 400s (the SDK's models are what the real service's contract is generated from)."""
    from azureml_server import models_for, problems

    models = models_for("2023-04-01-preview")
    good = {"properties": {"jobType": "Command", "command": "train", "environmentId": "x"}}
    assert problems(models, "JobBase", good, "JobBase") == []
    assert problems(models, "JobBase", {"properties": {**good["properties"], "colour": 1}}, "J") == \
        ["J.properties.colour: unknown field for CommandJob"]
    assert "required" in problems(models, "JobBase", {"properties": {"jobType": "Command", "command": "x"}}, "J")[0]
    assert "is not one of" in problems(models, "JobBase", {"properties": {"jobType": "Magic"}}, "J")[0]


class _Interrupt(JobProgress):
    def __init__(self, exc, at: str):
        super().__init__(enabled=False)
        self.exc, self.at = exc, at

    def phase(self, name):
        super().phase(name)
        if name == self.at:
            raise self.exc


# (Ctrl-C while the trainer runs: the launcher conformance kit, tests/launchers/test_kit_ctrl_c.py)
@pytest.mark.parametrize("exc, at, mlflow_status", [(RuntimeError("display broke"), "queued", "FAILED")])
def test_an_error_while_waiting_cancels_the_job(dataset, tmp_path, monkeypatch, azure_ml, settings,
                                                exc, at, mlflow_status):
    """An error while the job is still queued (the server holds it, as a quota would) cancels it before it
    ever starts."""
    monkeypatch.chdir(tmp_path)
    azure_ml.hold_jobs = at == "queued"
    with pytest.raises(type(exc)):
        run(Job(data=dataset, out=tmp_path / "out", epochs=3), {**settings, "compute": "gpu-cluster",
                                                                "job_name": "pb-int"}, _Interrupt(exc, at))
    assert azure_ml.calls("POST", r"/jobs/pb-int/cancel$")
    job = azure_ml.jobs["pb-int"]
    assert job.done.wait(60) and job.status == "Canceled" and "CancelRequested" in job.times
    assert (job.processes == []) == (at == "queued")  # cancelled while queued: it never started
    assert all(p.poll() is not None for p in job.processes)
    c = tracking.client()
    assert c.search_runs([tracking.experiment_id(c)])[0].info.status == mlflow_status


def test_report_does_not_call_an_estimate_billed(tmp_path, monkeypatch):
    """An Azure ML run as the launcher records it (cost_usd from running seconds, no billed_seconds, the
    cost_basis tag saying so): its 'Billed USD' cell should be empty, the estimate shown as such."""
    from platforms import report

    monkeypatch.chdir(tmp_path)
    tags = {tracking.Tag.PLATFORM: "azureml", tracking.Tag.INSTANCE_TYPE: "Standard_NC4as_T4_v3",
            tracking.Tag.STATUS: "finished", tracking.Tag.MODEL: "small",
            "platbench.cost_basis": "running seconds x the VM's list price (an estimate)"}
    with tracking.tracked_run("azureml-estimate", {"model": "small", "seed": "0"}, tags) as tr:
        tr.metrics({"cost_usd": 0.1234, "cost_list_estimate_usd": 0.1234, "final_test_accuracy": 0.5})
        tr.end("FINISHED")
    md = report.build(tmp_path / "rep").markdown.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Run") and "Billed USD" in line)
    row = next(line for line in md.splitlines() if "Standard_NC4as_T4_v3" in line and "azureml" in line)
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert "0.12" not in cells["Billed USD"]
