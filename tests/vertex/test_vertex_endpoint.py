"""Vertex AI endpoints (platforms/vertex/endpoint.py): the SDK, signed with a service-account key, against the
loopback Vertex AI server (vertex_server.py: bodies parsed into the SDK's messages, Required fields, known
ids), traffic through the PredictionService over REST into the real `serve`; teardown checked after success
and an error."""
from __future__ import annotations

import json
import os
import re

import pytest
from conftest_clouds import gcs, gcs_server, new_bucket_name  # noqa: F401 (fixtures)
from vertex_fixtures import bucket_in, start_vertex  # noqa: F401 (fixture)
from vertex_jobs import container_runs, image_exec_form

from platforms.errors import UserError
from _endpoint_servers import model, vertex_container  # noqa: F401 (fixtures)
from _endpoint_servers import _png

# the trained model and its `serve` container are module fixtures: one worker builds them once
pytestmark = pytest.mark.xdist_group("vertex-endpoint")


@pytest.fixture
def vertex_env(gcs, vertex_container, bucket_in, tmp_path, monkeypatch):
    api = start_vertex(tmp_path, monkeypatch, container_port=vertex_container.port,
                       predict_route=vertex_container.predict)
    bucket = bucket_in("US-CENTRAL1")
    settings = {"project": "p", "region": "us-central1", "bucket": bucket, "api_endpoint": api.url,
                "image_uri": "us-docker.pkg.dev/p/r/platbench@sha256:" + "e" * 64}  # pinned (issue 18)
    yield api, settings
    api.close()


def test_vertex_endpoint_deploy_load_and_delete(vertex_env, model, tmp_path, monkeypatch):
    from google.cloud import storage

    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.core.load_runner import LoadSettings

    api, settings = vertex_env
    monkeypatch.chdir(tmp_path)
    payloads = make_payloads(load_images([]), "json", 2)
    result = run_endpoint_benchmark("vertex", model, {**settings, "name": "pb-vx-ok"},
                                    LoadSettings(requests=30, concurrency=3, warmup=2), payloads, "json", track=False)
    s = result.load["summary"]
    assert s["ok"] == 30 and s["failed"] == 0 and s["images_per_s"] == pytest.approx(2 * s["requests_per_s"])
    uploaded = next(iter(api.log))
    assert uploaded == ("POST", "projects/p/locations/us-central1/models:upload")
    assert api.models == {} and api.endpoints == {}  # undeployed, endpoint and model deleted
    order = [p for m, p in api.log if m == "DELETE" or p.endswith(":undeployModel")]
    assert order[0].endswith(":undeployModel") and "/endpoints/" in order[1] and "/models/" in order[2]
    assert list(storage.Client(project="test").list_blobs(settings["bucket"])) == []
    assert result.cost["usd_per"]["hour"] > 0


def test_the_deployed_container_starts_serve_not_the_images_train(vertex_env, model, tmp_path, monkeypatch):
    """Issue 12 item 1: the image's CMD is `train`; the model's containerSpec must start `serve` itself
    (ModelContainerSpec.args), as SageMaker does with `docker run IMAGE serve`. The loopback server
    refuses a spec that would not serve, by the same rules the real service applies to the image."""
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.core.load_runner import LoadSettings

    assert image_exec_form("CMD")[0] == "train" and container_runs({}) == image_exec_form("CMD")
    assert container_runs({"command": ["serve"]}) == ["serve"]
    api, settings = vertex_env
    monkeypatch.chdir(tmp_path)
    run_endpoint_benchmark("vertex", model, {**settings, "name": "pb-vx-args"}, LoadSettings(requests=2),
                           make_payloads(load_images([]), "json", 1), "json", track=False)
    (spec,) = [body["model"]["containerSpec"] for body in api.uploads]
    assert container_runs(spec) == ["serve"] and spec["predictRoute"] == "/predict"
    # serve reports the digest it runs (x-platbench-image-digest): the pinned image's
    assert {"name": "PLATBENCH_IMAGE_DIGEST", "value": "sha256:" + "e" * 64} in spec["env"]


@pytest.mark.parametrize("location", ["US", "europe-west4"])
def test_a_multi_region_or_foreign_bucket_is_refused_before_the_upload(vertex_env, model, location, bucket_in):
    """Issue 12 item 4: the model's bucket must be in the endpoint's region (one line, nothing created)."""
    from google.cloud import storage

    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    api, settings = vertex_env
    bucket = bucket_in(location)
    with pytest.raises(UserError, match=re.escape(f"bucket {bucket!r} is in {location.lower()}, not in us-central1")):
        run_endpoint_benchmark("vertex", model, {**settings, "bucket": bucket, "name": "pb-vx-far"},
                               LoadSettings(requests=1), [], "image", track=False)
    assert api.log == [] and list(storage.Client(project="test").list_blobs(bucket)) == []


def test_an_accelerator_the_image_cannot_use_is_refused():
    from platforms.vertex.endpoint import VertexEndpoint

    with pytest.raises(UserError, match=re.escape("NVIDIA_TESLA_P4 (sm_61) cannot run the image's torch build")):
        VertexEndpoint({"project": "p", "bucket": "b", "image_uri": "img", "machine_type": "n1-standard-4",
                        "accelerator_type": "NVIDIA_TESLA_P4", "accelerator_count": "1"})


def test_vertex_endpoint_is_deleted_after_an_error(vertex_env, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    api, settings = vertex_env
    with pytest.raises(UserError, match="nothing to send"):
        run_endpoint_benchmark("vertex", model, {**settings, "name": "pb-vx-err"}, LoadSettings(requests=5), [],
                               "image", track=False)
    assert api.models == {} and api.endpoints == {}


def test_serve_copies_the_model_from_a_gs_aip_storage_uri(gcs, model, tmp_path):
    """Vertex hands the container AIP_STORAGE_URI=gs://…: serve copies the model down (here from the
    Cloud Storage emulator), serves it, and removes the copy when it stops."""
    from google.cloud import storage

    from _serving import request, start_server

    bucket = new_bucket_name()
    b = storage.Client(project="test").create_bucket(bucket)
    for name in ("model.pt", "model.json"):
        b.blob(f"models/pb/{name}").upload_from_filename(str(model / name))
    server = start_server("vertex", model, tmp_path / "srv", extra_env={"AIP_STORAGE_URI": f"gs://{bucket}/models/pb"})
    try:
        status, _, body = request("POST", server.url, _png(), {"Content-Type": "image/png"})
        assert status == 200 and json.loads(body)["predictions"]
    finally:
        assert server.stop() == 0
    copied = re.search(r"copied 2 model files from gs://\S+ to (\S+)", server.output())
    assert copied and not os.path.exists(copied.group(1))



def test_a_deploy_interrupted_before_its_answer_leaves_no_model_deployed(vertex_env, model):
    """Reviewer finding 4: Vertex has deployed the model (nodes billing) but the deploy's answer has not come back
    when a Ctrl-C (or the budget's stop, the same interrupt) lands: the teardown undeploys what the endpoint lists,
    then deletes the endpoint (the server refuses deleting one with a deployed model, as Vertex does) and the
    model; the Ctrl-C stays a Ctrl-C."""
    import signal
    import threading

    from platforms.bench.endpoint import deployed

    api, settings = vertex_env
    api.deploy_hold = threading.Event()

    def interrupt():
        if api.deploying.wait(30):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            with deployed("vertex", model, {**settings, "name": "pb-vx-int"}):
                raise AssertionError("served")
    finally:
        api.deploy_hold.set()
    assert api.deploying.is_set()  # interrupted inside the deploy's call
    assert api.models == {} and api.endpoints == {} and not api.refused
    assert [p for m, p in api.log if p.endswith(":undeployModel")]
