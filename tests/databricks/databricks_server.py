"""A loopback Databricks workspace for the tests: HTTP on 127.0.0.1 answering the REST resources databricks-sdk
calls for platbench (https://docs.databricks.com/api/workspace/introduction): clusters list-node-types,
spark-versions and events; jobs runs/submit, runs/get, runs/get-output, runs/cancel; Unity Catalog volumes
get; the Files API (PUT/GET/HEAD/DELETE /api/2.0/fs/files{path}, GET /api/2.0/fs/directories{path}).
Databricks has no emulator; this server is written from the REST reference and the SDK's own dataclasses.

What makes it a stand-in and not a yes-machine:
- a request without the bearer token it was given is a 401; errors come in the API's shape
  ({"error_code", "message"}), which the SDK maps to its own exceptions;
- a runs/submit body is checked against the SDK: top-level keys against JobsAPI.submit's parameters, each
  task against `SubmitTask.from_dict(...).as_dict()` (a key the dataclass does not know, or a value of the wrong
  shape, does not survive the round trip: 400 INVALID_PARAMETER_VALUE); unknown node types and runtimes are
  refused as the service refuses them;
- a file outside an existing volume is 404 (the volume must exist), overwrite=false on an existing file 409;
- a submitted run runs: its task, under the job-cluster contract (platforms/databricks/emulator.py), as a
  local process that reads and writes this server's volume through the Files API, with the run states,
  durations, driver log and cluster events a real run reports.

The SDK is pointed here with its own settings: DATABRICKS_HOST (this server's URL) and DATABRICKS_TOKEN
(personal-access-token auth)."""
from __future__ import annotations

import inspect
import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

NODE_TYPES = [  # (id, cores, memory MB, GPUs)
    ("g4dn.xlarge", 4, 16384, 1), ("g5.xlarge", 4, 16384, 1), ("p3.2xlarge", 8, 62464, 1),
    ("i3.xlarge", 4, 31232, 0), ("m5d.large", 2, 8192, 0)]
RUNTIMES = ["16.4.x-gpu-ml-scala2.12", "16.4.x-cpu-ml-scala2.12", "15.4.x-gpu-ml-scala2.12", "16.4.x-scala2.12"]


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def round_trip_problems(cls, value: dict, where: str) -> list[str]:
    """Keys or shapes the SDK's dataclass `cls` does not carry through from_dict → as_dict."""
    back = cls.from_dict(value).as_dict()
    return _diff(value, back, where)


def _diff(sent, back, where: str) -> list[str]:
    if isinstance(sent, dict) and isinstance(back, dict):
        out = [f"{where}.{k}: not a field the API knows" for k in sent if k not in back]
        return out + [p for k in sent if k in back for p in _diff(sent[k], back[k], f"{where}.{k}")]
    if isinstance(sent, list) and isinstance(back, list) and len(sent) == len(back):
        return [p for i, (a, b) in enumerate(zip(sent, back)) for p in _diff(a, b, f"{where}[{i}]")]
    return [] if sent == back else [f"{where}: {sent!r} is not of the field's type"]


class _Run:
    def __init__(self, run_id: int, name: str, task: dict, cluster_id: str):
        self.run_id, self.name, self.task, self.cluster_id = run_id, name, task, cluster_id
        self.local = None
        self.created = time.time()
        self.error: Optional[str] = None
        self.thread: Optional[threading.Thread] = None


class DatabricksServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = "dapi" + secrets.token_hex(16)
        self.volumes: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.runs: dict[int, _Run] = {}
        self.events: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._next = 1000
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def create_volume(self, full_name: str) -> str:
        self.volumes.add(full_name)
        return "/Volumes/" + full_name.replace(".", "/")

    def env(self) -> dict[str, str]:
        return {"DATABRICKS_HOST": self.url, "DATABRICKS_TOKEN": self.token}

    def close(self) -> None:
        for run in list(self.runs.values()):
            if run.local is not None:
                run.local.stop()
                run.local.cleanup()
        self.shutdown()
        self.server_close()

    # ---------------------------------------------------------------- jobs
    def submit(self, body: dict) -> dict:
        from databricks.sdk.service.jobs import JobsAPI, SubmitTask

        allowed = set(inspect.signature(JobsAPI.submit).parameters) - {"self"}
        problems = [f"{k}: not a field of runs/submit" for k in body if k not in allowed]
        tasks = body.get("tasks") or []
        if len(tasks) != 1:
            problems.append("this workspace runs one-task submits only")
        for i, task in enumerate(tasks):
            problems += round_trip_problems(SubmitTask, task, f"tasks[{i}]")
        if problems:
            raise Refused(400, "INVALID_PARAMETER_VALUE", "; ".join(problems))
        task = tasks[0]
        cluster = task.get("new_cluster") or {}
        if cluster.get("node_type_id") not in {n[0] for n in NODE_TYPES}:
            raise Refused(400, "INVALID_PARAMETER_VALUE",
                          f"Node type {cluster.get('node_type_id')} is not supported. Supported node types: "
                          + ", ".join(n[0] for n in NODE_TYPES))
        if cluster.get("spark_version") not in RUNTIMES:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Invalid spark version {cluster.get('spark_version')}.")
        with self.lock:
            token = body.get("idempotency_token")
            for run in self.runs.values():  # the documented idempotency: the same token, the same run
                if token and run.task.get("_token") == token:
                    return {"run_id": run.run_id}
            self._next += 2
            run = _Run(self._next, body.get("run_name") or "Untitled", {**task, "_token": token},
                       f"0101-{self._next:06d}-loopback")
            self.runs[run.run_id] = run
        self.event(run.cluster_id, "CREATING")
        run.thread = threading.Thread(target=self._execute, args=(run, task, body.get("timeout_seconds") or 0),
                                      daemon=True)
        run.thread.start()
        return {"run_id": run.run_id}

    def event(self, cluster_id: str, kind: str) -> None:
        self.events.setdefault(cluster_id, []).append({"cluster_id": cluster_id, "type": kind,
                                                       "timestamp": int(time.time() * 1000)})

    def _execute(self, run: _Run, task: dict, timeout: int) -> None:
        from databricks.sdk import WorkspaceClient

        from platforms.core.progress import JobProgress
        from platforms.databricks.emulator import task_run
        from platforms.databricks.storage import VolumeStore

        try:
            volume = _volume_of(task["spark_python_task"]["python_file"])
            store = VolumeStore(volume, client=WorkspaceClient(host=self.url, token=self.token))
            run.local = task_run(run.run_id, run.name, task, store, timeout, run.cluster_id)
            self.event(run.cluster_id, "RUNNING")
            run.local.start()
            run.local.wait(JobProgress(enabled=False))
        except Exception as exc:  # noqa: BLE001 - the run fails, as a real one would
            run.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            self.event(run.cluster_id, "TERMINATING")
            self.event(run.cluster_id, "TERMINATED")

    def get_run(self, run_id: int) -> dict:
        run = self.runs.get(run_id)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        if run.local is None or not run.local.timeline:
            d = {"run_id": run.run_id, "run_name": run.name, "state": {"life_cycle_state": "PENDING"},
                 "tasks": [{"task_key": run.task.get("task_key"), "run_id": run.run_id + 1,
                            "state": {"life_cycle_state": "PENDING"}}]}
            if run.error:
                d["state"] = {"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED",
                              "state_message": run.error}
            return d
        d = run.local.describe()
        if run.error and d["state"]["life_cycle_state"] != "TERMINATED":
            d["state"] = {"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED", "state_message": run.error}
        return d

    def output(self, task_run_id: int) -> dict:
        run = self.runs.get(task_run_id - 1)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {task_run_id} does not exist.")
        log = run.local.root / "job.log" if run.local is not None else None
        text = log.read_text(errors="replace") if log is not None and log.is_file() else ""
        return {"logs": text[-5_000_000:], "metadata": self.get_run(run.run_id)}

    def cancel(self, run_id: int) -> None:
        run = self.runs.get(run_id)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        if run.local is not None:
            threading.Thread(target=run.local.stop, daemon=True).start()

    # ---------------------------------------------------------------- files
    def check_path(self, path: str) -> None:
        volume = _volume_of(path)
        if volume not in self.volumes:
            raise Refused(404, "NOT_FOUND", f"Volume '{volume}' does not exist.")


def _volume_of(path: str) -> str:
    m = re.match(r"^/Volumes/([^/]+)/([^/]+)/([^/]+)(/|$)", path)
    if not m:
        raise Refused(400, "INVALID_PARAMETER_VALUE", f"{path} is not a path in a Unity Catalog volume")
    return ".".join(m.groups()[:3])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DatabricksServer

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, doc: dict, status: int = 200):
        self._send(status, json.dumps(doc).encode())

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), {k: v[0] for k, v in parse_qs(parts.query).items()}
        s = self.server
        s.requests.append((self.command, path))
        try:
            if path == "/.well-known/databricks-config":  # host metadata (read before auth, unauthenticated)
                return self._json({"oidc_endpoint": f"{s.url}/oidc", "workspace_id": "1234567890123456",
                                   "cloud": "aws"})
            if self.headers.get("Authorization") != f"Bearer {s.token}":
                self._body()
                raise Refused(401, "UNAUTHENTICATED", "Invalid access token.")
            self._route(self.command, path, query)
        except Refused as exc:
            self._json({"error_code": exc.code, "message": exc.message}, exc.status)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _route(self, method: str, path: str, query: dict):
        s = self.server
        if method == "GET" and path == "/api/2.1/clusters/list-node-types":
            return self._json({"node_types": [
                {"node_type_id": n, "instance_type_id": n, "num_cores": c, "memory_mb": m, "num_gpus": g,
                 "description": n, "category": "GPU Accelerated" if g else "General Purpose"}
                for n, c, m, g in NODE_TYPES]})
        if method == "GET" and path == "/api/2.1/clusters/spark-versions":
            return self._json({"versions": [{"key": k, "name": k} for k in RUNTIMES]})
        if method == "POST" and path == "/api/2.1/clusters/events":
            body = json.loads(self._body() or b"{}")
            events = s.events.get(body.get("cluster_id"), [])
            return self._json({"events": events, "total_count": len(events)})
        if method == "POST" and path == "/api/2.2/jobs/runs/submit":
            return self._json(s.submit(json.loads(self._body() or b"{}")))
        if method == "GET" and path == "/api/2.2/jobs/runs/get":
            return self._json(s.get_run(int(query.get("run_id", 0))))
        if method == "GET" and path == "/api/2.2/jobs/runs/get-output":
            return self._json(s.output(int(query.get("run_id", 0))))
        if method == "POST" and path == "/api/2.2/jobs/runs/cancel":
            s.cancel(int(json.loads(self._body() or b"{}").get("run_id", 0)))
            return self._json({})
        m = re.match(r"^/api/2\.1/unity-catalog/volumes/([^/]+)$", path)
        if method == "GET" and m:
            name = m.group(1)
            if name not in s.volumes:
                raise Refused(404, "NOT_FOUND", f"Volume '{name}' does not exist.")
            catalog, schema, volume = name.split(".")
            return self._json({"full_name": name, "catalog_name": catalog, "schema_name": schema, "name": volume,
                               "volume_type": "MANAGED", "storage_location": f"s3://loopback/{name}"})
        if path.startswith("/api/2.0/fs/files/"):
            return self._file(method, path[len("/api/2.0/fs/files"):], query)
        if path.startswith("/api/2.0/fs/directories/"):
            return self._directory(method, path[len("/api/2.0/fs/directories"):].rstrip("/"), query)
        raise Refused(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def _file(self, method: str, fpath: str, query: dict):
        s = self.server
        s.check_path(fpath)
        if method == "PUT":
            data = self._body()
            with s.lock:
                if query.get("overwrite", "false").lower() != "true" and fpath in s.files:
                    raise Refused(409, "ALREADY_EXISTS", f"The file being created already exists: {fpath}")
                s.files[fpath] = data
            return self._send(204, b"")
        if fpath not in s.files:
            raise Refused(404, "NOT_FOUND", f"The file does not exist: {fpath}")
        data = s.files[fpath]
        meta = {"Last-Modified": format_datetime(datetime.now(timezone.utc), usegmt=True)}
        if method == "DELETE":
            with s.lock:
                s.files.pop(fpath, None)
            return self._send(204, b"")
        if method == "HEAD":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Last-Modified", meta["Last-Modified"])
            self.end_headers()
            return None
        rng = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
        if rng:
            start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
            return self._send(206, data[start:end + 1], "application/octet-stream",
                              {**meta, "Content-Range": f"bytes {start}-{end}/{len(data)}"})
        return self._send(200, data, "application/octet-stream", meta)

    def _directory(self, method: str, dpath: str, query: dict):
        s = self.server
        s.check_path(dpath + "/")
        prefix = dpath + "/"
        children: dict[str, Optional[int]] = {}
        for f, data in list(s.files.items()):
            if f.startswith(prefix):
                head, sep, _ = f[len(prefix):].partition("/")
                children[prefix + head] = None if sep else len(data)
        if not children and dpath.count("/") > 4:
            raise Refused(404, "NOT_FOUND", f"The directory does not exist: {dpath}")
        if method == "HEAD":
            return self._send(200, b"")
        if method != "GET":
            raise Refused(405, "INVALID_PARAMETER_VALUE", f"{method} on a directory")
        names = sorted(children)
        start = int(query.get("page_token") or 0)
        size = int(query.get("page_size") or 1000)
        page = names[start:start + size]
        doc = {"contents": [{"path": p + ("/" if children[p] is None else ""), "name": p.rsplit("/", 1)[1],
                             "is_directory": children[p] is None, **({} if children[p] is None else
                                                                    {"file_size": children[p]})} for p in page]}
        if start + size < len(names):
            doc["next_page_token"] = str(start + size)
        return self._json(doc)
