"""The loopback Vertex AI server itself (vertex_server.py, vertex_jobs.py): what it refuses, through
google-cloud-aiplatform's own clients where the SDK can send it and as raw HTTP where it cannot (unknown
fields, undefined enum numbers, no credentials); that a job's state moves with the job, never with a GET;
and the container environment it gives a job, read back by the trainer's own resolver."""
from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest
from conftest_clouds import gcs, gcs_server, new_bucket_name  # noqa: F401 (fixtures)
from vertex_fixtures import start_vertex

PARENT = "projects/p/locations/us-central1"


def clients(server):
    """The SDK's JobService / ModelService / EndpointService clients over REST, with the test's ADC."""
    import google.auth
    from google.api_core.client_options import ClientOptions
    from google.cloud import aiplatform_v1 as v1

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    kw = {"credentials": creds, "transport": "rest", "client_options": ClientOptions(api_endpoint=server.url)}
    return v1.JobServiceClient(**kw), v1.ModelServiceClient(**kw), v1.EndpointServiceClient(**kw)


def access_token() -> str:
    """An access token from the server's token route, for the service-account key in the environment."""
    import google.auth
    import google.auth.transport.requests

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    creds.refresh(google.auth.transport.requests.Request())
    return creds.token


def post(server, path: str, body, token: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def custom_job(**pool) -> dict:
    """A CustomJob in REST JSON; `pool` overrides fields of its one worker pool."""
    base = {"machineSpec": {"machineType": "n1-standard-4"}, "replicaCount": "1",
            "containerSpec": {"imageUri": "us-docker.pkg.dev/p/r/img@sha256:" + "c" * 64,
                              "command": ["python", "-c", "pass"]}}
    return {"displayName": "probe", "jobSpec": {"workerPoolSpecs": [{**base, **pool}]}}


@pytest.fixture
def api(tmp_path, monkeypatch):
    server = start_vertex(tmp_path, monkeypatch)
    yield server
    server.close()


def test_calls_without_valid_credentials_are_unauthenticated(api, tmp_path):
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.api_core.client_options import ClientOptions
    from google.cloud import aiplatform_v1 as v1
    from vertex_auth import ServiceAccounts

    status, doc = post(api, f"/v1/{PARENT}/customJobs", custom_job())
    assert status == 401 and doc["error"]["status"] == "UNAUTHENTICATED" and "missing" in doc["error"]["message"]
    # a key the server never issued signs a well-formed token: still refused
    ServiceAccounts().key_file(tmp_path / "stranger.json", api.url + "/token", fresh=True)
    import google.auth.transport.requests
    from google.oauth2 import service_account

    stranger = service_account.Credentials.from_service_account_file(
        str(tmp_path / "stranger.json"), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    with pytest.raises(google.auth.exceptions.RefreshError):  # its own token route refuses the assertion too
        stranger.refresh(google.auth.transport.requests.Request())
    jwt_only = stranger.with_always_use_jwt_access(True)
    jwt_only.refresh(google.auth.transport.requests.Request())
    status, doc = post(api, f"/v1/{PARENT}/customJobs", custom_job(), token=jwt_only.token)
    assert status == 401 and "invalid authentication credentials" in doc["error"]["message"]
    anonymous = v1.JobServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                    client_options=ClientOptions(api_endpoint=api.url))
    with pytest.raises((gexc.Unauthenticated, google.auth.exceptions.InvalidOperation)):
        anonymous.get_custom_job(name=f"{PARENT}/customJobs/1")
    assert api.jobs == {}
    # with the issued key: an access token from the token route, and the SDK's own signed JWT, both pass
    assert post(api, f"/v1/{PARENT}/customJobs", custom_job(), token=access_token())[0] == 200
    jobs, _, _ = clients(api)
    assert jobs.get_custom_job(name=f"{PARENT}/customJobs/1").display_name == "probe"


@pytest.mark.parametrize("pool, field, message", [
    ({"machineSpec": {"machineType": "n1-standard-4"}, "tpuTopology": "2x2"}, "tpuTopology", 'Unknown name "tpuTopology": Cannot find field'),
    ({"containerSpec": {"command": ["train"]}}, "imageUri", "container_spec.image_uri; Message: Required field"),
    ({"machineSpec": {"machineType": "huge-box"}}, "machineType", 'Machine type "huge-box" is not supported'),
    ({"machineSpec": {}}, "machineType", "machine_spec.machine_type; Message: Required field"),
    ({"machineSpec": {"machineType": "n1-standard-8", "acceleratorType": 999, "acceleratorCount": 1}},
     "acceleratorType number", "Invalid value at"),
    ({"machineSpec": {"machineType": "n1-standard-8", "acceleratorType": "NVIDIA_GTX_1080", "acceleratorCount": 1}},
     "acceleratorType name", "Invalid JSON payload"),
    ({"machineSpec": {"machineType": "n1-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1}},
     "accelerator family", 'Accelerator "NVIDIA_L4" is not supported for machine type "n1-standard-8"'),
    ({"machineSpec": {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2}},
     "accelerator count", "Accelerator count 2 is not valid"),
    ({"replicaCount": "2"}, "replicaCount", "the first worker pool is the primary replica"),
])
def test_malformed_custom_jobs_are_invalid_arguments(api, pool, field, message):
    status, doc = post(api, f"/v1/{PARENT}/customJobs", custom_job(**pool), token=access_token())
    assert status == 400, (field, doc)
    assert doc["error"]["status"] == "INVALID_ARGUMENT" and message in doc["error"]["message"], (field, doc)
    assert api.jobs == {} and api.created == []


def test_missing_top_level_fields_and_unknown_ids(api):
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform_v1 as v1

    token = access_token()
    status, doc = post(api, f"/v1/{PARENT}/customJobs", {"jobSpec": custom_job()["jobSpec"]}, token=token)
    assert status == 400 and "custom_job.display_name; Message: Required field is not set" in doc["error"]["message"]
    status, doc = post(api, f"/v1/{PARENT}/customJobs", {"displayName": "x"}, token=token)
    assert status == 400 and "custom_job.job_spec;" in doc["error"]["message"]
    jobs, models, endpoints = clients(api)
    with pytest.raises(gexc.NotFound):
        jobs.get_custom_job(name=f"{PARENT}/customJobs/404")
    with pytest.raises(gexc.NotFound):
        jobs.cancel_custom_job(name=f"{PARENT}/customJobs/404")
    with pytest.raises(gexc.NotFound):
        endpoints.undeploy_model(endpoint=f"{PARENT}/endpoints/404", deployed_model_id="1")
    with pytest.raises(gexc.NotFound):
        models.delete_model(name=f"{PARENT}/models/404")
    with pytest.raises(gexc.BadRequest, match="endpoint.display_name"):
        endpoints.create_endpoint(parent=PARENT, endpoint=v1.Endpoint())


def test_a_jobs_state_moves_with_the_job_not_with_gets(api, gcs):
    """Held (short of quota) it stays QUEUED however often it is read; let go, it runs to the end with no
    GET at all; ended, it cannot be cancelled."""
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform_v1 as v1

    jobs, _, _ = clients(api)
    api.hold = True
    held = jobs.create_custom_job(parent=PARENT, custom_job=v1.CustomJob.from_json(json.dumps(custom_job())))
    assert [jobs.get_custom_job(name=held.name).state.name for _ in range(10)] == ["JOB_STATE_QUEUED"] * 10
    api.hold = False
    ran = jobs.create_custom_job(parent=PARENT, custom_job=v1.CustomJob.from_json(json.dumps(custom_job())))
    described = api.wait(ran.name)
    assert described["state"] == "JOB_STATE_SUCCEEDED" and described["startTime"] <= described["endTime"]
    assert [m for m, p in api.log if p == ran.name] == []  # nobody asked: it moved on its own
    with pytest.raises(gexc.BadRequest, match="JOB_STATE_SUCCEEDED"):
        jobs.cancel_custom_job(name=ran.name)
    jobs.cancel_custom_job(name=held.name)
    assert api.wait(held.name)["state"] == "JOB_STATE_CANCELLED"
    failing = custom_job(containerSpec={"imageUri": "img", "command": ["python", "-c", "raise SystemExit(3)"]})
    bad = jobs.create_custom_job(parent=PARENT, custom_job=v1.CustomJob.from_json(json.dumps(failing)))
    described = api.wait(bad.name)
    assert described["state"] == "JOB_STATE_FAILED"
    assert described["error"]["message"] == "The replica workerpool0-0 exited with a non-zero status of 3."


def test_the_job_environment_is_vertexs_and_the_trainer_reads_it(api, gcs):
    """Independent of platforms.vertex: a job dumps the environment the server gave it (as Vertex documents
    it), and trainer/environment.py's resolver, given that environment, finds its folders under the /gcs
    stand-in where the server syncs them with the bucket."""
    from google.cloud import aiplatform_v1 as v1
    from google.cloud import storage

    from trainer import environment

    bucket = new_bucket_name()
    storage.Client(project="test").create_bucket(bucket)
    dump = ("import json, os, pathlib; d = pathlib.Path(os.environ['PLATBENCH_GCS_ROOT'], "
            "os.environ['AIP_MODEL_DIR'][len('gs://'):]); d.mkdir(parents=True); "
            "(d / 'env.json').write_text(json.dumps(dict(os.environ)))")
    job = custom_job(containerSpec={"imageUri": "img", "command": ["python", "-c", dump],
                                    "env": [{"name": "PLATBENCH_DATA", "value": f"gs://{bucket}/data/"}]})
    job["jobSpec"]["baseOutputDirectory"] = {"outputUriPrefix": f"gs://{bucket}/jobs/j1"}
    jobs, _, _ = clients(api)
    created = jobs.create_custom_job(parent=PARENT, custom_job=v1.CustomJob.from_json(json.dumps(job)))
    assert api.wait(created.name)["state"] == "JOB_STATE_SUCCEEDED"
    # the file the job wrote under /gcs is an object now
    env = json.loads(storage.Client(project="test").bucket(bucket).blob("jobs/j1/model/env.json").download_as_bytes())
    assert env["AIP_MODEL_DIR"] == f"gs://{bucket}/jobs/j1/model/"
    assert env["AIP_CHECKPOINT_DIR"] == f"gs://{bucket}/jobs/j1/checkpoints/"
    assert env["AIP_TENSORBOARD_LOG_DIR"] == f"gs://{bucket}/jobs/j1/logs/"
    assert env["CLOUD_ML_JOB_ID"] == created.name.rsplit("/", 1)[1]
    cluster = json.loads(env["CLUSTER_SPEC"])
    assert cluster["task"] == {"type": "workerpool0", "index": 0} and len(cluster["cluster"]["workerpool0"]) == 1
    place = environment.resolve(env)
    mount = Path(env["PLATBENCH_GCS_ROOT"])
    assert place.platform == "vertex" and place.job_id == env["CLOUD_ML_JOB_ID"]
    assert place.model_dir == mount / bucket / "jobs/j1/model"
    assert place.output_dir == mount / bucket / "jobs/j1/output"
    assert place.checkpoint_dir == mount / bucket / "jobs/j1/checkpoints"
    assert place.data_dir == mount / bucket / "data"
    assert environment.topology(env).nodes == 1 and not environment.topology(env).distributed


def test_endpoint_bodies_are_checked(api, gcs):
    """models.upload, endpoints.deployModel / undeployModel: Required fields, machine types, known ids."""
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform_v1 as v1
    from google.cloud import storage

    _, models, endpoints = clients(api)
    bucket = new_bucket_name()
    b = storage.Client(project="test").create_bucket(bucket)
    b._patch_property("location", "US-CENTRAL1")
    b.patch()
    with pytest.raises(gexc.BadRequest, match="model.container_spec.image_uri"):
        models.upload_model(parent=PARENT, model=v1.Model(display_name="m", container_spec=v1.ModelContainerSpec(
            args=["serve"]))).result()
    spec = v1.ModelContainerSpec(image_uri="img", args=["serve"], predict_route="/predict")
    model = models.upload_model(parent=PARENT, model=v1.Model(display_name="m", artifact_uri=f"gs://{bucket}/m/",
                                                               container_spec=spec)).result().model
    ep = endpoints.create_endpoint(parent=PARENT, endpoint=v1.Endpoint(display_name="e")).result().name
    token = access_token()
    status, doc = post(api, f"/v1/{ep}:deployModel", {"deployedModel": {"model": model, "colour": "red"}}, token)
    assert status == 400 and 'Unknown name "colour"' in doc["error"]["message"]
    status, doc = post(api, f"/v1/{ep}:deployModel", {"deployedModel": {"model": model, "dedicatedResources": {
        "machineSpec": {"machineType": "n1-standard-4"}}}}, token)
    assert status == 400 and "min_replica_count" in doc["error"]["message"]
    machine = v1.MachineSpec(machine_type="n1-standard-4")
    with pytest.raises(gexc.NotFound):
        endpoints.deploy_model(endpoint=ep, deployed_model=v1.DeployedModel(
            model=f"{PARENT}/models/404", dedicated_resources=v1.DedicatedResources(
                machine_spec=machine, min_replica_count=1))).result()
    with pytest.raises(gexc.BadRequest, match="dedicated_resources"):
        endpoints.deploy_model(endpoint=ep, deployed_model=v1.DeployedModel(model=model)).result()
    deployed = endpoints.deploy_model(endpoint=ep, deployed_model=v1.DeployedModel(
        model=model, dedicated_resources=v1.DedicatedResources(machine_spec=machine, min_replica_count=1)),
        traffic_split={"0": 100}).result().deployed_model.id
    with pytest.raises(gexc.BadRequest, match="FAILED_PRECONDITION|undeploy"):
        endpoints.delete_endpoint(name=ep).result()
    with pytest.raises(gexc.NotFound):
        endpoints.undeploy_model(endpoint=ep, deployed_model_id="999").result()  # was a dropped connection
    endpoints.undeploy_model(endpoint=ep, deployed_model_id=deployed).result()
    endpoints.delete_endpoint(name=ep).result()
    models.delete_model(name=model).result()
    assert api.endpoints == {} and api.models == {}


def test_the_server_is_written_from_the_docs_not_from_platbench():
    """The job side is an independent statement of Vertex's contract: no module of the server imports
    platforms.* (whose local mode is code under test)."""
    import ast

    for module in ("vertex_server.py", "vertex_jobs.py", "vertex_auth.py"):
        tree = ast.parse((Path(__file__).parent / module).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "platforms"], module


def test_a_load_without_credentials_is_one_line_and_sends_nothing(api, monkeypatch, tmp_path):
    """The endpoint client is made with the first request (so a body over the limit needs no credentials);
    without any, the load tool's first request (its probe) fails before sending: one line, nothing sent."""
    from platforms.bench.loadtest import run_load
    from platforms.core.load_runner import LoadSettings
    from platforms.core.transport import Payload, Target
    from platforms.errors import UserError

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(UserError, match="the target answered nothing"):
        run_load(Target(kind="vertex", name=f"{PARENT}/endpoints/1"), [Payload(b"{}", "application/json", 1)],
                 LoadSettings(requests=1, retries=0, probe=True), settings={"project": "p", "api_endpoint": api.url})
    assert api.log == []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
