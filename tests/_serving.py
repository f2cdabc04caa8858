"""Helpers for the serving tests (test_serve, test_load, test_batch_inference): one trained model per
test session, `python -m trainer serve` started as a real subprocess on 127.0.0.1 under each platform's
environment, and a small HTTP client. Everything stays on loopback and every wait is bounded."""
from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from PIL import Image

from _runs import digits_run

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VERTEX_PREDICT = "/v1/endpoints/1234/deployedModels/5678:predict"

_cache: dict = {}


def trained_model(tmp_path_factory, digits_data: Path) -> tuple[Path, Path]:
    """(model dir, trainer output dir) of the session's `small` digits run (_runs.digits_run, which test_check
    trains anyway: one real training fewer than a serving model of its own) — once per test session, however
    many test modules and xdist workers ask. Read only: a test that changes it works on a copy."""
    if "model" not in _cache:
        out = digits_run(tmp_path_factory, digits_data)
        _cache["model"] = (out / "model", out)
    return _cache["model"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path
    health: str = "/ping"
    predict: str = "/invocations"
    env: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + self.predict

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def contract_env(contract: str, model_dir: Path, port: int, root: Path) -> tuple[dict, list[str], str, str]:
    """(environment, extra argv, health route, predict route) that put `serve` under one contract.

    sagemaker: the model unpacked into <root>/opt/ml/model (PLATBENCH_OPT_ML moves /opt/ml), the port
    from SAGEMAKER_BIND_TO_PORT, no flags — as `docker run IMAGE serve` would start it.
    vertex: AIP_HTTP_PORT, AIP_HEALTH_ROUTE = AIP_PREDICT_ROUTE (Vertex's default: one path, GET is the
    health check, POST the prediction), AIP_STORAGE_URI naming the model directory."""
    env = {"PLATBENCH_SERVE_HOST": "127.0.0.1", "PLATBENCH_SERVE_THREADS": "1"}
    for var in ("AIP_HTTP_PORT", "AIP_HEALTH_ROUTE", "AIP_PREDICT_ROUTE", "AIP_STORAGE_URI", "SAGEMAKER_BIND_TO_PORT",
                "PLATBENCH_MODEL_DIR", "PLATBENCH_OPT_ML"):
        env[var] = ""
    if contract == "sagemaker":
        opt_ml = root / "opt-ml"
        if not (opt_ml / "model").is_dir():
            shutil.copytree(model_dir, opt_ml / "model")
        env.update({"PLATBENCH_OPT_ML": str(opt_ml), "SAGEMAKER_BIND_TO_PORT": str(port)})
        return env, [], "/ping", "/invocations"
    if contract == "vertex":
        env.update({"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": VERTEX_PREDICT, "AIP_PREDICT_ROUTE": VERTEX_PREDICT,
                    "AIP_STORAGE_URI": str(model_dir)})
        return env, [], VERTEX_PREDICT, VERTEX_PREDICT
    if contract == "flag":
        return env, ["--model-dir", str(model_dir), "--port", str(port)], "/ping", "/invocations"
    raise ValueError(contract)


def start_server(contract: str, model_dir: Path, root: Path, extra_args: Iterable[str] = (),
                 extra_env: Optional[dict] = None, wait: bool = True) -> Server:
    port = free_port()
    env, args, health, predict = contract_env(contract, model_dir, port, root)
    env.update(extra_env or {})
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"serve-{contract}-{port}.log"
    full_env = {k: v for k, v in {**os.environ, **env}.items() if v != ""}
    proc = subprocess.Popen([PYTHON, "-m", "trainer", "serve", *args, *extra_args], cwd=REPO, env=full_env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(proc, port, log, health, predict, env)
    if wait:
        wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"serve exited with {server.proc.returncode}:\n{server.output()}")
        try:
            status, _, _ = request("GET", server.base + server.health, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"serve not ready within {timeout} s:\n{server.output()}")


def shared_server(request, tmp_path_factory, contract: str, model_dir: Path) -> Server:
    """One server per contract for the whole session, stopped (and checked to exit 0) at its end. A test may stop
    it sooner (test_loadtest's SIGTERM test): the next to ask gets a new one."""
    key = ("server", contract)
    server = _cache.get(key)
    if server is None or server.proc.poll() is not None:
        root = tmp_path_factory.getbasetemp() / f"serve-{contract}"
        server = start_server(contract, model_dir, root)
        _cache[key] = server
        request.config.add_cleanup(server.stop)
    return server


def request(method: str, url: str, body: bytes | Iterable[bytes] | None = None, headers: Optional[dict] = None,
            timeout: float = 30, chunked: bool = False) -> tuple[int, dict, bytes]:
    """One HTTP request with http.client: (status, lower-cased headers, body)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_json(url: str, doc, timeout: float = 30) -> tuple[int, dict]:
    status, _, body = request("POST", url, json.dumps(doc).encode(), {"Content-Type": "application/json"}, timeout)
    return status, json.loads(body) if body else {}


def image_bytes(fmt: str = "PNG", size: int = 32, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, len(mode))
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
