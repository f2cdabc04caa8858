"""A loopback Azure Machine Learning control plane for the tests: HTTPS on 127.0.0.1 answering the ARM REST
resources azure-ai-ml calls (https://learn.microsoft.com/rest/api/azureml/): workspace, computes, VM sizes,
datastores, environment and model versions, command jobs (create / get / list / cancel as a long-running
operation), managed online endpoints and deployments (create / get / delete with Azure-AsyncOperation and
Location polling, listKeys) and the endpoints' scoring URIs. Azure ML has no emulator; this server is
written from the REST reference and nothing more.

What makes it a stand-in and not a yes-machine:
- every request body is checked against the SDK's own REST models for the api-version it names
  (azure.ai.ml._restclient.<version>.models: unknown fields, wrong types, unknown enum values, missing
  required fields and unknown polymorphic types are a 400), and the SDK deserializes every answer;
- it refuses what the service would: a missing workspace, compute, environment, datastore, model or
  endpoint is a 404 in ARM's error shape ({"error": {"code", "message"}}), a VM size the region does not
  offer a 400, a request without the bearer token it issued a 401;
- a command job runs as Azure ML runs it, written from Azure ML's documentation in azureml_jobs.py (which
  imports nothing of platforms/): the command with ${{inputs.NAME}} / ${{outputs.NAME}} replaced, the
  datastore paths downloaded before and outputs written back to Azurite after it, environment_variables and
  Azure ML's own variables set, and with distribution pytorch every rank of every node started with
  MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, RANK and LOCAL_RANK (nodes are folders on this machine, the
  master 127.0.0.1), so trainer/environment.py's reading of that contract meets an independent statement of it;
- a deployment runs: the container its environment's image would start, under Azure ML's custom-container
  contract (the inference_config port and routes, AZUREML_MODEL_DIR with the registered model mounted).

The SDK is pointed here with its own settings: ARM_CLOUD_METADATA_URL (this server's /metadata/endpoints,
a cloud whose resourceManager is this server) and AZUREML_CURRENT_CLOUD. The token comes through the real
DefaultAzureCredential: its ManagedIdentityCredential reads IDENTITY_ENDPOINT/IDENTITY_HEADER, the App
Service managed-identity protocol (https://learn.microsoft.com/azure/app-service/overview-managed-identity
#rest-endpoint-reference), which this server answers. The self-signed certificate is trusted through
REQUESTS_CA_BUNDLE (azure-core's requests transport). The scoring URIs it hands out are plain HTTP on a
second loopback listener (the real ones are HTTPS; aiohttp fixes its trust store at import)."""
from __future__ import annotations

import datetime as dt
import importlib
import ipaddress
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from _faults import AZURE_ARM, Faults, answer, route

PROVIDER = "/providers/Microsoft.MachineLearningServices"
WS = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)" + PROVIDER + r"/workspaces/(?P<ws>[^/]+)"
VM_SIZES = {"Standard_D4s_v3": (4, 0), "Standard_DS3_v2": (4, 0), "Standard_NC4as_T4_v3": (4, 1),
            "Standard_NV36ads_A10_v5": (36, 1), "Standard_NC24ads_A100_v4": (24, 1)}
_BASIC = {"str": str, "int": int, "long": int, "float": (int, float), "bool": bool, "iso-8601": str,
          "duration": str, "bytearray": str, "date": str, "unix-time": int}


# ------------------------------------------------------------------------------------------ TLS
def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "loopback.pem", folder / "loopback.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# ------------------------------------------------------------------------------------------ validation
def models_for(api_version: str):
    return importlib.import_module("azure.ai.ml._restclient.v" + api_version.replace("-", "_") + ".models")


def problems(models, type_name: str, value: Any, where: str) -> list[str]:
    """What the REST model `type_name` (msrest) refuses in `value`: strict, unlike msrest's own lenient
    deserializer, which drops unknown fields silently."""
    if value is None:
        return []
    if type_name.startswith("[") and type_name.endswith("]"):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, v in enumerate(value) for p in problems(models, type_name[1:-1], v, f"{where}[{i}]")]
    if type_name.startswith("{") and type_name.endswith("}"):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        return [p for k, v in value.items() for p in problems(models, type_name[1:-1], v, f"{where}.{k}")]
    if type_name == "object":
        return []
    if type_name in _BASIC:
        ok = isinstance(value, _BASIC[type_name]) and not (type_name in ("int", "long") and isinstance(value, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {type(value).__name__}"]
    cls = getattr(models, type_name, None)
    if cls is None:
        return [f"{where}: the model has no type {type_name}"]
    if isinstance(cls, type) and issubclass(cls, Enum):
        allowed = {str(e.value).lower() for e in cls}
        return [] if str(value).lower() in allowed else [f"{where}: {value!r} is not a {type_name}"]
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object"]
    while getattr(cls, "_subtype_map", None):  # a polymorphic type: its discriminator picks the subclass
        attr = next(iter(cls._subtype_map))
        key = cls._attribute_map[attr]["key"]
        kind = value.get(key)
        sub = cls._subtype_map[attr].get(kind) if kind is not None else None
        if sub is None:
            return [f"{where}.{key}: {kind!r} is not one of {sorted(cls._subtype_map[attr])}"]
        if sub == cls.__name__:  # subclasses inherit the map
            break
        cls = getattr(models, sub)
    known = {m["key"]: (attr, m["type"]) for attr, m in cls._attribute_map.items()}
    out = [f"{where}.{k}: unknown field for {cls.__name__}" for k in value if k not in known]
    for key, (attr, typ) in known.items():
        rule = cls._validation.get(attr, {})
        if key not in value:
            if rule.get("required") and not rule.get("readonly") and not rule.get("constant"):
                out.append(f"{where}.{key}: required by {cls.__name__}")
            continue
        if rule.get("pattern") and isinstance(value[key], str) and not re.search(rule["pattern"], value[key]):
            out.append(f"{where}.{key}: {value[key]!r} does not match {rule['pattern']}")
        out += problems(models, typ, value[key], f"{where}.{key}")
    return out


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(kind: str, name: str) -> Refused:
    return Refused(404, "ResourceNotFound", f"The {kind} '{name}' was not found.")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------ the server
class AzureML(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, blob_connection: str):
        self.cert, key = self_signed(folder)
        self.blob_connection = blob_connection                   # Azurite: where the datastores' containers are
        super().__init__(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.cloud = f"PlatbenchLoopback{self.server_address[1]}"
        self.identity_header = secrets.token_hex(8)
        self.tokens: set[str] = set()
        self.lock = threading.RLock()
        self.workspaces: dict[tuple[str, str, str], str] = {}   # (sub, rg, ws) → location
        self.computes: dict[str, dict] = {}                      # name → {"vmSize", "vmPriority", "maxNodes"}
        self.resources: dict[str, dict] = {}                     # ARM id (lower case) → stored body
        self.jobs: dict[str, Any] = {}                           # job name → azureml_jobs.CommandJob
        self.operations: dict[str, Any] = {}                     # id → callable: True when done
        self.deployments: dict[str, Any] = {}                    # deployment ARM id → running container
        self.log: list[tuple[str, str, int]] = []                # (method, path, status)
        self.refusals: list[str] = []
        self.hold_jobs = False                                   # True: jobs stay Queued (no quota)
        self.runtime_env: dict = {}                              # added to every job's environment (the stand-in)
        self.container_starts: list = []                         # (argv, AZUREML_MODEL_DIR) of each deployment
        self.too_many = 0                                        # scoring requests answered 429 (concurrency)
        self.faults = Faults()                                   # on (method, ARM path): fail()
        # a short poll interval: shutdown() waits for it, once per test (the default 0.5 s, twice, added up)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        # scoring URIs on a plain-HTTP listener: aiohttp (the load tool) builds its default TLS context
        # once, at import, so a test certificate could not be trusted after the fact
        self.scoring = _ScoringListener(self)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def add_workspace(self, sub: str, rg: str, ws: str, location: str = "eastus") -> None:
        self.workspaces[(sub, rg, ws)] = location

    def fail(self, method: str, pattern: str, action: str, times: int) -> None:
        """The next `times` requests of `method` on an ARM path matching `pattern` fail: "503" (ServiceUnavailable),
        "429" (TooManyRequests), both with Retry-After as ARM sends them, or "reset" (the connection closed without
        an answer) (tests/_faults.py)."""
        self.faults.add(route(method, pattern), action, times)

    def calls(self, method: str, pattern: str) -> list[str]:
        return [p for m, p, _ in self.log if m == method and re.search(pattern, p)]

    def close(self) -> None:
        self.scoring.shutdown()
        self.scoring.server_close()
        for job in list(self.jobs.values()):
            job.close()
        for container in list(self.deployments.values()):
            container.stop()
        self.shutdown()
        self.server_close()


class _ScoringListener(ThreadingHTTPServer):
    """The endpoints' scoring URIs (/endpoints/NAME/score), sharing the control plane's state."""

    daemon_threads = True

    def __init__(self, main: AzureML):
        self.main = main
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __getattr__(self, name):
        return getattr(self.main, name)


def _store_for(srv: AzureML, ws_id: str, uri: str):
    """(BlobStore, key prefix) of an azureml://datastores/NAME/paths/PATH URI: the datastore's container in
    Azurite (the emulator's account is the only one reachable here)."""
    from azureml_jobs import DATASTORE_URI

    from platforms.clouds.azure.blob import BlobStore

    m = DATASTORE_URI.match(uri)
    if m is None:
        raise Refused(400, "UserError", f"{uri!r} is not an azureml://datastores/NAME/paths/PATH URI")
    name, path = m.group("datastore"), m.group("path")
    ds = srv.resources.get(f"{ws_id}/datastores/{name}".lower())
    if ds is None:
        raise not_found("datastore", name)
    return BlobStore(ds["properties"]["containerName"]), path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AzureML

    def log_message(self, *args):
        pass

    # -------------------------------------------------------------- plumbing
    def _send(self, status: int, doc: Any = None, headers: Optional[dict] = None, raw: Optional[bytes] = None):
        body = raw if raw is not None else (b"" if doc is None else json.dumps(doc).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.log.append((self.command, self.path.split("?")[0], status))

    def _handle(self):
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            if path == "/metadata/endpoints":
                return self._send(200, [{"name": srv.cloud, "portal": "https://portal.loopback.test",
                                         "resourceManager": srv.url + "/",
                                         "authentication": {"loginEndpoint": "https://login.loopback.test/",
                                                            "audiences": [srv.url + "/"]},
                                         "suffixes": {"storage": "core.windows.net"}}])
            if path == "/msi/token":
                return self._token(query)
            if m := re.fullmatch(r"/endpoints/([^/]+)/score", path):
                return self._score(m.group(1), raw)
            if self.headers.get("Authorization", "").removeprefix("Bearer ") not in srv.tokens:
                raise Refused(401, "AuthenticationFailed", "Authentication failed: no valid bearer token.")
            fault = srv.faults.take(self.command, path)
            if fault:
                return answer(self, fault, AZURE_ARM)
            if m := re.fullmatch(r"/operations/([^/]+)", path):
                return self._operation(m.group(1), query)
            if m := re.fullmatch(r"/subscriptions/[^/]+" + PROVIDER + r"/locations/([^/]+)/vmSizes", path):
                return self._send(200, {"value": [{"name": n, "family": n.split("_")[1], "vCPUs": c, "gpus": g,
                                                   "osVhdSizeMB": 1047552, "maxResourceVolumeMB": 32768,
                                                   "memoryGB": 16.0, "lowPriorityCapable": True,
                                                   "premiumIO": True} for n, (c, g) in VM_SIZES.items()]})
            m = re.match(WS + r"(?P<rest>/.*)?$", path)
            if not m:
                raise Refused(404, "NotFound", f"no resource {path}")
            key = (m.group("sub"), m.group("rg"), m.group("ws"))
            if key not in srv.workspaces:
                raise Refused(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                              f"{key[2]}' under resource group '{key[1]}' was not found.")
            ws_id = path[:m.start("rest")] if m.group("rest") else path
            body = json.loads(raw) if raw else None
            with srv.lock:
                return self._workspace(ws_id, key, m.group("rest") or "", query, body)
        except Refused as exc:
            if exc.status >= 400 and exc.status != 404:
                srv.refusals.append(f"{self.command} {path}: {exc.message}")
            return self._send(exc.status, {"error": {"code": exc.code, "message": exc.message}})
        except Exception as exc:  # noqa: BLE001 - a bug here shows as a 500 the test sees, not a dropped socket
            srv.refusals.append(f"{self.command} {path}: server error {type(exc).__name__}: {exc}")
            return self._send(500, {"error": {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"}})

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

    def _token(self, query: dict):
        srv = self.server
        if self.headers.get("X-IDENTITY-HEADER") != srv.identity_header:
            raise Refused(401, "Unauthorized", "wrong X-IDENTITY-HEADER")
        token = secrets.token_urlsafe(16)
        srv.tokens.add(token)
        return self._send(200, {"access_token": token, "expires_on": str(int(time.time()) + 3600),
                                "resource": query.get("resource", ""), "token_type": "Bearer"})

    def _validated(self, query: dict, model: str, body: Any) -> None:
        models = models_for(query.get("api-version", ""))
        if not hasattr(models, model):  # older api-versions name the tracked resources <Name>Data
            model += "Data"
        found = problems(models, model, body, model)
        if found:
            raise Refused(400, "UserError", "; ".join(found[:5]))

    def _stored(self, arm_id: str, kind: str) -> dict:
        doc = self.server.resources.get(arm_id.lower())
        if doc is None:
            raise not_found(kind, arm_id.rsplit("/", 1)[-1])
        return doc

    def _put(self, arm_id: str, rtype: str, body: dict, **extra) -> dict:
        name = arm_id.rsplit("/", 1)[-1]
        doc = {**body, **extra, "id": arm_id, "name": name, "type": rtype,
               "systemData": {"createdAt": now_iso(), "createdBy": "platbench-test", "createdByType": "User",
                              "lastModifiedAt": now_iso()}}
        self.server.resources[arm_id.lower()] = doc
        return doc

    def _lro(self, done, location: bool = False) -> dict:
        """A long-running operation: Azure-AsyncOperation (status document) or Location (202 until done)."""
        op = uuid.uuid4().hex
        self.server.operations[op] = done
        url = f"{self.server.url}/operations/{op}?api-version=2023-04-01-preview"
        return {("Location" if location else "Azure-AsyncOperation"): url, "Retry-After": "1"}

    def _operation(self, op: str, query: dict):
        done = self.server.operations.get(op)
        if done is None:
            raise not_found("operation", op)
        state = done()  # True | False | "Failed: why"
        if isinstance(state, str):
            return self._send(200, {"status": "Failed", "error": {"code": "DeploymentFailed", "message": state}})
        if "location" in query:
            return self._send(200 if state else 202, None if state else {}, {"Retry-After": "1"})
        return self._send(200, {"status": "Succeeded" if state else "InProgress"}, {"Retry-After": "1"})

    # -------------------------------------------------------------- workspace resources
    def _workspace(self, ws_id: str, key, rest: str, query: dict, body):
        srv, method = self.server, self.command
        if rest == "":
            if method != "GET":
                raise Refused(405, "MethodNotAllowed", "the tests create workspaces themselves")
            return self._send(200, {"id": ws_id, "name": key[2], "type": "Microsoft.MachineLearningServices/workspaces",
                                    "location": srv.workspaces[key], "properties": {
                                        "friendlyName": key[2], "provisioningState": "Succeeded",
                                        "discoveryUrl": f"{srv.url}/discovery"}})
        if m := re.fullmatch(r"/computes/([^/]+)", rest):
            c = srv.computes.get(m.group(1))
            if c is None:
                raise not_found("compute", m.group(1))
            return self._send(200, {"id": ws_id + rest, "name": m.group(1), "location": srv.workspaces[key],
                                    "type": "Microsoft.MachineLearningServices/workspaces/computes", "properties": {
                                        "computeType": "AmlCompute", "provisioningState": "Succeeded",
                                        "properties": {"vmSize": c["vmSize"], "vmPriority": c.get("vmPriority", "Dedicated"),
                                                       "scaleSettings": {"maxNodeCount": c.get("maxNodes", 4), "minNodeCount": 0}}}})
        if m := re.fullmatch(r"/datastores/([^/]+)", rest):
            if method == "PUT":
                self._validated(query, "Datastore", body)
                return self._send(201, self._put(ws_id + rest, "Microsoft.MachineLearningServices/workspaces/datastores",
                                                 body))
            return self._send(200, self._stored(ws_id + rest, "datastore"))
        if m := re.fullmatch(r"/environments/([^/]+)/versions/([^/]+)", rest):
            if method == "PUT":
                self._validated(query, "EnvironmentVersion", body)
                # a registered version's definition cannot change ("Environment NAME with version V is already
                # registered and cannot be changed", HTTP 409, Azure/azure-cli-extensions#5440); the same
                # definition again is accepted (only its description and tags may change, azure-sdk-for-python#38590)
                before = srv.resources.get((ws_id + rest).lower())
                fixed = ("image", "build", "condaFile", "inferenceConfig", "osType")
                if before and any(before["properties"].get(k) != body["properties"].get(k) for k in fixed):
                    raise Refused(409, "UserError", f"Environment {m.group(1)} with version {m.group(2)} is already "
                                                    "registered and cannot be changed.")
                return self._send(200 if before else 201, self._put(ws_id + rest, "Microsoft.MachineLearningServices/"
                                                                    "workspaces/environments/versions", body))
            return self._send(200, self._stored(ws_id + rest, "environment version"))
        if m := re.fullmatch(r"/jobs/([^/]+)", rest):
            if method == "PUT":
                return self._create_job(ws_id, m.group(1), query, body)
            return self._send(200, self._job(ws_id, m.group(1)))
        if rest == "/jobs":
            return self._send(200, {"value": [self._job(ws_id, n) for n in srv.jobs]})
        if m := re.fullmatch(r"/jobs/([^/]+)/cancel", rest):
            return self._cancel_job(ws_id, m.group(1))
        return self._endpoints(ws_id, rest, query, body)

    # -------------------------------------------------------------- jobs
    def _job(self, ws_id: str, name: str) -> dict:
        doc = self._stored(f"{ws_id}/jobs/{name}", "job")
        job = self.server.jobs.get(name)
        status = job.status if job is not None else doc["properties"]["status"]
        return {**doc, "properties": {**doc["properties"], "status": status}}

    def _create_job(self, ws_id: str, name: str, query: dict, body):
        from azureml_jobs import CommandJob, Datastores, JobRefused

        srv = self.server
        self._validated(query, "JobBase", body)
        props = body["properties"]
        if props["jobType"] != "Command":
            raise Refused(400, "UserError", "only command jobs run here")
        existing = srv.resources.get(f"{ws_id}/jobs/{name}".lower())
        if existing is not None:
            # "Creates and executes a Job. For update case, the Tags in the definition passed in will replace Tags
            # in the existing job." (https://learn.microsoft.com/rest/api/azureml/jobs/create-or-update): the job
            # is not run again
            existing["tags"] = body.get("tags") or {}
            existing["properties"]["tags"] = props.get("tags") or {}
            return self._send(200, self._job(ws_id, name))
        compute = props.get("computeId")
        if compute:
            # an ARM id of one of THIS workspace's computes (the SDK sends {ws_id}/computes/NAME)
            cm = re.fullmatch(re.escape(ws_id) + r"/computes/([^/]+)", compute, re.IGNORECASE)
            if cm is None:
                raise Refused(400, "UserError", f"computeId {compute!r} is not a compute of this workspace")
            cname = cm.group(1)
            if cname not in srv.computes:
                raise Refused(400, "UserError", f"Compute '{cname}' not found in workspace")
            nodes, most = (props.get("resources") or {}).get("instanceCount") or 1, srv.computes[cname].get("maxNodes", 4)
            if nodes > most:
                raise Refused(400, "UserError", f"Requested {nodes} nodes but compute '{cname}' scales to {most}")
        elif (props.get("resources") or {}).get("instanceType") not in VM_SIZES:
            raise Refused(400, "UserError", f"serverless compute: instance type "
                                            f"{(props.get('resources') or {}).get('instanceType')!r} is not available")
        self._stored(props["environmentId"], "environment")
        sub, rg, ws = ws_id.split("/")[2], ws_id.split("/")[4], ws_id.rsplit("/", 1)[-1]

        def datastore(ds_name: str):
            doc = srv.resources.get(f"{ws_id}/datastores/{ds_name}".lower())
            return None if doc is None else (doc["properties"].get("accountName"), doc["properties"]["containerName"])

        try:
            job = CommandJob(name, props, Datastores((sub, rg, ws), datastore, srv.blob_connection),
                             experiment=props.get("experimentName") or "Default", runtime_env=srv.runtime_env)
        except JobRefused as exc:
            raise Refused(exc.status, "UserError" if exc.status == 400 else "ResourceNotFound", str(exc)) from None
        if srv.hold_jobs:
            job.hold.clear()
        doc = self._put(f"{ws_id}/jobs/{name}", "Microsoft.MachineLearningServices/workspaces/jobs",
                        {**body, "properties": {**props, "status": "NotStarted"}})
        srv.jobs[name] = job
        job.start()
        return self._send(201, doc)

    def _cancel_job(self, ws_id: str, name: str):
        srv = self.server
        self._stored(f"{ws_id}/jobs/{name}", "job")
        job = srv.jobs[name]
        job.cancel()
        return self._send(202, None, self._lro(lambda: job.status in ("Canceled", "Completed", "Failed"),
                                               location=True))

    # -------------------------------------------------------------- models, online endpoints, deployments
    def _endpoints(self, ws_id: str, rest: str, query: dict, body):
        srv, method = self.server, self.command
        rtype = "Microsoft.MachineLearningServices/workspaces/"
        if m := re.fullmatch(r"/models/([^/]+)/versions/([^/]+)", rest):
            if method == "PUT":
                self._validated(query, "ModelVersion", body)
                store, path = _store_for(srv, ws_id, body["properties"]["modelUri"])
                if not list(store.list(path.rstrip("/") + "/")):
                    raise Refused(400, "UserError", f"no files at {body['properties']['modelUri']}")
                # what the service fills in: a model without flavors answers with an empty map
                body = {**body, "properties": {"flavors": {}, **body["properties"]}}
                return self._send(201, self._put(ws_id + rest, rtype + "models/versions", body))
            if method == "DELETE":
                self._stored(ws_id + rest, "model version")
                del srv.resources[(ws_id + rest).lower()]
                return self._send(200)
            return self._send(200, self._stored(ws_id + rest, "model version"))
        if m := re.fullmatch(r"/onlineEndpoints/([^/]+)/listKeys", rest):
            doc = self._stored(f"{ws_id}/onlineEndpoints/{m.group(1)}", "online endpoint")
            return self._send(200, {"primaryKey": doc["_keys"][0], "secondaryKey": doc["_keys"][1]})
        if m := re.fullmatch(r"/onlineEndpoints/([^/]+)/deployments", rest):
            ep_id = f"{ws_id}/onlineEndpoints/{m.group(1)}".lower()
            self._stored(ep_id, "online endpoint")
            return self._send(200, {"value": [self._deployment_doc(k) for k in srv.deployments
                                              if k.startswith(ep_id + "/")]})
        if m := re.fullmatch(r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", rest):
            return self._deployment(ws_id, m.group(1), m.group(2), query, body)
        if m := re.fullmatch(r"/onlineEndpoints/([^/]+)", rest):
            arm_id = ws_id + rest
            if method == "PUT":
                self._validated(query, "OnlineEndpoint", body)
                if body["properties"]["authMode"] != "Key":
                    raise Refused(400, "UserError", "these tests expect key auth")
                doc = self._put(arm_id, rtype + "onlineEndpoints", body,
                                _keys=[secrets.token_urlsafe(24), secrets.token_urlsafe(24)])
                return self._send(201, self._public(doc), self._lro(lambda: True))
            if method == "DELETE":
                self._stored(arm_id, "online endpoint")
                for dep_id in [d for d in srv.deployments if d.startswith(arm_id.lower() + "/")]:
                    srv.deployments.pop(dep_id).stop()
                    srv.resources.pop(dep_id, None)
                del srv.resources[arm_id.lower()]
                return self._send(202, None, self._lro(lambda: True, location=True))
            return self._send(200, self._public(self._stored(arm_id, "online endpoint")))
        raise Refused(404, "NotFound", f"no resource {rest}")

    def _public(self, doc: dict) -> dict:
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        if out["type"].endswith("onlineEndpoints"):
            name = out["name"]
            out["properties"] = {**out["properties"], "provisioningState": "Succeeded",
                                 "scoringUri": f"{self.server.scoring.url}/endpoints/{name}/score"}
        return out

    def _deployment(self, ws_id: str, endpoint: str, name: str, query: dict, body):
        srv, method = self.server, self.command
        ep_id, arm_id = f"{ws_id}/onlineEndpoints/{endpoint}", f"{ws_id}/onlineEndpoints/{endpoint}/deployments/{name}"
        self._stored(ep_id, "online endpoint")
        if method == "GET":
            self._stored(arm_id, "online deployment")
            return self._send(200, self._deployment_doc(arm_id.lower()))
        if method == "DELETE":
            self._stored(arm_id, "online deployment")
            srv.deployments.pop(arm_id.lower()).stop()
            del srv.resources[arm_id.lower()]
            return self._send(202, None, self._lro(lambda: True, location=True))
        self._validated(query, "OnlineDeployment", body)
        props = body["properties"]
        if props["endpointComputeType"] != "Managed":
            raise Refused(400, "UserError", "only managed online deployments here")
        if props.get("instanceType") not in VM_SIZES:
            raise Refused(400, "UserError", f"instance type {props.get('instanceType')!r} is not available")
        model = self._stored(props["model"], "model version")
        env = self._stored(props["environmentId"], "environment version")
        container = start_container(srv, env["properties"], model, props.get("environmentVariables") or {}, ws_id)
        srv.deployments[arm_id.lower()] = container
        # what the service fills in when the request leaves it out
        body = {**body, "properties": {"scaleSettings": {"scaleType": "Default"}, **props}}
        doc = self._put(arm_id, "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments", body)
        return self._send(201, doc, self._lro(container.ready_or_failed))

    def _deployment_doc(self, arm_id: str) -> dict:
        doc = self.server.resources[arm_id]
        container = self.server.deployments.get(arm_id)
        state = container.state() if container else "Failed"
        return {**doc, "properties": {**doc["properties"], "provisioningState": state}}

    def _score(self, endpoint: str, raw: bytes):
        """The scoring URI: key auth, then the body to the deployment's scoring route, as Azure ML forwards it."""
        srv = self.server
        if self.command != "POST":
            raise Refused(405, "MethodNotAllowed", "the scoring URI takes POST")
        doc = next((d for d in srv.resources.values() if d.get("type", "").endswith("onlineEndpoints")
                    and d["name"] == endpoint), None)
        if doc is None:
            raise not_found("online endpoint", endpoint)
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in doc["_keys"]:
            return self._send(401, raw=b"", headers={})
        dep = self.headers.get("azureml-model-deployment")
        containers = {k.rsplit("/", 1)[-1]: (k, c) for k, c in srv.deployments.items()
                      if k.startswith(doc["id"].lower() + "/")}
        arm_id, container = containers.get(dep, (None, None)) if dep else next(iter(containers.values()), (None, None))
        if container is None:
            raise Refused(404, "NotFound", f"no deployment {dep!r} behind endpoint {endpoint}")
        # requests beyond max_concurrent_requests_per_instance (default 1) × instance_count get 429 "Too many
        # pending requests" (https://learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints,
        # HTTP status codes; the defaults: azure-ai-ml deployment_settings.py OnlineRequestSettings)
        dep_doc = srv.resources[arm_id]
        per_instance = (dep_doc["properties"].get("requestSettings") or {}).get("maxConcurrentRequestsPerInstance") or 1
        with srv.lock:
            if container.in_flight >= per_instance * (dep_doc.get("sku") or {}).get("capacity", 1):
                srv.too_many += 1
                return self._send(429, {"message": "Too many pending requests"})
            container.in_flight += 1
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", container.port, timeout=60)
        try:
            conn.request("POST", container.scoring, body=raw,
                         headers={"Content-Type": self.headers.get("Content-Type", "")})
            resp = conn.getresponse()
            data = resp.read()
            return self._send(resp.status, raw=data, headers={"Content-Type": resp.getheader("Content-Type", "")})
        finally:
            conn.close()
            with srv.lock:
                container.in_flight -= 1


class Container:
    """The deployment's container, run natively: `python -m trainer <CMD>` under Azure ML's custom-container
    contract, on a free host port standing for the declared container port (docker run -p HOST:8080)."""

    def __init__(self, argv, env, port: int, readiness: str, scoring: str, root: Path, failure: str = ""):
        import subprocess

        self.port, self.readiness, self.scoring, self.root, self.failure = port, readiness, scoring, root, failure
        self.in_flight = 0   # scoring requests being answered (the endpoint's concurrency limit counts them)
        self.proc = None
        if not failure:
            self.log = (root / "container.log").open("w")
            self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def ready_or_failed(self):
        import http.client

        if self.failure:
            return self.failure
        if self.proc.poll() is not None:
            return f"the container exited with {self.proc.returncode}: " + (self.root / "container.log").read_text()[-300:]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", self.readiness)
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def state(self) -> str:
        r = self.ready_or_failed()
        return "Succeeded" if r is True else ("Failed" if isinstance(r, str) else "Creating")

    def stop(self) -> None:
        import shutil
        import signal as sig

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def image_command(dockerfile: str) -> list[str]:
    """What the built image runs: its last CMD in exec form (the platbench image's own CMD is `train`)."""
    cmds = [json.loads(line.split(None, 1)[1]) for line in dockerfile.splitlines() if re.match(r"^CMD\s+\[", line)]
    return cmds[-1] if cmds else ["train"]


def start_container(srv: AzureML, env: dict, model: dict, variables: dict, ws_id: str) -> Container:
    import os
    import sys
    import tempfile
    from urllib.parse import urlsplit as split

    from _serving import free_port
    from platforms.clouds.azure.blob import BlobStore
    from platforms.core.staging import download_prefix
    from trainer.serve import DEFAULT_PORT

    root = Path(tempfile.mkdtemp(prefix="azureml-deployment-"))
    routes = env.get("inferenceConfig") or {}
    port = free_port()
    readiness, scoring = routes["readinessRoute"]["path"], routes["scoringRoute"]["path"]
    # the environment's image: built from its context (a Blob URL in Azurite: /ACCOUNT/CONTAINER/PATH)
    context = split(env["build"]["contextUri"]).path.strip("/").split("/", 2)
    dockerfile = BlobStore(context[1]).get_bytes(context[2].rstrip("/") + "/Dockerfile").decode()
    argv = image_command(dockerfile)
    failure = ""
    if argv[:1] != ["serve"]:
        failure = f"the container runs {argv} and never answers the readiness route {readiness}"
    elif {r["port"] for r in routes.values()} != {DEFAULT_PORT}:
        failure = f"inference_config ports {sorted({r['port'] for r in routes.values()})}: serve listens on {DEFAULT_PORT}"
    # the model mounted at /var/azureml-app/azureml-models/NAME/VERSION, the registered folder below it
    name, version = model["id"].split("/models/")[1].split("/versions/")
    store, path = _store_for(srv, ws_id, model["properties"]["modelUri"])
    mount = root / "azureml-models" / name / version
    download_prefix(store, path.rstrip("/") + "/", mount / Path(path.rstrip("/")).name)
    env_vars = {**os.environ, **variables, "AZUREML_MODEL_DIR": str(mount), "PLATBENCH_SERVE_HOST": "127.0.0.1",
                "PLATBENCH_SERVE_THREADS": "1"}
    for var in ("AIP_HTTP_PORT", "AIP_HEALTH_ROUTE", "AIP_PREDICT_ROUTE", "AIP_STORAGE_URI", "SAGEMAKER_BIND_TO_PORT",
                "PLATBENCH_MODEL_DIR", "PLATBENCH_OPT_ML"):
        env_vars.pop(var, None)
    srv.container_starts.append((argv, env_vars["AZUREML_MODEL_DIR"]))
    return Container([sys.executable, "-m", "trainer", *argv, "--port", str(port)], env_vars, port, readiness,
                     scoring, root, failure)


# ------------------------------------------------------------------------------------------ fixtures
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def azure_ml(blob_env, monkeypatch, tmp_path):
    """The loopback control plane with workspace `ws` (resource group `rg`, eastus) and compute cluster
    `gpu-cluster` (Standard_NC4as_T4_v3); the SDK and DefaultAzureCredential pointed at it."""
    srv = AzureML(tmp_path / "tls", blob_env)
    srv.add_workspace(SUBSCRIPTION, "rg", "ws")
    srv.computes["gpu-cluster"] = {"vmSize": "Standard_NC4as_T4_v3"}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(srv.cert))
    monkeypatch.setenv("ARM_CLOUD_METADATA_URL", f"{srv.url}/metadata/endpoints?api-version=2019-05-01")
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", srv.cloud)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{srv.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", srv.identity_header)
    yield srv
    srv.close()
