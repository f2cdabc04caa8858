"""The loopback Azure ML control plane's job side on its own (azureml_server.py, azureml_jobs.py), no trainer:
what a command job sees as Azure ML documents it (bindings, datastore paths, environment and rank variables,
outputs written back to the datastore), and the bodies it refuses at submission, as the service does.
Jobs are sent by the real azure-ai-ml SDK; a malformed body is the SDK's own REST body with one field changed,
sent as the SDK would send it (bearer token from the managed-identity endpoint, api-version)."""
from __future__ import annotations

import pytest
from azureml_server import SUBSCRIPTION, azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env, new_container  # noqa: F401 (fixtures)

IMAGE = "myacr.azurecr.io/platbench@sha256:" + "e" * 64
API = "2023-04-01-preview"  # the api-version azure-ai-ml 1.23 sends jobs with
WS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"


@pytest.fixture
def workspace(azure_ml, blob_env):
    """An MLClient on the loopback workspace with datastore `pbdata` (a fresh Azurite container holding one
    input file at in/hello.txt) and environment pbenv:1."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import AzureBlobDatastore, Environment
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    container = new_container(blob_env)
    ContainerClient.from_connection_string(blob_env, container).upload_blob("in/hello.txt", b"hello")
    client = MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg", "ws")
    client.datastores.create_or_update(AzureBlobDatastore(name="pbdata", account_name="devstoreaccount1",
                                                          container_name=container))
    client.environments.create_or_update(Environment(name="pbenv", version="1", image=IMAGE))
    return client, container


def blob_text(conn: str, container: str, name: str) -> str:
    from azure.storage.blob import ContainerClient

    return ContainerClient.from_connection_string(conn, container).download_blob(name).readall().decode()


def a_job(name: str, command: str, **kw):
    from azure.ai.ml import Input, Output, command as command_job

    return command_job(name=name, command=command, environment="azureml:pbenv:1", compute="gpu-cluster",
                       inputs={"data": Input(type="uri_folder", path="azureml://datastores/pbdata/paths/in/",
                                             mode="ro_mount")},
                       outputs={"results": Output(type="uri_folder", path=f"azureml://datastores/pbdata/paths/out/{name}/",
                                                  mode="rw_mount")}, **kw)


def test_a_job_sees_what_azure_ml_documents(azure_ml, workspace, blob_env):
    """Two nodes, PyTorch distribution: each process gets the bindings as local paths, the job's variables,
    Azure ML's rank variables (how-to-train-distributed-gpu), none of the caller's Azure settings; what each
    writes to ${{outputs.results}} ends up at the output's datastore path."""
    from azure.ai.ml import PyTorchDistribution

    client, container = workspace
    dump = ("cat ${{inputs.data}}/hello.txt > ${{outputs.results}}/seen-$RANK.txt && "
            "env | sort > ${{outputs.results}}/env-$RANK.txt")
    client.jobs.create_or_update(a_job("pb-env", dump, environment_variables={"MY_SETTING": "42"},
                                       instance_count=2, distribution=PyTorchDistribution(process_count_per_instance=1)))
    job = azure_ml.jobs["pb-env"]
    assert job.done.wait(120), job.status
    assert job.status == "Completed", job.error
    assert client.jobs.get("pb-env").status == "Completed"
    assert list(job.times) == ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"]
    envs = {}
    for rank in (0, 1):
        assert blob_text(blob_env, container, f"out/pb-env/seen-{rank}.txt") == "hello"
        envs[rank] = dict(line.split("=", 1) for line in
                          blob_text(blob_env, container, f"out/pb-env/env-{rank}.txt").splitlines() if "=" in line)
    for rank, env in envs.items():
        assert env["MY_SETTING"] == "42" and env["AZUREML_RUN_ID"] == "pb-env"
        assert (env["RANK"], env["NODE_RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == (str(rank), str(rank), "0", "2")
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == envs[0]["MASTER_PORT"]
        for leaked in ("AZURE_STORAGE_CONNECTION_STRING", "REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT",
                       "ARM_CLOUD_METADATA_URL", "MLFLOW_TRACKING_URI"):
            assert leaked not in env, leaked
    assert envs[0]["TMPDIR"] != envs[1]["TMPDIR"]  # two nodes share nothing but storage


def test_an_rw_mount_output_keeps_what_one_node_wrote(azure_ml, workspace, blob_env):
    """Both nodes see what the output path already holds (rw_mount); rank 0 rewrites a file, rank 1 leaves its
    copy alone: the path ends with rank 0's version, not node 1's stale copy."""
    from azure.ai.ml import PyTorchDistribution
    from azure.storage.blob import ContainerClient

    client, container = workspace
    ContainerClient.from_connection_string(blob_env, container).upload_blob("out/pb-rw/state.txt", b"old")
    client.jobs.create_or_update(a_job(
        "pb-rw", 'cat ${{outputs.results}}/state.txt > ${{outputs.results}}/seen-$RANK.txt && '
                 'if [ "$RANK" = 0 ]; then echo new > ${{outputs.results}}/state.txt; fi',
        instance_count=2, distribution=PyTorchDistribution(process_count_per_instance=1)))
    job = azure_ml.jobs["pb-rw"]
    assert job.done.wait(120) and job.status == "Completed", job.error
    assert [blob_text(blob_env, container, f"out/pb-rw/seen-{r}.txt") for r in (0, 1)] == ["old", "old"]
    assert blob_text(blob_env, container, "out/pb-rw/state.txt") == "new\n"


def test_download_input_upload_output_and_a_literal(azure_ml, workspace, blob_env):
    """The other documented modes: an input downloaded, an output uploaded when the job ends (nothing of the
    path's current content shown to the job), a literal input replaced by its value."""
    from azure.ai.ml import Input, Output, command as command_job
    from azure.storage.blob import ContainerClient

    client, container = workspace
    ContainerClient.from_connection_string(blob_env, container).upload_blob("out/pb-modes/before.txt", b"x")
    client.jobs.create_or_update(command_job(
        name="pb-modes", environment="azureml:pbenv:1", compute="gpu-cluster",
        command='L=$(ls ${{outputs.results}}) && echo "[$L]" > ${{outputs.results}}/listing.txt && '
                "cat ${{inputs.data}}/hello.txt > ${{outputs.results}}/copy-${{inputs.times}}.txt",
        inputs={"data": Input(type="uri_folder", path="azureml://datastores/pbdata/paths/in/", mode="download"),
                "times": 3},
        outputs={"results": Output(type="uri_folder", path="azureml://datastores/pbdata/paths/out/pb-modes/",
                                   mode="upload")}))
    job = azure_ml.jobs["pb-modes"]
    assert job.done.wait(120) and job.status == "Completed", job.error
    assert blob_text(blob_env, container, "out/pb-modes/copy-3.txt") == "hello"
    assert blob_text(blob_env, container, "out/pb-modes/listing.txt") == "[]\n"  # upload mode: it starts empty


def test_a_job_created_again_under_its_name_is_updated_not_run_again(azure_ml, workspace):
    """Jobs - Create Or Update on an existing name replaces the job's tags; it does not execute it again."""
    client, _ = workspace
    client.jobs.create_or_update(a_job("pb-twice", "true", tags={"try": "1"}))
    first = azure_ml.jobs["pb-twice"]
    assert first.done.wait(120) and first.status == "Completed", first.error
    again = client.jobs.create_or_update(a_job("pb-twice", "exit 1", tags={"try": "2"}))
    assert again.status == "Completed" and again.tags["try"] == "2"
    assert azure_ml.jobs["pb-twice"] is first and len(first.processes) == 1
    assert len(azure_ml.calls("PUT", r"/jobs/pb-twice$")) == 2


def test_a_failing_command_fails_the_job_with_its_log(azure_ml, workspace):
    client, _ = workspace
    client.jobs.create_or_update(a_job("pb-fail", "echo broken >&2; exit 3"))
    job = azure_ml.jobs["pb-fail"]
    assert job.done.wait(120)
    assert job.status == "Failed" and "exited with code 3" in job.error and "broken" in job.error
    assert client.jobs.get("pb-fail").status == "Failed"


def sdk_body(client, name: str, command: str = "train --data ${{inputs.data}} --out ${{outputs.results}}") -> dict:
    """The REST body azure-ai-ml sends for a command job, with the ARM ids it resolves names to."""
    body = a_job(name, command)._to_job()._to_rest_object().serialize()
    body["properties"]["computeId"] = f"{WS_ID}/computes/gpu-cluster"
    body["properties"]["environmentId"] = f"{WS_ID}/environments/pbenv/versions/1"
    return body


def put_job(srv, name: str, body: dict):
    import requests

    token = requests.get(f"{srv.url}/msi/token", params={"resource": srv.url + "/", "api-version": "2019-08-01"},
                         headers={"X-IDENTITY-HEADER": srv.identity_header}, verify=str(srv.cert)).json()["access_token"]
    return requests.put(f"{srv.url}{WS_ID}/jobs/{name}", params={"api-version": API}, json=body,
                        headers={"Authorization": f"Bearer {token}"}, verify=str(srv.cert))


OTHER_WS = WS_ID.replace("/workspaces/ws", "/workspaces/other-ws")


@pytest.mark.parametrize("change, status, message", [
    (lambda p: p.update(computeId=f"{OTHER_WS}/computes/gpu-cluster"), 400, "is not a compute of this workspace"),
    (lambda p: p["limits"].update(timeout="four hours"), 400, "is not an ISO 8601 duration"),
    (lambda p: p.update(command="train --data ${{inputs.dataset}}"), 400, "${{inputs.dataset}}, which the job does not"),
    (lambda p: p["inputs"]["data"].update(
        uri=f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/rg/workspaces/other-ws/datastores/pbdata/paths/in/"),
     400, "names another workspace's datastore"),
    (lambda p: p["outputs"]["results"].update(mode="Download"), 400, "mode 'Download' is not one for a uri_folder output"),
    (lambda p: p["inputs"]["data"].update(uri="azureml://datastores/nope/paths/in/"), 404, "datastore 'nope'"),
])
def test_the_server_refuses_a_malformed_job_body(azure_ml, workspace, change, status, message):
    """Each body is the SDK's own with one field wrong. The first five were accepted (or answered with a 500)
    before the job side was written from the documentation (the REST models type `mode` as a plain string)."""
    client, _ = workspace
    good = sdk_body(client, "pb-good")
    assert put_job(azure_ml, "pb-good", good).status_code == 201  # the body as the SDK makes it is accepted
    bad = sdk_body(client, "pb-bad")
    bad["properties"].setdefault("limits", {"jobLimitsType": "Command"})
    change(bad["properties"])
    answer = put_job(azure_ml, "pb-bad", bad)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    assert "pb-bad" not in azure_ml.jobs and f"{WS_ID}/jobs/pb-bad".lower() not in azure_ml.resources
