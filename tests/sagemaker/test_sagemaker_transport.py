"""The load tool is the one that retries, and counts it: an InvokeEndpoint that fails must reach the
endpoint exactly once (botocore's Config `max_attempts` counts RETRIES, `total_max_attempts` attempts:
https://docs.aws.amazon.com/boto3/latest/guide/retries.html)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Unavailable(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):  # http.server's name
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"message": "busy"}).encode()
        self.send_response(503)  # botocore's standard mode retries 503 by itself
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_failed_invoke_reaches_the_endpoint_once(monkeypatch):
    from platforms.core.transport import Payload
    from platforms.sagemaker.endpoint import SageMakerTransport

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{server.server_port}")
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    try:
        transport = SageMakerTransport("pb-ep", "us-east-1", 1, 10)
        reply = transport.call(Payload(b"x", "image/png", 1))
        assert reply.status == 503
        assert _Unavailable.calls == 1
    finally:
        server.shutdown()
        server.server_close()


class _UnavailableS3(_Unavailable):
    calls = 0
    do_PUT = _Unavailable.do_POST  # http.server's name


def test_an_s3_call_is_attempted_max_attempts_times_in_all(monkeypatch):
    """PLATBENCH_S3_MAX_ATTEMPTS counts attempts, the first included (it was handed to botocore as
    `max_attempts`, i.e. retries: one attempt more than it says)."""
    from platforms.clouds.aws import sdk as storage

    server = ThreadingHTTPServer(("127.0.0.1", 0), _UnavailableS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(storage, "MAX_ATTEMPTS", 3)
    try:
        s3 = storage.boto3_module().client("s3", region_name="us-east-1", aws_access_key_id="testing",
                                           aws_secret_access_key="testing", config=storage.client_config(),
                                           endpoint_url=f"http://127.0.0.1:{server.server_port}")
        import botocore.exceptions
        import pytest

        with pytest.raises(botocore.exceptions.ClientError):
            s3.put_object(Bucket="b", Key="k", Body=b"x")
        assert _UnavailableS3.calls == 3
    finally:
        server.shutdown()
        server.server_close()


def test_the_attempts_setting_is_read_when_a_client_is_made(monkeypatch):
    """A process that imported the AWS module before PLATBENCH_S3_MAX_ATTEMPTS was set (a sweep worker, the
    CLI run in-process by the launcher kit) still gets it: read per client, not at import."""
    from platforms.clouds.aws import sdk

    monkeypatch.setenv("PLATBENCH_S3_MAX_ATTEMPTS", "2")
    assert sdk.client_config().retries["total_max_attempts"] == 2
    monkeypatch.delenv("PLATBENCH_S3_MAX_ATTEMPTS")
    assert sdk.client_config().retries["total_max_attempts"] == sdk.MAX_ATTEMPTS == 8
