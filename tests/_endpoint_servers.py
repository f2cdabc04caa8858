"""Shared by the endpoint tests of each platform: a trained model, the real `serve` as the container, and
a loopback runtime server that forwards to it as the clouds do (tests/sagemaker, tests/vertex)."""
from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _serving import shared_server, trained_model


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

