"""Shared by the endpoint tests of each platform: a trained model, the real `serve` as the container, and
a loopback runtime server that forwards to it as the clouds do (tests/sagemaker, tests/vertex), and SageMaker's
(`sagemaker_env`: moto's control plane, the runtime in front of the container; the test module imports `aws` too)."""
from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _serving import shared_server, trained_model

from platforms.core import price_cache as cache
from platforms.core import pricing
from conftest_clouds import new_bucket_name


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
    from platforms.bench.load_payloads import load_images, make_payloads

    return make_payloads(load_images([]), "image", 1)



def _png() -> bytes:
    from _serving import image_bytes

    return image_bytes("PNG")


# ------------------------------------------------------------------ SageMaker's runtime, in front of moto
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
                "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@sha256:" + "e" * 64}  # pinned (issue 18)
    yield aws, runtime, settings
    runtime.close()


USD_PER_HOUR = 36.0  # 0.01 USD a second: a budget of cents is reached in seconds


@pytest.fixture
def price(tmp_path, monkeypatch):
    """SageMaker's default endpoint machine (ml.m5.large, us-east-1) at USD_PER_HOUR in a price cache of its own."""
    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))
    cache.write("sagemaker", [cache.Fetched("endpoint", "us-east-1", "ml.m5.large", USD_PER_HOUR,
                                            "https://pricing.us-east-1.amazonaws.com", "AWS Price List Query API",
                                            "test", cache.now())])
    pricing.forget()
    yield
    pricing.forget()
