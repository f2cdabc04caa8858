"""Loopback cloud servers for the launcher tests (imported by tests/core/test_staging.py, tests/sagemaker,
tests/vertex, tests/bench and others): moto in server mode (S3, IAM, ECR and SageMaker's endpoint API; training
jobs go to tests/sagemaker/sagemaker_server.py, which runs them), gcp-storage-emulator (Cloud Storage), and
a small forwarding proxy that records requests and injects faults (5xx, throttling, connection resets)
so the SDKs' own retries can be counted. Everything listens on 127.0.0.1 only; nothing is mocked in the
code under test."""
from __future__ import annotations

import http.client
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

import pytest

logging.getLogger("werkzeug").setLevel(logging.ERROR)

TELEMETRY_OFF = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy(ThreadingHTTPServer):
    """Forwards every request to `upstream` (host, port); keeps (method, path, headers, body) of each and
    applies `faults`: a list of [predicate(method, path, headers), action, remaining] with action one of
    "503", "throttle" (S3 SlowDown 503 / GCS 429), "reset" (close the socket without answering) or "403"
    (access denied: an error no client retries)."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.faults: list[list] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail(self, predicate: Callable[[str, str, dict], bool], action: str, times: int) -> None:
        with self.lock:
            self.faults.append([predicate, action, times])

    def take_fault(self, method, path, headers) -> Optional[str]:
        with self.lock:
            for fault in self.faults:
                if fault[2] > 0 and fault[0](method, path, headers):
                    fault[2] -= 1
                    return fault[1]
        return None

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        server: Proxy = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append((self.command, self.path, headers, body))
        fault = server.take_fault(self.command, self.path, headers)
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "403":
            text = (b'{"error": {"code": 403, "message": "caller does not have storage.objects.create access"}}'
                    if "/storage/" in self.path or "/upload/" in self.path
                    else b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
            self.send_response(403)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        if fault in ("503", "throttle"):
            status = 429 if (fault == "throttle" and "/storage/" in self.path) else 503
            text = (b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    if "/storage/" not in self.path else b'{"error": {"code": %d, "message": "try again"}}' % status)
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        conn = http.client.HTTPConnection(*server.upstream, timeout=60)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(self.command, self.path, body=body or None, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            length = resp.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield (host, port)
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch, tmp_path):
    """AWS SDK clients (boto3 and the SageMaker SDK) pointed at moto through a recording proxy."""
    proxy = Proxy(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(TELEMETRY_OFF)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(config))
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def gcs_server():
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield ("127.0.0.1", port)
    server.stop()


@pytest.fixture
def gcs(gcs_server, monkeypatch):
    """google-cloud-storage pointed at the emulator through a recording proxy (anonymous credentials)."""
    proxy = Proxy(gcs_server)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    monkeypatch.setenv("PLATBENCH_GCS_RETRY_SECONDS", "30")
    yield proxy
    proxy.close()


def new_bucket_name(prefix: str = "pb") -> str:
    import secrets

    return f"{prefix}-{secrets.token_hex(4)}"
