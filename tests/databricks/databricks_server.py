"""A loopback Databricks workspace for the tests: HTTP on 127.0.0.1 answering the REST resources databricks-sdk
calls for platbench (https://docs.databricks.com/api/workspace/introduction): clusters list-node-types,
spark-versions and events; jobs runs/submit, runs/get, runs/get-output, runs/cancel; Unity Catalog volumes
get; the Files API (PUT/GET/HEAD/DELETE /api/2.0/fs/files{path}, GET /api/2.0/fs/directories{path}).
Databricks has no emulator; this server is written from the REST reference and the SDK's own dataclasses.

What makes it a stand-in and not a yes-machine:
- a request without the bearer token it was given is a 401; errors come in the API's shape
  ({"error_code", "message"}), which the SDK maps to its own exceptions;
- every request body and query string is checked against the SDK's own annotations of the method that sends it
  and of the dataclasses in it (request_checks.py): an unknown field, a missing required one, a value of the
  wrong type or an enum value the API lacks is a 400 INVALID_PARAMETER_VALUE; unknown node types and runtimes are
  refused as the service refuses them;
- a file outside an existing volume is 404 (the volume must exist), overwrite=false on an existing file 409;
  the workspace's files are real files (WorkspaceFiles), so a job sees at /Volumes what the Files API serves;
- a submitted run runs as Databricks documents it (job_cluster.py: libraries installed into the cluster's
  environment, the task's Python on its parameters, /Volumes mounted), never through platbench's own code, with
  the run states, durations, driver log, run output and cluster events a real run reports.

The SDK is pointed here with its own settings: DATABRICKS_HOST (this server's URL) and DATABRICKS_TOKEN
(personal-access-token auth)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import MutableMapping
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from _faults import DATABRICKS, Faults, answer, route
from job_cluster import TaskRun
from request_checks import body_problems, query_problems

NODE_TYPES = [  # (id, cores, memory MB, GPUs)
    ("g4dn.xlarge", 4, 16384, 1), ("g5.xlarge", 4, 16384, 1), ("p3.2xlarge", 8, 62464, 1),
    ("i3.xlarge", 4, 31232, 0), ("m5d.large", 2, 8192, 0)]
RUNTIMES = ["16.4.x-gpu-ml-scala2.12", "16.4.x-cpu-ml-scala2.12", "15.4.x-gpu-ml-scala2.12", "16.4.x-scala2.12"]


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def refuse_problems(problems: list[str]) -> None:
    if problems:
        raise Refused(400, "INVALID_PARAMETER_VALUE", "; ".join(problems))


class WorkspaceFiles(MutableMapping):
    """The workspace's files (volumes, model versions) by API path, kept as real files under `root`:
    /Volumes/c/s/v/x is root/Volumes/c/s/v/x, which is what a job's /Volumes mount shows. A write lands whole
    (a hidden partial file renamed into place), as a Files API PUT does."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not key.startswith("/") or ".." in key.split("/"):
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"{key} is not an absolute path")
        return self.root / key.lstrip("/")

    def __getitem__(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, data: bytes) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}.partial")
        tmp.write_bytes(data)
        os.replace(tmp, p)

    def __delitem__(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyError(key) from None

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and self.path(key).is_file()

    def __iter__(self) -> Iterator[str]:
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.endswith(".partial"):
                    yield "/" + str(Path(folder, name).relative_to(self.root))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# ------------------------------------------------------------------------------------------ serving
# MLflow's Unity Catalog registry (its REST routes and protobuf request messages) and Model Serving.
UC_REGISTRY = {  # route → request message in mlflow.protos.databricks_uc_registry_messages_pb2
    ("POST", "/api/2.0/mlflow/unity-catalog/registered-models/create"): "CreateRegisteredModelRequest",
    ("GET", "/api/2.0/mlflow/unity-catalog/registered-models/get"): "GetRegisteredModelRequest",
    ("POST", "/api/2.0/mlflow/unity-catalog/model-versions/create"): "CreateModelVersionRequest",
    ("POST", "/api/2.0/mlflow/unity-catalog/model-versions/finalize"): "FinalizeModelVersionRequest",
    ("GET", "/api/2.0/mlflow/unity-catalog/model-versions/get"): "GetModelVersionRequest",
    ("GET", "/api/2.0/mlflow/unity-catalog/registered-models:is-databricks-sdk-models-artifact-repository-enabled"):
        "IsDatabricksSdkModelsArtifactRepositoryEnabledRequest",
}


def parse_message(name: str, doc: dict):
    """The request as MLflow's own protobuf message: an unknown field or a wrong type is a 400."""
    from google.protobuf import json_format
    from mlflow.protos import databricks_uc_registry_messages_pb2 as messages

    try:
        return json_format.ParseDict(doc, getattr(messages, name)())
    except json_format.ParseError as exc:
        raise Refused(400, "INVALID_PARAMETER_VALUE", f"{name}: {exc}") from None


class _Serving:
    def __init__(self, name: str, entity: dict):
        self.name, self.entity = name, entity
        self.proc = None
        self.port: Optional[int] = None
        self.failed: Optional[str] = None
        self.root: Optional[str] = None
        self.deleted = False
        self.lock = threading.Lock()  # deleting and starting the server process exclude each other


def _serving_routes(handler, method: str, path: str, query: dict) -> bool:
    """Model Serving, the MLflow UC registry and the UC models API; False when the path is none of them."""
    s: DatabricksServer = handler.server
    if (method, path) in UC_REGISTRY:
        body = json.loads(handler._body() or b"{}") if method == "POST" else dict(query)
        msg = parse_message(UC_REGISTRY[(method, path)], body)
        handler._json(s.uc_registry(UC_REGISTRY[(method, path)], msg))
        return True
    m = re.match(r"^/api/2\.1/unity-catalog/schemas/([^/]+)$", path)
    if m and method == "GET":
        if m.group(1) not in s.schemas:
            raise Refused(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{m.group(1)}' does not exist.")
        catalog, schema = m.group(1).split(".")
        handler._json({"full_name": m.group(1), "catalog_name": catalog, "name": schema})
        return True
    m = re.match(r"^/api/2\.1/unity-catalog/models/([^/]+)(?:/versions/(\d+))?$", path)
    if m:
        full, version = m.group(1), m.group(2)
        model = s.models.get(full)
        if model is None or (version and int(version) not in model["versions"]):
            raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Model '{full}'{' version ' + version if version else ''} "
                                                          "does not exist.")
        if method == "GET" and not version:
            catalog, schema, name = full.split(".")
            handler._json({"full_name": full, "catalog_name": catalog, "schema_name": schema, "name": name})
        elif method == "DELETE":
            with s.lock:
                if version:
                    model["versions"].pop(int(version))
                    prefix = f"/Models/{full.replace('.', '/')}/{version}/"
                else:
                    s.models.pop(full)
                    prefix = f"/Models/{full.replace('.', '/')}/"
                for f in [f for f in s.files if f.startswith(prefix)]:
                    s.files.pop(f)
            handler._json({})
        else:
            raise Refused(405, "INVALID_PARAMETER_VALUE", f"{method} {path}")
        return True
    if method == "POST" and path == "/api/2.0/serving-endpoints":
        handler._json(s.create_endpoint(json.loads(handler._body() or b"{}")))
        return True
    m = re.match(r"^/api/2\.0/serving-endpoints/([^/]+)$", path)
    if m:
        ep = s.endpoints.get(m.group(1))
        if ep is None:
            raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint '{m.group(1)}' does not exist.")
        if method == "GET":
            handler._json(s.describe_endpoint(ep))
        elif method == "DELETE":
            s.delete_endpoint(ep)
            handler._json({})
        return True
    m = re.match(r"^/serving-endpoints/([^/]+)/invocations$", path)
    if m and method == "POST":
        s.invoke(handler, m.group(1))
        return True
    return False


class ServingWorkspace:
    """Model Serving and the Unity Catalog model registry of the loopback workspace."""

    def _serving_state(self) -> None:
        self.schemas: set[str] = set()
        self.models: dict[str, dict] = {}
        self.endpoints: dict[str, _Serving] = {}

    def uc_registry(self, kind: str, msg) -> dict:
        def version_doc(full: str, v: int) -> dict:
            return {"name": full, "version": str(v), "status": self.models[full]["versions"][v],
                    "storage_location": f"s3://loopback/models/{full}/{v}"}

        if kind == "IsDatabricksSdkModelsArtifactRepositoryEnabledRequest":
            return {"is_databricks_sdk_models_artifact_repository_enabled": True}
        name = msg.name
        schema = name.rsplit(".", 1)[0]
        if schema not in self.schemas:
            raise Refused(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{schema}' does not exist.")
        with self.lock:
            if kind == "CreateRegisteredModelRequest":
                if name in self.models:
                    raise Refused(409, "RESOURCE_ALREADY_EXISTS", f"Registered model '{name}' already exists.")
                self.models[name] = {"versions": {}, "next": 1}
                return {"registered_model": {"name": name}}
            model = self.models.get(name)
            if model is None:
                raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
            if kind == "GetRegisteredModelRequest":
                return {"registered_model": {"name": name}}
            if kind == "CreateModelVersionRequest":
                v = model["next"]
                model["next"] += 1
                model["versions"][v] = "PENDING_REGISTRATION"
                return {"model_version": version_doc(name, v)}
            v = int(msg.version)
            if v not in model["versions"]:
                raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {name}/{v} does not exist.")
            if kind == "FinalizeModelVersionRequest":
                if not any(f.startswith(f"/Models/{name.replace('.', '/')}/{v}/") and f.endswith("/MLmodel")
                           for f in self.files):
                    raise Refused(400, "INVALID_PARAMETER_VALUE", "the model version's files hold no MLmodel")
                model["versions"][v] = "READY"
            return {"model_version": version_doc(name, v)}

    def create_endpoint(self, body: dict) -> dict:
        from databricks.sdk.service.serving import ServingEndpointsAPI

        # https://docs.databricks.com/api/workspace/servingendpoints/create; config is the SDK's
        # EndpointCoreConfigInput, whose required `name` is update-config's path parameter: create's body need not
        # repeat it, so its absence is not refused here
        refuse_problems([p for p in body_problems(ServingEndpointsAPI.create, body) if p != "config.name: required"])
        name = body.get("name") or ""
        if name in self.endpoints:
            raise Refused(409, "RESOURCE_ALREADY_EXISTS", f"Endpoint with name '{name}' already exists.")
        entities = (body.get("config") or {}).get("served_entities") or []
        if len(entities) != 1:
            raise Refused(400, "INVALID_PARAMETER_VALUE", "this workspace serves one entity per endpoint")
        entity = entities[0]
        model = self.models.get(entity.get("entity_name"))
        version = int(entity.get("entity_version") or 0)
        if model is None or model["versions"].get(version) != "READY":
            raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {entity.get('entity_name')}/{version} "
                                                          "does not exist or is not READY.")
        ep = _Serving(name, entity)
        self.endpoints[name] = ep
        threading.Thread(target=self._start_serving, args=(ep,), daemon=True).start()
        return self.describe_endpoint(ep)

    def _start_serving(self, ep: _Serving) -> None:
        """What Model Serving runs for a pyfunc model: MLflow's scoring server on the version's files."""
        import os
        import socket
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        prefix = f"/Models/{ep.entity['entity_name'].replace('.', '/')}/{ep.entity['entity_version']}/"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        bindir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        with ep.lock:
            if ep.deleted:
                return
            root = Path(tempfile.mkdtemp(prefix="platbench-serving-"))
            ep.root = str(root)
            for f in [f for f in self.files if f.startswith(prefix)]:
                (root / "model" / f[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
                (root / "model" / f[len(prefix):]).write_bytes(self.files[f])
            ep.proc = subprocess.Popen([str(Path(bindir) / "mlflow"), "models", "serve", "-m", str(root / "model"),
                                        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                                       stdout=(root / "serve.log").open("w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.monotonic() + 240
        import http.client

        while time.monotonic() < deadline and ep.proc.poll() is None and not ep.deleted:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    ep.port = port
                    return
            except OSError:
                pass
            time.sleep(0.25)
        with ep.lock:
            if not ep.deleted:
                ep.failed = (root / "serve.log").read_text(errors="replace")[-500:] or "the server exited"

    def describe_endpoint(self, ep: _Serving) -> dict:
        ready = "READY" if ep.port else "NOT_READY"
        update = "UPDATE_FAILED" if ep.failed else ("NOT_UPDATING" if ep.port else "IN_PROGRESS")
        return {"name": ep.name, "state": {"ready": ready, "config_update": update},
                "config": {"served_entities": [{**ep.entity, "name": ep.entity["entity_name"].split(".")[-1]}]}}

    def delete_endpoint(self, ep: _Serving) -> None:
        import os
        import shutil

        self.endpoints.pop(ep.name, None)
        with ep.lock:
            ep.deleted = True
            if ep.proc is not None and ep.proc.poll() is None:
                os.killpg(ep.proc.pid, 15)
                try:
                    ep.proc.wait(20)
                except Exception:  # noqa: BLE001
                    os.killpg(ep.proc.pid, 9)
                    ep.proc.wait(10)
            if ep.root:
                shutil.rmtree(ep.root, ignore_errors=True)

    def invoke(self, handler, name: str) -> None:
        import http.client

        body = handler._body()
        ep = self.endpoints.get(name)
        if ep is None:
            raise Refused(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint '{name}' does not exist.")
        if not ep.port:
            raise Refused(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint '{name}' is not ready.")
        if not (handler.headers.get("Content-Type") or "").startswith("application/json"):
            raise Refused(400, "BAD_REQUEST", "the request body must be JSON (dataframe_split, dataframe_records, "
                                              "instances or inputs)")
        conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=60)
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        handler._send(resp.status, resp.read(), resp.getheader("Content-Type") or "application/json")



class DatabricksServer(ServingWorkspace, ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Optional[Path] = None):
        """`root`: where the workspace keeps its files and its job clusters' scratch (a fresh temporary folder
        when not given; removed by close() then)."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = "dapi" + secrets.token_hex(16)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="platbench-dbx-ws-")) if root is None else Path(root)
        self.volumes: set[str] = set()
        self.files = WorkspaceFiles(self.root / "files")
        self.runs: dict[int, TaskRun] = {}
        self.events: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.runtime_env: dict[str, str] = {}  # added to every run's environment (tests/stand_in: the stand-in)
        self.faults = Faults()  # on (method, path): fail()
        self.lock = threading.Lock()
        self._serving_state()
        self._next = 1000
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def create_volume(self, full_name: str) -> str:
        self.volumes.add(full_name)
        self.schemas.add(full_name.rsplit(".", 1)[0])
        path = "/Volumes/" + full_name.replace(".", "/")
        self.files.path(path).mkdir(parents=True, exist_ok=True)  # a volume is a folder in the /Volumes mount
        return path

    def fail(self, method: str, pattern: str, action: str, times: int) -> None:
        """The next `times` requests of `method` on a path matching `pattern` fail: "503" (TEMPORARILY_UNAVAILABLE),
        "429" (REQUEST_LIMIT_EXCEEDED), both with Retry-After, or "reset" (the connection closed without an
        answer) (tests/_faults.py)."""
        self.faults.add(route(method, pattern), action, times)

    def env(self) -> dict[str, str]:
        return {"DATABRICKS_HOST": self.url, "DATABRICKS_TOKEN": self.token}

    def close(self) -> None:
        for ep in list(self.endpoints.values()):
            self.delete_endpoint(ep)
        for run in list(self.runs.values()):
            run.close()
        self.shutdown()
        self.server_close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---------------------------------------------------------------- jobs
    def submit(self, body: dict) -> dict:
        """POST /api/2.2/jobs/runs/submit (https://docs.databricks.com/api/workspace/jobs/submit)."""
        from databricks.sdk.service.jobs import JobsAPI

        problems = body_problems(JobsAPI.submit, body)
        tasks = body.get("tasks") or []
        if len(tasks) != 1:
            problems.append("this workspace runs one-task submits only")
        refuse_problems(problems)
        task = tasks[0]
        wheel_task = task.get("python_wheel_task") or {}
        if wheel_task.get("parameters") and wheel_task.get("named_parameters"):  # "Leave it empty if … is not null"
            raise Refused(400, "INVALID_PARAMETER_VALUE", "python_wheel_task: parameters and named_parameters "
                                                          "cannot both be set")
        if not {"spark_python_task", "python_wheel_task"} & set(task):
            raise Refused(400, "INVALID_PARAMETER_VALUE", "this workspace runs spark_python_task and "
                                                          "python_wheel_task tasks only")
        if "new_cluster" not in task:
            raise Refused(400, "INVALID_PARAMETER_VALUE", "this workspace runs tasks on a new job cluster only")
        cluster = task["new_cluster"]
        if cluster.get("node_type_id") not in {n[0] for n in NODE_TYPES}:
            raise Refused(400, "INVALID_PARAMETER_VALUE",
                          f"Node type {cluster.get('node_type_id')} is not supported. Supported node types: "
                          + ", ".join(n[0] for n in NODE_TYPES))
        if cluster.get("spark_version") not in RUNTIMES:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Invalid spark version {cluster.get('spark_version')}.")
        with self.lock:
            token = body.get("idempotency_token")
            # "If a run with the provided token already exists, the request does not create a new run but returns
            # the ID of the existing run" (jobs.submit, https://docs.databricks.com/api/workspace/jobs/submit)
            for run in self.runs.values():
                if token and run.task.get("_token") == token:
                    return {"run_id": run.run_id}
            self._next += 2
            scratch = self.root / "clusters" / str(self._next)
            scratch.mkdir(parents=True)
            run = TaskRun(self._next, body.get("run_name") or "Untitled", {**task, "_token": token},
                          int(body.get("timeout_seconds") or 0), self.files.path("/Volumes"), scratch,
                          f"0101-{self._next:06d}-loopback", self.event,
                          runtime_env=self.runtime_env)
            self.runs[run.run_id] = run
        run.begin()
        return {"run_id": run.run_id}

    def event(self, cluster_id: str, kind: str) -> None:
        self.events.setdefault(cluster_id, []).append({"cluster_id": cluster_id, "type": kind,
                                                       "timestamp": int(time.time() * 1000)})

    def get_run(self, run_id: int) -> dict:
        run = self.runs.get(run_id)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return run.describe()

    def output(self, task_run_id: int) -> dict:
        """runs/get-output takes a task's run id (https://docs.databricks.com/api/workspace/jobs/getrunoutput)."""
        if task_run_id in self.runs:
            raise Refused(400, "INVALID_PARAMETER_VALUE", "Retrieving the output of runs with multiple tasks is not "
                                                          "supported. Please retrieve the output of each individual "
                                                          "task run instead.")
        run = self.runs.get(task_run_id - 1)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {task_run_id} does not exist.")
        return run.output()

    def cancel(self, run_id: int) -> None:
        run = self.runs.get(run_id)
        if run is None:
            raise Refused(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        threading.Thread(target=run.stop, daemon=True).start()

    # ---------------------------------------------------------------- files
    def check_path(self, path: str) -> None:
        m = re.match(r"^/Models/([^/]+)/([^/]+)/([^/]+)/(\d+)/", path)
        if m:  # a model version's files (MLflow's Databricks SDK artifact repository writes them here)
            model = self.models.get(".".join(m.groups()[:3]))
            if model is None or int(m.group(4)) not in model["versions"]:
                raise Refused(404, "NOT_FOUND", f"No model version at {path}")
            return
        volume = _volume_of(path)
        if volume not in self.volumes:
            raise Refused(404, "NOT_FOUND", f"Volume '{volume}' does not exist.")


# route → the SDK method that sends it, whose parameters (and their dataclasses) the request is checked against
# (REST reference: https://docs.databricks.com/api/workspace/jobs/submit, …/jobs/getrun, …/jobs/getrunoutput,
# …/jobs/cancelrun, …/clusters/events)
CHECKED = {
    ("POST", "/api/2.2/jobs/runs/submit"): "jobs:JobsAPI.submit",
    ("GET", "/api/2.2/jobs/runs/get"): "jobs:JobsAPI.get_run",
    ("GET", "/api/2.2/jobs/runs/get-output"): "jobs:JobsAPI.get_run_output",
    ("POST", "/api/2.2/jobs/runs/cancel"): "jobs:JobsAPI.cancel_run",
    ("POST", "/api/2.1/clusters/events"): "compute:ClustersAPI.events",
}


# the Files API (https://docs.databricks.com/api/workspace/files): the FilesAPI method of each HTTP method
FILES_API = {"PUT": "files:FilesAPI.upload", "GET": "files:FilesAPI.download", "HEAD": "files:FilesAPI.get_metadata",
             "DELETE": "files:FilesAPI.delete"}
DIRECTORIES_API = {"GET": "files:FilesAPI.list_directory_contents", "HEAD": "files:FilesAPI.get_directory_metadata"}


def sdk_method(name: str):
    """"module:Class.method" of databricks.sdk.service → the function."""
    import importlib

    module, qual = name.split(":")
    cls, fn = qual.split(".")
    return getattr(getattr(importlib.import_module(f"databricks.sdk.service.{module}"), cls), fn)


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
            fault = s.faults.take(self.command, path)
            if fault:
                self._body()
                return answer(self, fault, DATABRICKS)
            self._route(self.command, path, query)
        except Refused as exc:
            self._json({"error_code": exc.code, "message": exc.message}, exc.status)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _json_body(self) -> dict:
        try:
            doc = json.loads(self._body() or b"{}")
        except ValueError:
            raise Refused(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request") from None
        return doc

    def _checked(self, method: str, path: str, query: dict) -> Optional[dict]:
        """The request checked against the SDK method that sends it (CHECKED); its JSON body, if it has one."""
        sdk = CHECKED.get((method, path))
        if sdk is None:
            return None
        api = sdk_method(sdk)
        if method in ("GET", "HEAD", "DELETE"):
            refuse_problems(query_problems(api, query))
            return None
        body = self._json_body()
        refuse_problems(body_problems(api, body))
        return body

    def _route(self, method: str, path: str, query: dict):
        s = self.server
        if _serving_routes(self, method, path, query):
            return None
        body = self._checked(method, path, query)
        if method == "GET" and path == "/api/2.1/clusters/list-node-types":
            return self._json({"node_types": [
                {"node_type_id": n, "instance_type_id": n, "num_cores": c, "memory_mb": m, "num_gpus": g,
                 "description": n, "category": "GPU Accelerated" if g else "General Purpose"}
                for n, c, m, g in NODE_TYPES]})
        if method == "GET" and path == "/api/2.1/clusters/spark-versions":
            return self._json({"versions": [{"key": k, "name": k} for k in RUNTIMES]})
        if method == "POST" and path == "/api/2.1/clusters/events":
            events = s.events.get(body["cluster_id"], [])
            return self._json({"events": events, "total_count": len(events)})
        if method == "POST" and path == "/api/2.2/jobs/runs/submit":
            return self._json(s.submit(body))
        if method == "GET" and path == "/api/2.2/jobs/runs/get":
            return self._json(s.get_run(int(query["run_id"])))
        if method == "GET" and path == "/api/2.2/jobs/runs/get-output":
            return self._json(s.output(int(query["run_id"])))
        if method == "POST" and path == "/api/2.2/jobs/runs/cancel":
            s.cancel(int(body["run_id"]))
            return self._json({})
        m = re.match(r"^/api/2\.1/unity-catalog/volumes/([^/]+)$", path)
        if method == "GET" and m:
            name = m.group(1)
            if name not in s.volumes:
                raise Refused(404, "NOT_FOUND", f"Volume '{name}' does not exist.")
            catalog, schema, volume = name.split(".")
            return self._json({"full_name": name, "catalog_name": catalog, "schema_name": schema, "name": volume,
                               "volume_type": "MANAGED", "storage_location": f"s3://loopback/{name}"})
        if path.startswith("/api/2.0/fs/files/") and method in FILES_API:
            refuse_problems(query_problems(sdk_method(FILES_API[method]), query))
            return self._file(method, path[len("/api/2.0/fs/files"):], query)
        if path.startswith("/api/2.0/fs/directories/") and method in DIRECTORIES_API:
            refuse_problems(query_problems(sdk_method(DIRECTORIES_API[method]), query))
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
        folder = s.files.path(dpath)
        if not folder.is_dir():  # a volume's folders are real: created by an upload below them, or by a job
            raise Refused(404, "NOT_FOUND", f"The directory does not exist: {dpath}")
        children = {f"{dpath}/{p.name}": (None if p.is_dir() else p.stat().st_size) for p in folder.iterdir()
                    if not p.name.endswith(".partial")}
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
