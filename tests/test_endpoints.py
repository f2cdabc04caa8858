"""Cloud endpoints (platforms/endpoints.py): the control plane against moto's SageMaker API on 127.0.0.1
(through the launcher tests' recording proxy) and a small Vertex AI REST server written here; the traffic
through the real SDK clients (boto3 sagemaker-runtime, the Vertex PredictionService over REST) into the
real `serve` on 127.0.0.1 by way of a loopback server that speaks the runtime API (InvokeEndpoint /
rawPredict) and forwards to the container, as the clouds do. Teardown is checked after success, after an
error and after Ctrl-C."""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest_clouds import aws, gcs, gcs_server, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from _serving import shared_server, trained_model
from platforms.errors import UserError


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)[0]


@pytest.fixture(scope="module")
def container(request, tmp_path_factory, model):
    return shared_server(request, tmp_path_factory, "sagemaker", model)


@pytest.fixture(scope="module")
def vertex_container(request, tmp_path_factory, model):
    return shared_server(request, tmp_path_factory, "vertex", model)


def _forward(port: int, path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class _Runtime(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, **attrs):
        self.__dict__.update(attrs)
        self.calls = 0
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self):
        self.shutdown()
        self.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, headers: dict):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _SageMakerRuntime(_Quiet):
    """POST /endpoints/NAME/invocations (InvokeEndpoint, REST-JSON): the endpoint must exist (asked of
    moto), the body goes to the container's /invocations, a non-2xx comes back as a 424 ModelError."""

    def do_POST(self):
        srv = self.server
        srv.calls += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/endpoints/([^/]+)/invocations", self.path)
        import boto3

        try:
            status = boto3.client("sagemaker").describe_endpoint(EndpointName=m.group(1))["EndpointStatus"]
        except Exception:  # noqa: BLE001
            status = None
        if status != "InService":
            msg = json.dumps({"message": f"Endpoint {m.group(1)} of account 123456789012 not found."}).encode()
            return self._send(400, msg, {"x-amzn-ErrorType": "ValidationError", "Content-Type": "application/json"})
        fwd = {k: v for k, v in self.headers.items()
               if k.lower() in ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")}
        code, headers, data = _forward(srv.container_port, "/invocations", body, fwd)
        if code == 200:
            out = {"Content-Type": headers.get("content-type", "application/json"),
                   "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
            if "x-amzn-sagemaker-custom-attributes" in headers:
                out["X-Amzn-SageMaker-Custom-Attributes"] = headers["x-amzn-sagemaker-custom-attributes"]
            return self._send(200, data, out)
        err = {"message": f"Received client error ({code}) from primary with message \"{data.decode()}\"",
               "OriginalStatusCode": code, "OriginalMessage": data.decode(), "LogStreamArn": "arn:test"}
        self._send(424, json.dumps(err).encode(), {"x-amzn-ErrorType": "ModelError", "Content-Type": "application/json"})


@pytest.fixture
def sagemaker_env(aws, container, monkeypatch):
    runtime = _Runtime(_SageMakerRuntime, container_port=container.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    import boto3

    bucket = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=bucket)
    iam = boto3.client("iam")
    try:
        role = iam.create_role(RoleName="platbench-ep", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="platbench-ep")["Role"]["Arn"]
    settings = {"region": "us-east-1", "bucket": bucket, "role": role, "poll_seconds": "0.05",
                "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench:test"}
    yield aws, runtime, settings
    runtime.close()


def _nothing_left(bucket: str) -> None:
    import boto3

    sm = boto3.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def _sent(proxy, target: str) -> list[dict]:
    return [json.loads(body) for _, _, headers, body in proxy.requests
            if headers.get("X-Amz-Target") == f"SageMaker.{target}"]


def _payloads():
    from platforms.bench.loadtest import load_images, make_payloads

    return make_payloads(load_images([]), "image", 1)


def test_sagemaker_endpoint_deploy_load_batch_and_delete(sagemaker_env, model, digits_data, tmp_path, monkeypatch):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.loadtest import LoadSettings

    proxy, runtime, settings = sagemaker_env
    monkeypatch.chdir(tmp_path)
    result = run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-ok"},
                                    LoadSettings(requests=60, concurrency=4, warmup=4), _payloads(), "image",
                                    batch_dir=digits_data / "test" / "3")
    load = result.load
    assert load["summary"]["ok"] == 60 and load["summary"]["failed"] == 0 and load["target"] == "sagemaker:pb-ep-ok"
    assert load["platform"]["server"]["software"] == "sagemaker endpoint (AllTraffic)"
    assert load["platform"]["model"] == "small" and load["server_batch"]["max"] >= 1
    assert result.batch["images"] == len(list((digits_data / "test" / "3").glob("*.png"))) and result.batch["errors"] == 0
    assert runtime.calls >= 64 + result.batch["images"]
    # the control plane: what was created, with the model.tar.gz SageMaker unpacks into /opt/ml/model
    (cm,) = _sent(proxy, "CreateModel")
    assert cm["PrimaryContainer"]["Image"] == settings["image_uri"] and cm["ExecutionRoleArn"] == settings["role"]
    key = cm["PrimaryContainer"]["ModelDataUrl"].split(f"s3://{settings['bucket']}/")[1]
    put = [body for method, path, _, body in proxy.requests if method == "PUT" and path.endswith(key)]
    names = tarfile.open(fileobj=io.BytesIO(put[-1]), mode="r:gz").getnames()
    assert sorted(names) == ["model.json", "model.pt"]
    (cfg,) = _sent(proxy, "CreateEndpointConfig")
    assert cfg["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-ok"]
    assert len(_sent(proxy, "DeleteEndpointConfig")) == 1 and len(_sent(proxy, "DeleteModel")) == 1
    assert result.deleted[0] == "endpoint pb-ep-ok" and len(result.deleted) == 4
    _nothing_left(settings["bucket"])
    # cost per hour/day/month/year from the price table
    assert result.cost["usd_per"]["day"] == pytest.approx(24 * result.cost["usd_per"]["hour"], rel=1e-3)
    assert result.cost["usd_per"]["year"] == pytest.approx(8760 * result.cost["usd_per"]["hour"], rel=1e-3)
    assert "ml.m5.large" in result.cost["basis"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.settings["mlflow_run_id"])
    assert run.data.tags["platbench.kind"] == "endpoint" and run.data.metrics["load_ok"] == 60
    assert run.data.metrics["endpoint_usd_per_month"] == pytest.approx(result.cost["usd_per"]["month"])


def test_sagemaker_endpoint_is_deleted_after_an_error(sagemaker_env, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.loadtest import LoadSettings

    proxy, _, settings = sagemaker_env
    with pytest.raises(UserError, match="nothing to send"):
        run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-err"}, LoadSettings(requests=5),
                               [], "image", track=False)
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-err"]
    _nothing_left(settings["bucket"])


def test_sagemaker_endpoint_is_deleted_after_ctrl_c(sagemaker_env, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.loadtest import LoadSettings

    proxy, runtime, settings = sagemaker_env
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))

    def start_timer(text):
        if "load test" in text:
            timer.start()

    with pytest.raises(KeyboardInterrupt):
        run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-int"},
                               LoadSettings(requests=20_000, concurrency=2, warmup=0), _payloads(), "image",
                               say=start_timer, track=False)
    timer.cancel()
    assert runtime.calls > 0
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-int"]
    _nothing_left(settings["bucket"])


def test_container_errors_come_back_as_their_status_through_the_sdk(sagemaker_env, model):
    from platforms.bench.endpoint import SageMakerEndpoint, SageMakerTransport
    from platforms.bench.loadtest import Payload

    _, _, settings = sagemaker_env
    ep = SageMakerEndpoint({**settings, "name": "pb-ep-415"})
    ep.check()
    try:
        ep.deploy(model)
        t = SageMakerTransport("pb-ep-415", "us-east-1", 1, 10)
        reply = t._invoke(Payload(b"hello", "text/plain", 1))
        assert reply.status == 415 and "unsupported Content-Type" in json.loads(reply.body)["error"]
        assert t._invoke(Payload(b"hello", "image/png", 1)).status == 400
        assert SageMakerTransport("no-such-endpoint", "us-east-1", 1, 10)._invoke(
            Payload(b"x", "image/png", 1)).status == 400
        # `platbench load sagemaker:NAME` on an endpoint that already runs
        from platforms.bench.loadtest import LoadSettings, parse_target, run_load, summarize

        data = run_load(parse_target("sagemaker:pb-ep-415"), _payloads(), LoadSettings(requests=12, concurrency=3, warmup=0),
                        settings={"region": "us-east-1"})
        assert summarize(data)["summary"]["ok"] == 12
    finally:
        ep.teardown()
    _nothing_left(settings["bucket"])


@pytest.mark.parametrize("settings, words", [
    ({"instance_type": "ml.nope.large"}, "unknown endpoint instance type"),
    ({"colour": "blue"}, "colour"),
    ({"bucket": None}, "add --set bucket="),
])
def test_bad_settings_fail_before_anything_is_created(sagemaker_env, settings, words):
    from platforms.bench.endpoint import SageMakerEndpoint

    proxy, _, base = sagemaker_env
    merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(UserError, match=words):
        SageMakerEndpoint(merged).check()
    assert not [r for r in proxy.requests if "Create" in r[2].get("X-Amz-Target", "")]


# ------------------------------------------------------------------------------------------ Vertex AI
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
                   models={}, endpoints={}, ops=0, log=[])
    bucket = new_bucket_name()
    storage.Client(project="test").create_bucket(bucket)
    settings = {"project": "p", "region": "us-central1", "bucket": bucket, "image_uri": "img", "api_endpoint": api.url}
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


def _png() -> bytes:
    from _serving import image_bytes

    return image_bytes("PNG")


def test_dry_run_prints_the_plan_and_cost_and_creates_nothing(tmp_path):
    from conftest import assert_one_line_error, platbench

    proc = platbench("endpoint", "sagemaker", "--dry-run", "--set", "bucket=b", "--set", "name=pb-dry",
                     "--set", "instance_type=ml.g4dn.xlarge", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "aws sagemaker create-endpoint --endpoint-name pb-dry --endpoint-config-name pb-dry" in proc.stdout
    assert "aws sagemaker delete-endpoint --endpoint-name pb-dry" in proc.stdout
    assert re.search(r"cost while up: \$0\.7364/hour, \$17\.67/day, \$537\.57/month \(730 h\), \$6450\.86/year",
                     proc.stdout), proc.stdout
    assert not (tmp_path / "mlflow.db").exists()
    proc = platbench("endpoint", "azure", "--dry-run", cwd=tmp_path, timeout=60)
    assert_one_line_error(proc)
    assert "no endpoints for 'azure'" in proc.stderr
