"""A loopback Vertex AI v1 REST server for tests/vertex: custom jobs (run for real, vertex_jobs.py), model
upload, endpoints and deployments, rawPredict. Vertex AI has no emulator; this answers the documented REST
resources and refuses what the service refuses:

- every call needs `Authorization: Bearer` with a token of a service account this server issued a key for
  (vertex_auth.py): 401 UNAUTHENTICATED otherwise;
- every body is parsed into google-cloud-aiplatform's own v1 message with protobuf's json_format, unknown
  fields and wrong types refused; then the fields the REST reference marks Required are checked, and enum
  values must be ones the API defines: 400 INVALID_ARGUMENT in Google's error JSON
  (https://cloud.google.com/apis/design/errors);
- unknown job / endpoint / model / deployed-model ids: 404 NOT_FOUND.

Resources (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/...):
- projects.locations.customJobs (create, get, cancel): CustomJob {displayName Required, jobSpec Required};
  CustomJobSpec.workerPoolSpecs Required, the first pool holds the primary (replicaCount 1,
  https://cloud.google.com/vertex-ai/docs/training/distributed-training); ContainerSpec.imageUri Required;
  MachineSpec.machineType required for a worker pool, accelerators only on the machine families that take them,
  in the counts those machines have (https://cloud.google.com/vertex-ai/docs/training/configure-compute);
  cancel of a job already ended: 400 FAILED_PRECONDITION.
- projects.locations.models/upload: Model.displayName Required, ModelContainerSpec.imageUri Required; a
  regional upload needs its artifacts in a bucket of that region (as issue 12 reported); the container must
  start `serve` (ModelContainerSpec command/args over the image's ENTRYPOINT/CMD: the image's CMD trains).
- projects.locations.endpoints (create, get, delete, deployModel, undeployModel, rawPredict):
  Endpoint.displayName Required; DeployModelRequest.deployedModel Required, DeployedModel.model Required and
  existing, dedicatedResources {machineSpec Required, minReplicaCount Required >= 1, maxReplicaCount >= min};
  trafficSplit keys "0" (the model being deployed) or deployed ids, values summing to 100;
  UndeployModelRequest.deployedModelId Required; an endpoint or model with deployed models is not deleted
  (400 FAILED_PRECONDITION: undeploy every model first, https://cloud.google.com/vertex-ai/docs/predictions/undeploy-model;
  the service's answer for a model, "can't be deleted because it's deployed or being deployed",
  https://github.com/googleapis/python-aiplatform/issues/2807). rawPredict forwards the body to the serving container's predict route.
Long-running operations are returned done.

For the tests: `hold` keeps new jobs queued; `runtime_env` is added to every job's environment (the stand-in
trainer, tests/stand_in); `fail()` makes the next calls of a route answer 503 / 429 or reset the connection."""
from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs

from _faults import GOOGLE, Faults, answer, route
from vertex_auth import ServiceAccounts
from vertex_jobs import TERMINAL, JobRun, container_runs

V1 = "type.googleapis.com/google.cloud.aiplatform.v1."

# machine types for training and serving (configure-compute; https://cloud.google.com/vertex-ai/docs/predictions/configure-compute)
MACHINE_TYPES = re.compile(
    r"^(n1-standard-(2|4|8|16|32|64|96)|n1-highmem-(2|4|8|16|32|64|96)|n1-highcpu-(16|32|64|96)"
    r"|e2-standard-(4|8|16|32)|e2-highmem-(2|4|8|16)|e2-highcpu-(16|32)"
    r"|n2-(standard|highmem)-(2|4|8|16|32|48|64|80)|n2-highcpu-(16|32|48|64|80)|c2-standard-(4|8|16|30|60)"
    r"|a2-highgpu-(1|2|4|8)g|a2-megagpu-16g|a2-ultragpu-(1|2|4|8)g|a3-highgpu-(1|2|4|8)g|a3-megagpu-8g"
    r"|a3-ultragpu-8g|g2-standard-(4|8|12|16|24|32|48|96))$")
N1 = r"n1-(standard|highmem|highcpu)-\d+"
# accelerator → (machine types it attaches to, the counts allowed); None: the count the machine type names
ACCELERATORS = {
    "NVIDIA_TESLA_T4": (N1, {1, 2, 4}), "NVIDIA_TESLA_P4": (N1, {1, 2, 4}), "NVIDIA_TESLA_P100": (N1, {1, 2, 4}),
    "NVIDIA_TESLA_V100": (N1, {1, 2, 4, 8}), "NVIDIA_TESLA_A100": (r"a2-(highgpu-\d+g|megagpu-16g)", None),
    "NVIDIA_A100_80GB": (r"a2-ultragpu-\d+g", None), "NVIDIA_L4": (r"g2-standard-\d+", None),
    "NVIDIA_H100_80GB": (r"a3-highgpu-\d+g", None), "NVIDIA_H100_MEGA_80GB": (r"a3-megagpu-8g", None),
    "NVIDIA_H200_141GB": (r"a3-ultragpu-8g", None),
}
G2_GPUS = {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1, "24": 2, "48": 4, "96": 8}


class Refused(Exception):
    def __init__(self, code: int, status: str, message: str):
        super().__init__(message)
        self.code, self.status = code, status


def invalid(message: str) -> Refused:
    return Refused(400, "INVALID_ARGUMENT", message)


def required(*fields: str) -> Refused:
    """The service's wording for missing Required fields."""
    return invalid("List of found errors:\t" + "\t".join(
        f"{i}.Field: {f}; Message: Required field is not set." for i, f in enumerate(fields, 1)))


def parse(raw: bytes, message_type):
    """The body as the SDK's own (protobuf) message: unknown fields and wrong types are refused."""
    from google.protobuf import json_format

    try:
        return json_format.Parse(raw or b"{}", message_type.pb()(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        unknown = re.search(r'has no field named "([^"]+)"', str(exc))
        if unknown:  # the service's wording for an unknown field
            raise invalid(f'Invalid JSON payload received. Unknown name "{unknown.group(1)}": Cannot find field.') from None
        raise invalid(f"Invalid JSON payload received. {str(exc).splitlines()[0]}") from None


def rest_json(message) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(message)


def enum_name(enum_type, value: int, field: str) -> str:
    """Open proto3 enums parse any number: the service accepts only the values it defines."""
    try:
        return enum_type(value).name
    except ValueError:
        raise invalid(f"Invalid value at '{field}' (type.googleapis.com/{enum_type.__name__}), {value}") from None


def check_machine(machine, field: str) -> None:
    from google.cloud import aiplatform_v1 as v1

    if not machine.machine_type:
        raise required(f"{field}.machine_type")
    if not MACHINE_TYPES.match(machine.machine_type):
        raise invalid(f"Machine type \"{machine.machine_type}\" is not supported.")
    acc = enum_name(v1.AcceleratorType, machine.accelerator_type, f"{field}.accelerator_type")
    if acc == "ACCELERATOR_TYPE_UNSPECIFIED":
        if machine.machine_type.split("-")[0] in ("a2", "a3", "g2"):
            raise invalid(f"Machine type \"{machine.machine_type}\" requires an accelerator.")
        if machine.accelerator_count:
            raise invalid(f"{field}.accelerator_count is set without an accelerator_type.")
        return
    if acc not in ACCELERATORS:
        raise invalid(f"Accelerator \"{acc}\" is not supported for custom training or prediction.")
    family, counts = ACCELERATORS[acc]
    if not re.fullmatch(family, machine.machine_type):
        raise invalid(f"Accelerator \"{acc}\" is not supported for machine type \"{machine.machine_type}\".")
    if counts is None:
        tail = machine.machine_type.rsplit("-", 1)[1]
        counts = {G2_GPUS[tail]} if machine.machine_type.startswith("g2-") else {int(tail.rstrip("g"))}
    if machine.accelerator_count not in counts:
        raise invalid(f"Accelerator count {machine.accelerator_count} is not valid for {acc} on "
                      f"\"{machine.machine_type}\" (valid: {sorted(counts)}).")


def check_custom_job(job) -> None:
    from google.cloud import aiplatform_v1 as v1

    missing = [f for f, ok in (("custom_job.display_name", job.display_name), ("custom_job.job_spec",
                                                                               job.HasField("job_spec"))) if not ok]
    if missing:
        raise required(*missing)
    spec = job.job_spec
    if not spec.worker_pool_specs:
        raise required("custom_job.job_spec.worker_pool_specs")
    for i, pool in enumerate(spec.worker_pool_specs):
        field = f"custom_job.job_spec.worker_pool_specs[{i}]"
        if pool.ByteSize() == 0 and i > 0:
            continue  # "all worker pools except the first one are optional and can be skipped by an empty value"
        if pool.HasField("python_package_spec"):
            raise Refused(501, "UNIMPLEMENTED", "this loopback server runs containerSpec worker pools only")
        if not pool.container_spec.image_uri:
            raise required(f"{field}.container_spec.image_uri")
        check_machine(pool.machine_spec, f"{field}.machine_spec")
        if i == 0 and pool.replica_count > 1:
            raise invalid(f"{field}.replica_count must be 1: the first worker pool is the primary replica.")
    enum_name(v1.Scheduling.Strategy, spec.scheduling.strategy, "custom_job.job_spec.scheduling.strategy")
    prefix = spec.base_output_directory.output_uri_prefix
    if spec.HasField("base_output_directory") and not prefix.startswith("gs://"):
        raise invalid(f"custom_job.job_spec.base_output_directory.output_uri_prefix must be a gs:// URI: {prefix!r}")


class VertexServer(ThreadingHTTPServer):
    """State in memory; `root` holds the jobs' folders. `hold = True`: new jobs wait in JOB_STATE_QUEUED (as
    a job short of quota does) until cancelled."""

    daemon_threads = True

    def __init__(self, root: Path, container_port: Optional[int] = None, predict_route: str = "/predict"):
        self.root, self.container_port, self.predict_route = Path(root), container_port, predict_route
        self.accounts = ServiceAccounts()
        self.jobs: dict[str, JobRun] = {}
        self.models: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.created: list[dict] = []       # customJobs.create bodies, REST JSON as sent
        self.uploads: list[dict] = []       # models.upload bodies
        self.cancelled: list[str] = []
        self.log: list[tuple[str, str]] = []
        self.refused: list[tuple[str, int, str]] = []
        self.hold = False
        # set: a deployModel deploys, sets `deploying`, then answers only once the event is set (a deploy's long wait)
        self.deploy_hold: Optional[threading.Event] = None
        self.deploying = threading.Event()
        self.runtime_env: dict = {}  # added to every job's environment (tests/stand_in: the stand-in trainer)
        self.faults = Faults()  # on (method, /v1/ path): "503" | "429" | "400" | "reset" (fail())
        self.lock = threading.Lock()
        self.counter = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def key_file(self, path: Path) -> Path:
        """A service-account key for GOOGLE_APPLICATION_CREDENTIALS, valid on this server."""
        return self.accounts.key_file(Path(path), f"{self.url}/token")

    def fail(self, method: str, pattern: str, action: str, times: int) -> None:
        """The next `times` calls of `method` on a /v1/ path matching `pattern` fail: "503" (UNAVAILABLE),
        "429" (RESOURCE_EXHAUSTED: a quota's rate), "400" (INVALID_ARGUMENT: not retried) or "reset" (the
        connection closed without an answer), shaped as Google's APIs send them (tests/_faults.py)."""
        self.faults.add(route(method, pattern), action, times)

    def reset(self) -> None:
        """Forget the records between tests (a shared server); running jobs are cancelled first."""
        self.stop_jobs()
        with self.lock:
            for table in (self.jobs, self.models, self.endpoints):
                table.clear()
            for record in (self.created, self.uploads, self.cancelled, self.log, self.refused, self.faults):
                record.clear()
            self.hold = False
            self.deploy_hold = None
            self.deploying.clear()
            self.runtime_env = {}

    def stop_jobs(self) -> None:
        for run in list(self.jobs.values()):
            if run.state not in TERMINAL:
                run.cancel()
        for run in list(self.jobs.values()):
            if run.thread.is_alive():
                run.thread.join(60)

    def close(self) -> None:
        self.stop_jobs()
        self.shutdown()
        self.server_close()

    def next_id(self) -> str:
        self.counter += 1
        return str(self.counter)

    def logs(self, name: str) -> str:
        """What the job's replicas printed (Cloud Logging's part), for a test's failure message."""
        run = self.jobs[name]
        return "\n".join((run.root / f"{r}.log").read_text(errors="replace") for r in run.replicas
                         if (run.root / f"{r}.log").is_file())

    def wait(self, name: str, timeout: float = 300) -> dict:
        """The job's REST JSON once it has ended (for tests that drive it without the launcher)."""
        self.jobs[name].thread.join(timeout)
        return self.jobs[name].describe()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        srv: VertexServer = self.server  # type: ignore[assignment]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        try:
            if path == "/token" and method == "POST":
                return self._token(srv, raw)
            refusal = srv.accounts.refusal(self.headers.get("Authorization"))
            if refusal:
                raise Refused(401, "UNAUTHENTICATED", refusal)
            if not path.startswith("/v1/"):
                raise Refused(404, "NOT_FOUND", f"no route {path}")
            path = path[len("/v1/"):]
            srv.log.append((method, path))
            fault = srv.faults.take(method, path)
            if fault:
                return answer(self, fault, GOOGLE)
            if path.endswith(":rawPredict"):  # outside the lock: predictions in flight at once
                return self._send(200, self._raw_predict(srv, path[: -len(":rawPredict")], raw))
            with srv.lock:
                reply = self._route(srv, method, path, raw)
            if path.endswith(":deployModel") and srv.deploy_hold is not None:  # deployed, its answer held back
                srv.deploying.set()
                srv.deploy_hold.wait(60)
            return self._send(200, reply)
        except Refused as exc:
            srv.refused.append((path, exc.code, str(exc)))
            self._send(exc.code, {"error": {"code": exc.code, "message": str(exc), "status": exc.status}})

    def _token(self, srv: VertexServer, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._send(400, {"error": "unsupported_grant_type"})
        issued = srv.accounts.issue(form.get("assertion", ""))
        if issued is None:
            return self._send(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        self._send(200, issued)

    # ------------------------------------------------------------------ routes
    def _route(self, srv: VertexServer, method: str, path: str, raw: bytes) -> dict:
        parent = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/(customJobs|endpoints|models:upload)", path)
        if parent and method == "POST":
            where, what = parent.groups()
            return {"customJobs": self._create_job, "endpoints": self._create_endpoint,
                    "models:upload": self._upload_model}[what](srv, where, raw)
        verb = re.fullmatch(r"(projects/[^/]+/locations/[^/]+/(customJobs|endpoints|models)/[^/:]+)(:\w+)?", path)
        if not verb:
            raise Refused(404, "NOT_FOUND", f"no route {method} {path}")
        name, kind, action = verb.groups()
        table = {"customJobs": srv.jobs, "endpoints": srv.endpoints, "models": srv.models}[kind]
        if name not in table:
            raise Refused(404, "NOT_FOUND", f"{kind[:-1]} {name} not found")
        if kind == "customJobs":
            if method == "GET" and not action:
                return srv.jobs[name].describe()
            if method == "POST" and action == ":cancel":
                return self._cancel_job(srv, name, raw)
        if kind == "endpoints" and method == "POST" and action in (":deployModel", ":undeployModel"):
            return (self._deploy if action == ":deployModel" else self._undeploy)(srv, name, raw)
        if method == "GET" and not action:
            return self._describe(kind, table[name])
        if method == "DELETE" and not action:
            return self._delete(srv, kind, name)
        raise Refused(404, "NOT_FOUND", f"no route {method} {path}")

    @staticmethod
    def _op(name: str, response: dict, type_name: str) -> dict:
        return {"name": f"{name}/operations/{int(time.time() * 1000)}", "done": True,
                "response": {"@type": type_name if "/" in type_name else V1 + type_name, **response}}

    # ------------------------------------------------------------------ custom jobs
    def _create_job(self, srv: VertexServer, parent: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        job = parse(raw, v1.CustomJob)
        check_custom_job(job)
        srv.created.append(json.loads(raw))
        name = f"{parent}/customJobs/{srv.next_id()}"
        doc = {k: v for k, v in rest_json(job).items() if k in ("displayName", "jobSpec", "labels")}
        run = JobRun(name, doc, srv.root / "customJobs" / name.rsplit("/", 1)[1], hold=srv.hold,
                     runtime_env=srv.runtime_env)
        run.root.mkdir(parents=True)
        srv.jobs[name] = run
        run.start()
        return run.describe()

    def _cancel_job(self, srv: VertexServer, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        parse(raw, v1.CancelCustomJobRequest)
        run = srv.jobs[name]
        if run.state in TERMINAL or run.state == "JOB_STATE_CANCELLING":
            raise Refused(400, "FAILED_PRECONDITION", f"Cannot cancel {name}: it is {run.state}.")
        srv.cancelled.append(name)
        run.cancel()
        return {}

    # ------------------------------------------------------------------ models and endpoints
    def _upload_model(self, srv: VertexServer, parent: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1
        from google.cloud import storage

        req = parse(raw, v1.UploadModelRequest)
        if not req.HasField("model"):
            raise required("model")
        model = req.model
        if not model.display_name:
            raise required("model.display_name")
        if model.HasField("container_spec") and not model.container_spec.image_uri:
            raise required("model.container_spec.image_uri")
        srv.uploads.append(json.loads(raw))
        region = parent.split("/")[3]
        if model.artifact_uri:
            bucket = model.artifact_uri[len("gs://"):].split("/")[0]
            where = (storage.Client(project="test").get_bucket(bucket).location or "").lower()
            if where != region:
                raise invalid(f"bucket {bucket} is in {where}, not in {region}")
        runs = container_runs(rest_json(model.container_spec))
        if not runs or runs[0].rsplit("/", 1)[-1] != "serve":
            raise invalid(f"the serving container would run {runs}, not `serve` (it would never become healthy)")
        name = f"{parent}/models/{srv.next_id()}"
        srv.models[name] = {"name": name, "displayName": model.display_name}
        return self._op(name, {"model": name}, "UploadModelResponse")

    def _create_endpoint(self, srv: VertexServer, parent: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        ep = parse(raw, v1.Endpoint)
        if not ep.display_name:
            raise required("endpoint.display_name")
        name = f"{parent}/endpoints/{100 + int(srv.next_id())}"
        srv.endpoints[name] = {"name": name, "displayName": ep.display_name, "deployed": {}, "traffic": {}}
        return self._op(name, self._describe("endpoints", srv.endpoints[name]), "Endpoint")

    def _deploy(self, srv: VertexServer, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        req = parse(raw, v1.DeployModelRequest)
        if not req.HasField("deployed_model"):
            raise required("deployed_model")
        dm = req.deployed_model
        if not dm.model:
            raise required("deployed_model.model")
        if dm.model not in srv.models:
            raise Refused(404, "NOT_FOUND", f"Model {dm.model} not found.")
        if not dm.HasField("dedicated_resources"):
            raise invalid(f"Model {dm.model} has a custom container: it is deployed on dedicated_resources.")
        res = dm.dedicated_resources
        if not res.HasField("machine_spec"):
            raise required("deployed_model.dedicated_resources.machine_spec")
        check_machine(res.machine_spec, "deployed_model.dedicated_resources.machine_spec")
        if res.min_replica_count < 1:
            raise required("deployed_model.dedicated_resources.min_replica_count")
        if res.max_replica_count and res.max_replica_count < res.min_replica_count:
            raise invalid("max_replica_count must not be less than min_replica_count.")
        ep = srv.endpoints[name]
        split = dict(req.traffic_split)
        if split and (sum(split.values()) != 100 or set(split) - {"0"} - set(ep["deployed"])):
            raise invalid(f"traffic_split {split} must name the new model (\"0\") or deployed ones and sum to 100.")
        dep_id = str(7000 + int(srv.next_id()))
        ep["deployed"][dep_id] = {"id": dep_id, "model": dm.model, "displayName": dm.display_name}
        ep["traffic"] = {(dep_id if k == "0" else k): v for k, v in split.items()} or {dep_id: 100}
        return self._op(name, {"deployedModel": ep["deployed"][dep_id]}, "DeployModelResponse")

    def _undeploy(self, srv: VertexServer, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        req = parse(raw, v1.UndeployModelRequest)
        if not req.deployed_model_id:
            raise required("deployed_model_id")
        ep = srv.endpoints[name]
        if req.deployed_model_id not in ep["deployed"]:
            raise Refused(404, "NOT_FOUND", f"Deployed model {req.deployed_model_id} not found on {name}.")
        del ep["deployed"][req.deployed_model_id]
        ep["traffic"].pop(req.deployed_model_id, None)
        return self._op(name, {}, "UndeployModelResponse")

    def _describe(self, kind: str, x: dict) -> dict:
        if kind == "endpoints":
            return {"name": x["name"], "displayName": x["displayName"], "deployedModels": list(x["deployed"].values()),
                    "trafficSplit": x["traffic"]}
        return dict(x)

    def _delete(self, srv: VertexServer, kind: str, name: str) -> dict:
        if kind == "customJobs":
            raise Refused(404, "NOT_FOUND", "this loopback server does not delete custom jobs")
        if kind == "endpoints" and srv.endpoints[name]["deployed"]:
            raise Refused(400, "FAILED_PRECONDITION", f"Endpoint {name} has deployed models; undeploy them first.")
        if kind == "models" and any(d["model"] == name for e in srv.endpoints.values() for d in e["deployed"].values()):
            raise Refused(400, "FAILED_PRECONDITION", f"Model {name} is deployed; undeploy it first.")
        del {"endpoints": srv.endpoints, "models": srv.models}[kind][name]
        return self._op(name, {}, "type.googleapis.com/google.protobuf.Empty")

    def _raw_predict(self, srv: VertexServer, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        req = parse(raw, v1.RawPredictRequest)
        ep = srv.endpoints.get(name)
        if ep is None:
            raise Refused(404, "NOT_FOUND", f"endpoint {name} not found")
        if not ep["deployed"]:
            raise Refused(400, "FAILED_PRECONDITION", "no model deployed")
        conn = http.client.HTTPConnection("127.0.0.1", srv.container_port, timeout=60)
        try:
            conn.request("POST", srv.predict_route, body=req.http_body.data,
                         headers={"Content-Type": req.http_body.content_type})
            resp = conn.getresponse()
            status, ctype, data = resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()
        if status != 200:
            raise Refused(status, "INVALID_ARGUMENT" if status < 500 else "INTERNAL", data.decode(errors="replace"))
        return {"contentType": ctype, "data": base64.b64encode(data).decode()}
