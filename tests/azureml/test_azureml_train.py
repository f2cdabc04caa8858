"""The Azure ML launcher: settings refused before anything is uploaded, the dry-run plan (the command job
it prints is accepted by the SDK's own `command()` builder and REST model), and the full local-mode flow
against Azurite on 127.0.0.1 (stage → native run under the command-job contract → collect → MLflow).
(Ctrl-C in local mode: the launcher conformance kit, tests/launchers.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from azurite_server import azurite, blob_env, new_container  # noqa: F401 (fixtures)
from conftest import write_folder_dataset

from platforms.core import launch, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress
from platforms.errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("azml") / "colors", train_per_class=24, test_per_class=8)


@pytest.fixture
def container(blob_env):
    return new_container(blob_env)


def blobs(conn: str, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    return [b.name for b in BlobServiceClient.from_connection_string(conn).get_container_client(container).list_blobs()]


def run(job: Job, settings: dict, progress=None):
    return launch.launch("azureml", job, settings, progress or JobProgress(enabled=False))


CLOUD = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg", "workspace": "ws",
         "image": "myacr.azurecr.io/platbench@sha256:" + "a" * 64}


@pytest.mark.parametrize("settings, message", [
    ({"instance_type": "Standard_Huge"}, "unknown VM size 'Standard_Huge'"),
    ({"instance_type": "n1-standard-8"}, "unknown VM size"),
    ({"tier": "cheap"}, "tier"),
    ({"compute": "gpu-cluster", "tier": "low_priority"}, "tier=low_priority applies to serverless compute"),
    ({"container": "Bad_Name"}, "is not a Blob container name"),
    ({"storage_account": "Not-An-Account"}, "is not a storage account name"),
    ({"workspace": None}, "no workspace: add --set workspace=NAME"),
    ({"resource_group": None}, "no resource group"),
    ({"image": None}, "no image"),
    ({"colour": "blue"}, "unknown setting 'colour'"),
    ({"local": "true", "container": "no-such-container"}, "container 'no-such-container' does not exist"),
])
def test_bad_settings_fail_before_anything_is_uploaded(dataset, tmp_path, monkeypatch, blob_env, container,
                                                       settings, message):
    monkeypatch.chdir(tmp_path)
    base = {**CLOUD, "container": container, **settings}
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), base)
    assert blobs(blob_env, container) == []
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_credentials_are_reported_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env,
                                                                     container):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no Azure credentials found"):
        run(Job(data=dataset, out=tmp_path / "out"), {**CLOUD, "container": container})
    assert blobs(blob_env, container) == []


def test_credentials_are_found_offline(tmp_path, monkeypatch):
    from platforms.clouds.azure import credentials

    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))
    assert credentials.find()[0] is False
    (tmp_path / "azureProfile.json").write_text('\ufeff' + json.dumps(
        {"subscriptions": [{"id": "s1", "name": "Dev", "isDefault": True}]}), encoding="utf-8")
    found, where = credentials.find()
    assert not found and "az login" in where  # a profile without a token cache
    (tmp_path / "msal_token_cache.json").write_text("{}")
    found, where = credentials.find()
    assert found and "'Dev'" in where
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s")
    assert credentials.find() == (True, "environment (AZURE_CLIENT_ID with AZURE_CLIENT_SECRET)")


def test_dry_run_prints_az_commands_and_a_job_the_sdk_accepts(dataset, tmp_path):
    from platforms.azureml.train import command_job

    settings = {**CLOUD, "storage_account": "pbstore", "tier": "low_priority", "job_name": "pb-plan",
                "input_mode": "download"}
    text = launch.plan_text("azureml", Job(data=dataset, out=tmp_path / "o", epochs=2), settings)
    for needle in ("az storage blob upload", "az ml job create --file job.yml", "az ml job show --name pb-plan",
                   "az ml job cancel --name pb-plan", "az ml compute list-sizes --location eastus",
                   "az ml datastore create --name platbench", "0.5260 USD/h",
                   "a VM size with GPUs (list-sizes: gpus) adds --device cuda to the command"):
        assert needle in text, needle
    spec = json.loads(re.search(r"job\.yml: (\{.*\})$", text, re.M).group(1))
    assert spec["inputs"]["data"] == {"type": "uri_folder", "mode": "download",  # the dataset's folder, not the root
                                      "path": "azureml://datastores/platbench/paths/platbench/inputs/<fingerprint>/"}
    assert spec["outputs"]["results"] == {"type": "uri_folder", "mode": "rw_mount",
                                          "path": "azureml://datastores/platbench/paths/platbench/jobs/pb-plan/outputs/"}
    assert spec["command"].startswith("train --data ${{inputs.data}}/datasets/")
    assert "--out ${{outputs.results}}" in spec["command"]
    assert spec["queue_settings"] == {"job_tier": "spot"}
    assert spec["resources"]["instance_type"] == "Standard_NC4as_T4_v3"
    spec["environment"]["image"] = CLOUD["image"]
    # the SDK builds its own command job from it and turns it into the REST body it would send
    body = command_job(spec)._to_job()._to_rest_object().serialize()
    props = body["properties"]
    assert props["jobType"] == "Command" and props["command"] == spec["command"]
    assert props["inputs"]["data"]["uri"] == spec["inputs"]["data"]["path"]
    assert props["inputs"]["data"]["mode"] == "Download"
    assert props["outputs"]["results"]["uri"] == spec["outputs"]["results"]["path"]
    assert props["outputs"]["results"]["mode"] == "ReadWriteMount"
    assert props["queueSettings"]["jobTier"].lower() == "spot"
    assert props["resources"]["instanceType"] == "Standard_NC4as_T4_v3"
    assert props["environmentVariables"]["PLATBENCH_IMAGE_DIGEST"] == "sha256:" + "a" * 64


def test_local_mode_end_to_end(dataset, tmp_path, monkeypatch, blob_env, container):
    monkeypatch.chdir(tmp_path)
    job = Job(data=dataset, out=tmp_path / "out", epochs=1, model="small")
    outcome, run_id = run(job, {"container": container, "local": "true", "job_name": "pb-local-1"})
    assert outcome.status == "finished", outcome.message
    keys = blobs(blob_env, container)
    assert any(re.match(r"platbench/inputs/[0-9a-f]{64}/shards/", k) for k in keys)
    assert any(k.endswith("/platbench-manifest.json") for k in keys)
    out = "platbench/jobs/pb-local-1/outputs/"
    assert {out + "results.json", out + "metrics.jsonl", out + "model/model.pt"} <= set(keys)
    assert any(k.startswith(out + "checkpoints/") for k in keys)  # ./outputs/checkpoints for a resume
    assert (job.out / "results.json").is_file() and (job.out / "model" / "model.pt").is_file()
    results = json.loads((job.out / "results.json").read_text())
    assert json.dumps(results).count("pb-local-1") >= 1  # the job id the trainer read (AZUREML_RUN_ID)

    c = tracking.client()
    r = c.get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    for name in ("upload_s_per_mb", "download_s_per_mb", "phase_seconds_training", "phase_seconds_queued",
                 "phase_seconds_uploading", "final_test_accuracy", "upload_retries"):
        assert name in m, name
    assert m["phase_seconds_training"] > 0
    assert t[tracking.Tag.PLATFORM] == "azureml" and t[tracking.Tag.LOCAL_MODE] == "true"
    assert t[tracking.Tag.REGION] == "eastus" and t[tracking.Tag.INSTANCE_TYPE] == "Standard_NC4as_T4_v3"
    assert t[tracking.Tag.JOB_ID] == "pb-local-1" and t[tracking.Tag.DATASET] == "colors"
    assert t[tracking.Tag.DATASET_FINGERPRINT] == t["platbench.dataset_fingerprint"]
    assert "azure.microsoft.com/pricing" in t[tracking.Tag.PRICE_SOURCE]
    assert {a.path for a in c.list_artifacts(run_id)} >= {"results.json", "metrics.jsonl", "train.log", "model"}
