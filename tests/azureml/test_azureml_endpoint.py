"""Azure ML managed online endpoints (platforms/azureml/endpoint.py) against the loopback control plane
(azureml_server.py) and Azurite: the real azure-ai-ml SDK registers the model, creates the endpoint and the
deployment (long-running operations), whose container the server starts from the environment's build
context — `python -m trainer serve` under Azure ML's custom-container contract (AZUREML_MODEL_DIR, the
inference_config routes) — and the load tool drives the scoring URI with the endpoint key. Everything is
deleted afterwards: after success, an error and Ctrl-C."""
from __future__ import annotations

import re

import pytest
from _endpoint_servers import model  # noqa: F401 (fixture)
from azureml_server import SUBSCRIPTION, azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env, new_container  # noqa: F401 (fixtures)

from platforms.errors import UserError

pytestmark = pytest.mark.xdist_group("azureml-endpoint")  # `model` trains a model once per module
IMAGE = "myacr.azurecr.io/platbench@sha256:" + "d" * 64


@pytest.fixture
def settings(blob_env, azure_ml):
    return {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "workspace": "ws", "image": IMAGE,
            "container": new_container(blob_env)}


def blobs(conn: str, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    return [b.name for b in BlobServiceClient.from_connection_string(conn).get_container_client(container).list_blobs()]


def nothing_left(srv, conn: str, container: str) -> None:
    kinds = [d["type"].rsplit("/", 1)[-1] for d in srv.resources.values()]
    assert not {"onlineEndpoints", "deployments"} & set(kinds), kinds
    assert "models/versions" not in " ".join(d["type"] for d in srv.resources.values())
    assert srv.deployments == {}
    assert [k for k in blobs(conn, container) if "/endpoints/" in k] == []


def bench(settings, payloads, **kw):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    return run_endpoint_benchmark("azureml", kw.pop("model_dir"), settings,
                                  kw.pop("load", LoadSettings(requests=30, concurrency=3, warmup=2)), payloads, "json",
                                  track=False, **kw)


def payloads():
    from platforms.bench.load_payloads import load_images, make_payloads

    return make_payloads(load_images([]), "json", 2)


def test_two_endpoints_from_one_image_deploy_load_and_delete(azure_ml, model, blob_env, settings, tmp_path,
                                                            monkeypatch):
    """Two endpoints, one after the other, from the same image: each deployed, load-tested and deleted.

    The first at the load test's default concurrency (3): created in order, deleted newest first, nothing left.
    Issue 24 item 2: a deployment created without request settings answers one request per instance at a time
    (max_concurrent_requests_per_instance 1, request timeout 5 s) and 429s the rest (the server does as the
    service does), so a load test at concurrency 3 measured retries; its request settings now follow the load
    test: no 429, no retry. The second at concurrency 12, above the defaults' 10: the load test's own plan
    reaches the deployment (bench/endpoint.py sets Endpoint.load_plan before deploy), nothing is throttled, and
    the run records the request settings the deployment was made with.
    Issue 24 item 4: the serving environment is version digest[:16] of platbench-serve, and a registered
    version cannot change (the server answers 409 as the service does). Its build context lives at one path
    per digest that teardown keeps, so the second endpoint registers the same definition again."""
    from platforms.core.load_runner import LoadSettings

    monkeypatch.chdir(tmp_path)
    srv = azure_ml
    result = bench({**settings, "name": "pb-az-ok"}, payloads(), model_dir=model)
    s = result.load["summary"]
    assert s["ok"] == 30 and s["failed"] == 0 and s["images_per_s"] == pytest.approx(2 * s["requests_per_s"])
    assert srv.refusals == []
    # the container the deployment ran: the image's `serve` (from the build context's CMD), with the
    # registered model mounted where AZUREML_MODEL_DIR says
    ((argv, model_dir),) = srv.container_starts
    assert argv == ["serve"] and model_dir.endswith("azureml-models/pb-az-ok/1")
    env_put = srv.calls("PUT", r"/environments/platbench-serve/versions/")
    assert env_put and env_put[0].endswith("/" + "d" * 16)
    # created in order, deleted newest first
    order = [(m, p.rsplit("/", 2)[-2]) for m, p, _ in srv.log if m in ("PUT", "DELETE")
             and re.search(r"/(models|onlineEndpoints|deployments)/", p)]
    assert order == [("PUT", "versions"), ("PUT", "onlineEndpoints"), ("PUT", "deployments"),
                     ("DELETE", "deployments"), ("DELETE", "onlineEndpoints"), ("DELETE", "versions")]
    nothing_left(srv, blob_env, settings["container"])
    assert result.cost["usd_per"]["hour"] == pytest.approx(0.293) and result.cost["section"] == "endpoint"
    assert result.cost["usd_per"]["month"] == pytest.approx(0.293 * 730)
    assert any(d.startswith("deployment platbench") for d in result.deleted)
    load = result.load  # concurrency 3: no 429, no retry
    assert srv.too_many == 0 and load["errors"]["by_status"].get("429", 0) == 0, load["errors"]
    assert load["retries"]["total"] == 0 and load["summary"]["ok"] == 30

    result = bench({**settings, "name": "pb-az-c12"}, payloads(), model_dir=model,
                   load=LoadSettings(requests=24, concurrency=12, warmup=0))
    assert srv.too_many == 0 and result.load["retries"]["total"] == 0 and result.load["summary"]["ok"] == 24
    assert result.tags["platbench.azureml.max_concurrent_requests_per_instance"] == "12"
    # the second endpoint registered the same environment version again; one build context for both
    assert srv.refusals == []
    puts = srv.calls("PUT", r"/environments/platbench-serve/versions/")
    assert len(puts) == 2 and all(p.endswith("/" + "d" * 16) for p in puts)
    context = [k for k in blobs(blob_env, settings["container"]) if k.endswith("/Dockerfile")]
    assert context == ["platbench/environments/platbench-serve/" + "d" * 16 + "/Dockerfile"]
    nothing_left(srv, blob_env, settings["container"])


def test_an_error_deletes_everything(azure_ml, model, blob_env, settings):
    with pytest.raises(UserError, match="nothing to send"):
        bench({**settings, "name": "pb-az-err"}, [], model_dir=model)
    nothing_left(azure_ml, blob_env, settings["container"])
    assert azure_ml.calls("DELETE", r"/onlineEndpoints/pb-az-err$")


def test_ctrl_c_while_deploying_deletes_everything(azure_ml, model, blob_env, settings):
    def say(text):
        if text.startswith("deploying"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench({**settings, "name": "pb-az-int"}, payloads(), model_dir=model, say=say)
    nothing_left(azure_ml, blob_env, settings["container"])
    assert azure_ml.calls("DELETE", r"/models/pb-az-int/versions/1$")


@pytest.mark.parametrize("extra, message", [
    ({"instance_type": "Standard_NC99as_Z9_v9"}, "unknown VM size 'Standard_NC99as_Z9_v9': not offered in eastus"),
    ({"instance_type": "p3.2xlarge"}, "unknown VM size 'p3.2xlarge'"),
    ({"workspace": "missing-ws"}, "workspace 'missing-ws' in resource group 'rg': not found"),
    ({"image": None}, "no image"),
    ({"name": "9-starts-with-a-digit"}, "name '9-starts-with-a-digit': 3-32 letters"),
])
def test_bad_settings_create_nothing(azure_ml, model, blob_env, settings, extra, message):
    with pytest.raises(UserError, match=re.escape(message)):
        bench({k: v for k, v in {**settings, **extra}.items() if v is not None}, payloads(), model_dir=model)
    assert [p for m, p, _ in azure_ml.log if m in ("PUT", "POST", "DELETE")] == []
    assert blobs(blob_env, settings["container"]) == []


def test_plan_names_the_az_commands():
    from platforms.azureml.endpoint import AzureMLEndpoint

    steps = "\n".join(AzureMLEndpoint({"name": "pb-plan", "image": IMAGE}).plan())
    for needle in ("az ml online-endpoint create --name pb-plan --auth-mode key", "az ml online-deployment create",
                   "az ml model create --name pb-plan", "az ml online-endpoint delete --name pb-plan",
                   'CMD ["serve"]', "liveness/readiness /ping, scoring /invocations"):
        assert needle in steps, needle


def test_request_settings_follow_the_load_plan_and_the_scoring_uri_needs_the_key(azure_ml, model, blob_env,
                                                                                 settings, tmp_path, monkeypatch):
    """Concurrency 12 on 2 instances: 6 requests per instance; the load test's 90 s timeout as the request
    timeout (at most 180 s, reference-yaml-deployment-managed-online); both recorded as tags.
    A request without the endpoint's key is refused (401) and counted as a failure by the load tool."""
    import platforms.azureml.endpoint as ep_mod
    from platforms.core.load_runner import LoadSettings

    monkeypatch.chdir(tmp_path)
    original = ep_mod.scoring_transport
    monkeypatch.setattr(ep_mod, "scoring_transport", lambda uri, key, *a, **k: original(uri, "wrong-key", *a, **k))
    deployed = []  # the deployment as the service holds it, once it serves (teardown deletes it)

    def say(text):
        if text.startswith("endpoint pb-az-plan serves"):
            deployed.extend(d for d in azure_ml.resources.values() if d["type"].endswith("/deployments"))

    result = bench({**settings, "name": "pb-az-plan", "instance_count": "2"}, payloads(), model_dir=model,
                   load=LoadSettings(requests=4, concurrency=12, warmup=0, timeout_s=90), say=say)
    (dep,) = deployed
    assert dep["properties"]["requestSettings"]["maxConcurrentRequestsPerInstance"] == 6
    assert dep["properties"]["requestSettings"]["requestTimeout"] == "PT1M30S"
    assert result.tags == {"platbench.azureml.max_concurrent_requests_per_instance": "6",
                           "platbench.azureml.request_timeout_ms": "90000"}
    assert result.load["summary"]["ok"] == 0 and result.load["summary"]["failed"] == 4
    nothing_left(azure_ml, blob_env, settings["container"])


def test_the_request_timeout_is_at_most_the_service_s():
    from platforms.azureml.endpoint import AzureMLEndpoint
    from platforms.core.load_runner import LoadSettings

    ep = AzureMLEndpoint({"name": "pb-az-plan", "image": IMAGE})
    ep.load_plan = LoadSettings(concurrency=1, timeout_s=600)
    assert ep.tags()["platbench.azureml.request_timeout_ms"] == "180000"  # the service's maximum
