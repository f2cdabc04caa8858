"""`platbench load` against the real `serve` on 127.0.0.1: 1,000 requests at 10 concurrent with zero
errors, both contracts, fixed-rate mode, errors by status, refused and reset connections, retries
with backoff counted apart from errors, --max-error-rate, the JSON report, MLflow, and SIGTERM to the
server in the middle of a load test. Fault-injecting servers are small stdlib servers on loopback."""
from __future__ import annotations

import gc
import json
import socket
import struct
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import assert_one_line_error, platbench

from stand_in.cli import platbench_here
from _serving import free_port, shared_server, trained_model


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)[0]


@pytest.fixture(scope="module")
def sagemaker(request, tmp_path_factory, model):
    # test_sigterm_during_load_exits_cleanly stops it: keep that the module's last test to use it
    return shared_server(request, tmp_path_factory, "sagemaker", model)


@pytest.fixture(scope="module")
def vertex(request, tmp_path_factory, model):
    return shared_server(request, tmp_path_factory, "vertex", model)


def load_json(*args, cwd):
    # in this process (tests/stand_in/cli.py); load's subprocess form: test_bad_input_is_a_one_line_error's first
    proc = platbench_here("load", *args, "--json", cwd=cwd)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None)


def test_1000_requests_at_10_concurrent_with_zero_errors(sagemaker, digits_data, tmp_path):
    proc, report = load_json(f"127.0.0.1:{sagemaker.port}", "--data", str(digits_data / "test"), "--no-track",
                             "--max-error-rate", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = report["summary"]
    assert (s["requests"], s["ok"], s["failed"], s["error_rate"]) == (1000, 1000, 0, 0.0)
    assert report["settings"]["concurrency"] == 10 and report["warmup"]["requests"] == 20
    lat = s["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert s["requests_per_s"] > 0 and s["images_per_s"] == s["requests_per_s"] and s["mb_per_s"] > 0
    assert report["errors"]["by_status"] == {} and report["errors"]["resets"] == 0 and report["retries"]["total"] == 0
    assert len(report["samples"]["latency_ms"]) == 1000 and set(report["samples"]["status"]) == {200}
    assert report["server_batch"]["max"] <= 10
    p = report["platform"]
    assert p["server"]["software"] == "uvicorn" and p["model"].startswith("small; classes=10")
    assert p["client"]["host"] and p["client"]["library"].startswith("aiohttp") and p["name"] == "local"


def test_vertex_json_batches_count_images(vertex, model):
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import build_report
    from platforms.core.load_runner import LoadSettings

    target = parse_target(f"http://127.0.0.1:{vertex.port}{vertex.predict}")
    assert target.health_url == target.url  # Vertex's default: one path for health (GET) and predict (POST)
    payloads = make_payloads(load_images([]), "json", 4)
    s = LoadSettings(requests=60, concurrency=6, warmup=4, retries=0, wait_ready_s=5)
    data = run_load(target, payloads, s)
    report = build_report(target, data, s, payloads, "json")
    assert report["summary"]["failed"] == 0
    assert report["summary"]["images_per_s"] == pytest.approx(4 * report["summary"]["requests_per_s"])
    assert report["settings"]["images_per_request"] == 4


class _Arrivals(ThreadingHTTPServer):
    """Records when each request arrived (perf_counter: this process's clock, the load tool's too) and answers
    one prediction, but holds every answer until `hold_for` requests have arrived (at most `hold_max_s`, so a
    load tool that waits for answers fails the test instead of hanging it)."""
    daemon_threads = True

    def __init__(self, hold_for: int, hold_max_s: float = 30.0):
        self.arrivals: list[float] = []
        self.healthy_at: float | None = None
        self.first_answer: float | None = None
        self.hold_for, self.hold_max_s = hold_for, hold_max_s
        self.enough = threading.Event()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ArrivalHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class _ArrivalHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.healthy_at = time.perf_counter()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        srv: _Arrivals = self.server  # type: ignore[assignment]
        arrived = time.perf_counter()
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with srv.lock:
            srv.arrivals.append(arrived)
            if len(srv.arrivals) >= srv.hold_for:
                srv.enough.set()
        srv.enough.wait(srv.hold_max_s)
        with srv.lock:
            srv.first_answer = srv.first_answer or time.perf_counter()
        body = b'{"predictions": [{"class": "0"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_fixed_rate_sends_each_request_when_it_is_due_whether_or_not_earlier_ones_answered():
    """Open loop, checked where the requests arrive: none before its due time (t0 + i/rate, t0 after the
    health check was answered), and the first five all sent while none had been answered (the server holds
    its answers until then). Latency is counted from the due time, so the samples' start_s are the due times."""
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_runner import LoadSettings

    rate, n = 10.0, 10  # 0.1 s apart: a burst (a closed loop of 10 clients) cannot pass for the schedule
    server = _Arrivals(hold_for=5)
    try:
        # the health check first: its answer is the last thing before run_load reads its clock (t0)
        s = LoadSettings(requests=n, concurrency=10, rate=rate, warmup=0, retries=0, wait_ready_s=30)
        data = run_load(parse_target(f"127.0.0.1:{server.server_address[1]}"),
                        make_payloads(load_images([]), "image", 1), s)
    finally:
        server.close()
    arrivals, before = sorted(server.arrivals), server.healthy_at
    assert len(arrivals) == n and all(x.error is None for x in data.samples) and before is not None
    # the k-th arrival is no earlier than request k's due time (of k+1 requests, one is request k or later)
    early = [(k, t - before, k / rate) for k, t in enumerate(arrivals) if t < before + k / rate]
    assert early == [], "requests sent before they were due (seconds after start, due)"
    assert server.first_answer is not None and arrivals[4] <= server.first_answer  # sent on schedule, not on answers
    assert [x.start_s for x in data.samples] == pytest.approx([i / rate for i in range(n)], abs=1e-6)
    assert data.seconds >= (n - 1) / rate


def test_errors_by_status_and_max_error_rate(sagemaker, tmp_path):
    proc, report = load_json(f"http://127.0.0.1:{sagemaker.port}/nope", "-n", "30", "--warmup", "0", "--no-track",
                             "--max-error-rate", "0.5", cwd=tmp_path)
    assert proc.returncode == 1
    # every request failed: that, not the error-rate limit, is what the one line says
    assert "every one of 30 requests failed (30× HTTP 404)" in proc.stderr
    assert report["errors"]["by_status"] == {"404": 30} and report["summary"]["ok"] == 0
    assert report["retries"]["total"] == 0  # a 404 is not retried
    assert report["summary"]["latency_ms"]["p50"] is None


def test_refused_connections_are_retried_with_backoff_and_counted_apart(tmp_path):
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import summarize
    from platforms.core.load_runner import LoadSettings

    port = free_port()  # nothing listens there
    s = LoadSettings(requests=8, concurrency=4, warmup=0, retries=3, backoff_s=0.01)
    data = run_load(parse_target(f"127.0.0.1:{port}"), make_payloads(load_images([]), "image", 1), s)
    out = summarize(data)
    assert out["errors"]["connection"]["refused"] == 8 and out["summary"]["failed"] == 8
    assert out["retries"] == {"total": 24, "by_reason": {"refused": 24}, "requests_retried": 8, "recovered": 0}
    assert all(x.attempts == 4 for x in data.samples)


class _Resetter:
    """Accepts connections and resets them (SO_LINGER 0 → RST) without answering."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_connection_resets_are_counted(tmp_path):
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import summarize
    from platforms.core.load_runner import LoadSettings

    resetter = _Resetter()
    try:
        s = LoadSettings(requests=10, concurrency=2, warmup=0, retries=1, backoff_s=0.005)
        data = run_load(parse_target(f"127.0.0.1:{resetter.port}"), make_payloads(load_images([]), "image", 1), s)
    finally:
        resetter.close()
    out = summarize(data)
    assert out["errors"]["resets"] == 10 and out["summary"]["failed"] == 10
    assert out["retries"]["by_reason"] == {"reset": 10}


class _Flaky(BaseHTTPRequestHandler):
    """Every other request: 503; the others a valid one-prediction answer."""
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _Flaky.lock:
            _Flaky.count += 1
            fail = _Flaky.count % 2 == 1
        body = b'{"error": "busy"}' if fail else b'{"predictions": [{"class": "0"}]}'
        self.send_response(503 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_retries_that_recover_are_not_errors():
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import summarize
    from platforms.core.load_runner import LoadSettings

    _Flaky.count = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        s = LoadSettings(requests=20, concurrency=1, warmup=0, retries=2, backoff_s=0.001)
        data = run_load(parse_target(f"127.0.0.1:{httpd.server_address[1]}"), make_payloads(load_images([]), "image", 1), s)
    finally:
        httpd.shutdown()
        httpd.server_close()
    out = summarize(data)
    assert out["summary"]["failed"] == 0 and out["errors"]["by_status"] == {}
    assert out["retries"] == {"total": 20, "by_reason": {"503": 20}, "requests_retried": 20, "recovered": 20}


def test_load_is_logged_to_mlflow_with_every_sample(sagemaker, tmp_path):
    proc, report = load_json(f"127.0.0.1:{sagemaker.port}", "-n", "40", "--warmup", "2", "--image-digest",
                             "sha256:abc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(report["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["platbench.kind"] == "load" and run.data.tags["platbench.platform"] == "local"
    assert run.data.tags["platbench.image_digest"] == "sha256:abc"
    assert run.data.metrics["load_latency_p50_ms"] == pytest.approx(report["summary"]["latency_ms"]["p50"])
    assert run.data.metrics["load_error_rate"] == 0 and run.data.params["concurrency"] == "10"
    local = client.download_artifacts(run.info.run_id, "load.json", str(tmp_path))
    assert len(json.loads(open(local).read())["samples"]["latency_ms"]) == 40


def test_sigterm_during_load_exits_cleanly(sagemaker):
    """SIGTERM while 10 clients are sending: requests in flight are answered, new connections are
    refused, the server exits 0, and the load tool reports the failures instead of crashing. The server is
    this session's shared one, stopped here (a later test that asks for it gets a new one, _serving.py):
    a server of its own would add only its start-up, torch and the model loaded again."""
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import summarize
    from platforms.core.load_runner import LoadSettings

    server = sagemaker
    s = LoadSettings(requests=3000, concurrency=10, warmup=0, retries=0, timeout_s=20)
    done = {}
    sent = threading.Event()

    def progress(sample):
        if not sent.is_set() and sample.start_s > 0.5:
            sent.set()

    def work():
        done["data"] = run_load(parse_target(f"127.0.0.1:{server.port}"), make_payloads(load_images([]), "image", 1),
                                s, progress=progress)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert sent.wait(60), "load never got going"
    rc = server.stop(timeout=40)
    assert rc == 0, server.output()  # it exited by itself: stop() kills it (rc -9) after a 40 s grace
    thread.join(60)
    assert not thread.is_alive()
    out = summarize(done["data"])
    assert out["summary"]["ok"] > 0
    assert out["errors"]["by_status"] == {}  # no 5xx: in-flight requests were finished, not dropped
    assert out["summary"]["failed"] == sum(out["errors"]["connection"].values())
    assert "Shutting down" in server.output() and "stopped" in server.output()


@pytest.mark.parametrize("args, words", [
    (["ftp://x"], "not an http(s) URL"),
    (["127.0.0.1:1", "--format", "xml"], "--format must be image or json"),
    (["127.0.0.1:1", "--batch", "2"], "--batch needs --format json"),
    (["127.0.0.1:1", "-n", "0"], "--requests must be at least 1"),
    (["127.0.0.1:1", "--max-error-rate", "2"], "--max-error-rate is a fraction"),
    (["sagemaker:"], "needs an endpoint name"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, words):
    # in this process (tests/stand_in/cli.py), but for the first: one refusal through the console script
    run = partial(platbench, timeout=60) if args == ["ftp://x"] else platbench_here
    proc = run("load", *args, "--no-track", cwd=tmp_path)
    assert_one_line_error(proc)
    assert words in proc.stderr and proc.returncode == 2


@pytest.mark.parametrize("kind, name, settings, limit", [
    ("vertex", "projects/p/locations/us-central1/endpoints/1", {"project": "p", "api_endpoint": "http://127.0.0.1:9"},
     1_500_000),
    ("sagemaker", "pb-ep", {"region": "us-east-1"}, 6291456),
])
def test_a_body_over_the_platforms_request_limit_is_refused_before_sending(monkeypatch, kind, name, settings, limit):
    """Issue 12 item 10: the load tool knows each platform's documented request limit (Vertex AI public
    endpoint 1.5 MB, SageMaker InvokeEndpoint 6 MB) and refuses a bigger body in one line, sending nothing
    (the endpoints here point at a closed port: a request sent would be a connection error instead)."""
    from platforms.bench.loadtest import run_load
    from platforms.core.load_runner import LoadSettings
    from platforms.core.transport import Payload, Target
    from platforms.errors import UserError

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(UserError, match=f"request body of {limit + 1} bytes exceeds this endpoint's limit of {limit}"):
        run_load(Target(kind=kind, name=name), [Payload(b"\0" * (limit + 1), "image/png", 1)],
                 LoadSettings(requests=1, retries=0), settings=settings)


class _FreezeWatch(BaseHTTPRequestHandler):
    """Answers 200 and notes, per request, how many objects the collector holds frozen (this server runs in the
    test's own process, so it sees the load runner's collector)."""
    frozen: list[int] = []

    def do_GET(self):
        self._ok()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _FreezeWatch.frozen.append(gc.get_freeze_count())
        self._ok(b'{"predictions": [{"class": "0", "probability": 1.0}]}')

    def _ok(self, body: bytes = b"{}"):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_heap_before_a_load_run_is_frozen_while_it_runs():
    # a full collection of this process's heap (torch, MLflow, the SDKs) took 0.1-0.3 s: inside a request it is
    # the client's pause, not the endpoint's latency. While a run is timed, the heap it started with is frozen
    # (collections scan only what the run makes); after it, nothing is left frozen
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_runner import LoadSettings, answer_each

    _FreezeWatch.frozen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FreezeWatch)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        target = parse_target(f"127.0.0.1:{httpd.server_address[1]}")
        payloads = make_payloads(load_images([]), "image", 1)
        run_load(target, payloads, LoadSettings(requests=5, concurrency=2, warmup=0, retries=0))
        from platforms.bench.loadtest import make_transport

        answer_each(lambda: make_transport(target, 2, 30.0), payloads[:3], 2, 30.0, 0)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(_FreezeWatch.frozen) == 8 and min(_FreezeWatch.frozen) > 10_000
    assert gc.get_freeze_count() == 0
