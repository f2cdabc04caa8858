"""Vertex AI endpoints (platforms/vertex/endpoint.py): a small Vertex AI REST server written here, traffic
through the PredictionService over REST into the real `serve`; teardown checked after success and an error."""
from __future__ import annotations

import base64
import json
import os
import re

import pytest
from conftest_clouds import gcs, gcs_server, new_bucket_name  # noqa: F401 (fixtures)

from platforms.errors import UserError
from _endpoint_servers import model, vertex_container  # noqa: F401 (fixtures)
from _endpoint_servers import _forward, _Runtime, _Quiet, _png

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bucket_in(location: str) -> str:
    """A new emulator bucket reporting `location` (the emulator ignores location on insert and takes it
    through a PATCH; real buckets get it at creation and keep it)."""
    from google.cloud import storage

    name = new_bucket_name()
    b = storage.Client(project="test").create_bucket(name)
    b._patch_property("location", location)
    b.patch()
    return name


def image_exec_form(instruction: str) -> list[str]:
    """The image's ENTRYPOINT or CMD (exec form) as the Dockerfile declares it, [] when absent."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        lines = [line for line in f if re.match(rf"^{instruction}\s+\[", line)]
    return json.loads(lines[-1].split(None, 1)[1]) if lines else []


def storage_client():
    from google.cloud import storage

    return storage.Client(project="test")


def container_runs(spec: dict) -> list[str]:
    """What a deployed ModelContainerSpec starts, by the Kubernetes rules the spec follows
    (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ModelContainerSpec): `command` replaces the
    image's ENTRYPOINT and `args` its CMD; a command without args runs without the image's CMD."""
    command = spec.get("command") or image_exec_form("ENTRYPOINT")
    if spec.get("args"):
        return [*command, *spec["args"]]
    return list(command) if spec.get("command") else [*command, *image_exec_form("CMD")]


class _VertexAPI(_Quiet):
    """models:upload, endpoints (create, deployModel, undeployModel, delete, rawPredict), models delete,
    REST JSON as in the v1 reference; every long-running operation is returned already done. rawPredict
    goes to the container's predict route, as Vertex forwards it."""

    def _json(self, obj, status=200):
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _op(self, response: dict, type_name: str):
        self.server.ops += 1
        return self._json({"name": f"projects/p/locations/r/operations/{self.server.ops}", "done": True,
                           "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{type_name}",
                                        **response}})

    def do_POST(self):
        srv = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        srv.log.append(("POST", path))
        if m := re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/models:upload", path):
            body = json.loads(raw)
            srv.uploads.append(("POST", path, raw))
            # the container Vertex would start must serve: the image's CMD trains, and a training container
            # never answers the health route (the real deployment fails only after a long wait)
            # a regional upload needs its artifacts in a bucket of that region (issue 12 item 4)
            artifact_bucket = body["model"]["artifactUri"].split("/")[2]
            where = (storage_client().get_bucket(artifact_bucket).location or "").lower()
            region = m.group(1).split("/")[3]
            if where != region:
                return self._json({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                             f"bucket {artifact_bucket} is in {where}, not in {region}"}}, 400)
            runs = container_runs(body["model"].get("containerSpec", {}))
            if not runs or os.path.basename(runs[0]) != "serve":
                return self._json({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                             f"the serving container would run {runs}, not `serve`"}}, 400)
            name = f"{m.group(1)}/models/{len(srv.models) + 1}"
            srv.models[name] = body["model"]
            return self._op({"model": name}, "UploadModelResponse")
        if m := re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/endpoints", path):
            name = f"{m.group(1)}/endpoints/{100 + len(srv.endpoints)}"
            srv.endpoints[name] = {"deployed": {}}
            return self._op({"name": name, **json.loads(raw)}, "Endpoint")
        if m := re.fullmatch(r"/v1/(projects/.+/endpoints/\d+):deployModel", path):
            body = json.loads(raw)
            dep_id = str(7000 + len(srv.endpoints[m.group(1)]["deployed"]))
            srv.endpoints[m.group(1)]["deployed"][dep_id] = body["deployedModel"]
            return self._op({"deployedModel": {**body["deployedModel"], "id": dep_id}}, "DeployModelResponse")
        if m := re.fullmatch(r"/v1/(projects/.+/endpoints/\d+):undeployModel", path):
            srv.endpoints[m.group(1)]["deployed"].pop(json.loads(raw)["deployedModelId"])
            return self._op({}, "UndeployModelResponse")
        if m := re.fullmatch(r"/v1/(projects/.+/endpoints/\d+):rawPredict", path):
            ep = srv.endpoints.get(m.group(1))
            if not ep or not ep["deployed"]:
                return self._json({"error": {"code": 400, "message": "no model deployed", "status": "FAILED_PRECONDITION"}}, 400)
            doc = json.loads(raw)  # the REST shape of RawPredictRequest: {"httpBody": {"contentType", "data"}}
            http_body = doc["httpBody"]
            code, headers, data = _forward(srv.container_port, srv.predict_route, base64.b64decode(http_body["data"]),
                                           {"Content-Type": http_body.get("contentType", "")})
            if code != 200:
                return self._json({"error": {"code": code, "message": data.decode(), "status": "INVALID_ARGUMENT"}}, code)
            return self._json({"contentType": headers.get("content-type"), "data": base64.b64encode(data).decode()})
        self._json({"error": {"code": 404, "message": f"no {path}", "status": "NOT_FOUND"}}, 404)

    def do_DELETE(self):
        srv = self.server
        path = self.path.split("?")[0][len("/v1/"):]
        srv.log.append(("DELETE", path))
        for table in (srv.endpoints, srv.models):
            if path in table:
                del table[path]
                return self._json({"name": f"{path}/operations/1", "done": True,
                                   "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}})
        self._json({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, 404)


@pytest.fixture
def vertex_env(gcs, vertex_container, monkeypatch):
    from google.cloud import storage

    api = _Runtime(_VertexAPI, container_port=vertex_container.port, predict_route=vertex_container.predict,
                   models={}, endpoints={}, ops=0, log=[], uploads=[])
    bucket = bucket_in("US-CENTRAL1")
    settings = {"project": "p", "region": "us-central1", "bucket": bucket, "api_endpoint": api.url,
                "image_uri": "us-docker.pkg.dev/p/r/platbench@sha256:" + "e" * 64}  # pinned (issue 18)
    yield api, settings
    api.close()


def test_vertex_endpoint_deploy_load_and_delete(vertex_env, model, tmp_path, monkeypatch):
    from google.cloud import storage

    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.loadtest import LoadSettings, load_images, make_payloads

    api, settings = vertex_env
    monkeypatch.chdir(tmp_path)
    payloads = make_payloads(load_images([]), "json", 2)
    result = run_endpoint_benchmark("vertex", model, {**settings, "name": "pb-vx-ok"},
                                    LoadSettings(requests=30, concurrency=3, warmup=2), payloads, "json", track=False)
    s = result.load["summary"]
    assert s["ok"] == 30 and s["failed"] == 0 and s["images_per_s"] == pytest.approx(2 * s["requests_per_s"])
    uploaded = next(iter(api.log))
    assert uploaded == ("POST", "/v1/projects/p/locations/us-central1/models:upload")
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
    from platforms.bench.loadtest import LoadSettings, load_images, make_payloads

    assert image_exec_form("CMD")[0] == "train" and container_runs({}) == image_exec_form("CMD")
    assert container_runs({"command": ["serve"]}) == ["serve"]
    api, settings = vertex_env
    monkeypatch.chdir(tmp_path)
    run_endpoint_benchmark("vertex", model, {**settings, "name": "pb-vx-args"}, LoadSettings(requests=2),
                           make_payloads(load_images([]), "json", 1), "json", track=False)
    (spec,) = [json.loads(body)["model"]["containerSpec"] for method, path, body in api.uploads]
    assert container_runs(spec) == ["serve"] and spec["predictRoute"] == "/predict"
    # serve reports the digest it runs (x-platbench-image-digest): the pinned image's
    assert {"name": "PLATBENCH_IMAGE_DIGEST", "value": "sha256:" + "e" * 64} in spec["env"]


@pytest.mark.parametrize("location", ["US", "europe-west4"])
def test_a_multi_region_or_foreign_bucket_is_refused_before_the_upload(vertex_env, model, location):
    """Issue 12 item 4: the model's bucket must be in the endpoint's region (one line, nothing created)."""
    from google.cloud import storage

    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.loadtest import LoadSettings

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
    from platforms.bench.loadtest import LoadSettings

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

