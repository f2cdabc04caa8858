"""A loopback Amazon SageMaker training control plane for the tests (moto completes a training job at once,
writes no model and has no StopTrainingJob), written from SageMaker's documentation, not from platbench.

The API: the service's JSON protocol (POST /, X-Amz-Target: SageMaker.<Operation>). Every body is checked
against botocore's own service model for `sagemaker`: botocore's ParamValidator (shapes, types, required
members, minimums) and then what that validator leaves out and the service enforces: maximum lengths and
values, enums and the members' patterns (matched whole, as the service reports them: "Member must satisfy
regular expression pattern"). Errors are the protocol's {"__type", "message"} with the codes the operations
document: ValidationException, ResourceInUse (a name in use), ResourceNotFound.
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html

The job: what SageMaker does around a training image (sagemaker_jobs.py).

Faults for the launcher's error paths: `fail(operation, code or (code, message), times)` answers the next
calls of an operation with that error (status 400; 500/503 for InternalFailure/ServiceUnavailable), "reset" closes
the connection without an answer (tests/_faults.py)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _faults import RESET, Faults, reset
from sagemaker_jobs import ACCOUNT, TrainingJob

SERVER_ERRORS = {"InternalFailure": 500, "ServiceUnavailable": 503}


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


def _service_model():
    from botocore.session import get_session

    return get_session().get_service_model("sagemaker")


def constraint_errors(value, shape, where: str = "") -> list[str]:
    """What botocore's ParamValidator does not check: max lengths / sizes / values, enums and patterns
    (the model's `pattern` is a Java regex, \\p{…} classes included: the `regex` module reads those)."""
    import regex

    t, meta, out = shape.type_name, shape.metadata, []
    name = where or shape.name
    if t == "structure" and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value:
                out += constraint_errors(value[key], member, f"{where}.{key}" if where else key)
        return out
    if t == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"Value at '{name}' failed to satisfy constraint: Member must have length less than or "
                       f"equal to {meta['max']}")
        for i, item in enumerate(value):
            out += constraint_errors(item, shape.member, f"{name}.{i + 1}")
        return out
    if t == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"Value at '{name}' failed to satisfy constraint: Map must have at most {meta['max']} entries")
        for k, v in value.items():
            out += constraint_errors(k, shape.key, f"{name}.key")
            out += constraint_errors(v, shape.value, f"{name}.{k}")
        return out
    if t == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            out.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must satisfy enum value "
                       f"set: [{', '.join(shape.enum)}]")
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"Value at '{name}' failed to satisfy constraint: Member must have length less than or "
                       f"equal to {meta['max']}")
        if "pattern" in meta and not regex.fullmatch(meta["pattern"], value):
            out.append(f"Value '{value[:80]}' at '{name}' failed to satisfy constraint: Member must satisfy regular "
                       f"expression pattern: {meta['pattern']}")
        return out
    if t in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            out.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must have value less "
                       f"than or equal to {meta['max']}")
    return out


def create_rules(p: dict) -> list[str]:
    """Rules of CreateTrainingJob beyond single members (API_CreateTrainingJob, API_StoppingCondition,
    API_AlgorithmSpecification; managed spot: MaxWaitTimeInSeconds is required, and must be at least
    MaxRuntimeInSeconds, https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html)."""
    out = []
    spec, stop = p.get("AlgorithmSpecification", {}), p.get("StoppingCondition", {})
    if bool(spec.get("TrainingImage")) == bool(spec.get("AlgorithmName")):
        out.append("AlgorithmSpecification must specify exactly one of TrainingImage and AlgorithmName")
    if "MaxWaitTimeInSeconds" in stop and not p.get("EnableManagedSpotTraining"):
        out.append("MaxWaitTimeInSeconds can be set only for a managed spot training job")
    if p.get("EnableManagedSpotTraining"):
        if "MaxWaitTimeInSeconds" not in stop:
            out.append("MaxWaitTimeInSeconds is required for a managed spot training job")
        elif stop["MaxWaitTimeInSeconds"] < stop.get("MaxRuntimeInSeconds", 86400):
            out.append("MaxWaitTimeInSeconds must be greater than or equal to MaxRuntimeInSeconds")
    names = [c["ChannelName"] for c in p.get("InputDataConfig", [])]
    if len(names) != len(set(names)):
        out.append("InputDataConfig has duplicate channel names")
    if "ResourceConfig" not in p:
        out.append("ResourceConfig is required for a training job that runs on instances")
    return out


class SageMakerServer(ThreadingHTTPServer):
    """images: TrainingImage → {"entrypoint": ENTRYPOINT argv (optional), "env": its ENV (PATH finds its
    commands), "toolkit": whether it carries the sagemaker-training toolkit}: what `docker run IMAGE train`
    starts; a training image not listed fails the job as one that cannot be pulled.
    s3_endpoint: where the jobs read channels and write outputs (S3 on moto). workdir: jobs' scratch space.
    spot_savings: the share of a managed spot job's training time not billed (the market's discount).
    runtime_env: added to every job's environment (the tests' stand-in trainer, tests/stand_in)."""

    daemon_threads = True

    def __init__(self, s3_endpoint: str, workdir, images: dict | None = None, stop_grace: float = 120.0,
                 spot_savings: float = 0.0, region: str = "us-east-1"):
        from botocore.validate import ParamValidator

        self.service_model = _service_model()
        self.validator = ParamValidator()
        self.s3_endpoint, self.workdir, self.region = s3_endpoint, workdir, region
        self.images = dict(images or {})
        self.runtime_env: dict = {}  # added to every job's environment (tests/stand_in: the stand-in trainer)
        self.stop_grace, self.spot_savings = stop_grace, spot_savings
        self.jobs: dict[str, TrainingJob] = {}
        self.calls: list[tuple[str, dict]] = []
        self.faults = Faults()  # on the operation: an error code, (code, message) or "reset" (fail())
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail(self, op: str, fault, times: int) -> None:
        """The next `times` calls of operation `op` fail: an error code (its message the test's), a (code, message)
        or "reset" (the connection closed without an answer)."""
        self.faults.add(lambda called: called == op, fault, times)

    def close(self) -> None:
        for job in list(self.jobs.values()):
            job.stop("Stopped")
            job.thread.join(timeout=self.stop_grace + 30)
        self.shutdown()
        self.server_close()

    def handle_op(self, op: str, p: dict) -> dict:
        if op == "CreateTrainingJob":
            problems = create_rules(p)
            if problems:
                raise ServiceError("ValidationException", "; ".join(problems))
            local = p.get("CheckpointConfig", {}).get("LocalPath", "/opt/ml/checkpoints")
            if not (local + "/").startswith("/opt/ml/"):
                raise ServiceError("LoopbackUnsupported", f"this server binds /opt/ml only, not LocalPath {local}")
            with self.lock:
                if p["TrainingJobName"] in self.jobs:  # unique in the account and region (CreateTrainingJob)
                    raise ServiceError("ResourceInUse", f"Training job names must be unique within an AWS account "
                                       f"and region, and a training job with this name already exists "
                                       f"(arn:aws:sagemaker:{self.region}:{ACCOUNT}:training-job/"
                                       f"{p['TrainingJobName'].lower()})")
                job = TrainingJob(p, self)
                self.jobs[p["TrainingJobName"]] = job
            job.start()
            return {"TrainingJobArn": job.arn}
        if op == "DescribeTrainingJob":
            return self._job(p["TrainingJobName"]).describe()
        if op == "StopTrainingJob":
            job = self._job(p["TrainingJobName"])
            if not job.stop("Stopped"):
                raise ServiceError("ValidationException", f"The request was rejected because the training job is "
                                   f"in status {job.status}.")
            return {}
        raise ServiceError("UnknownOperationException", f"{op} is not served by this loopback server")

    def _job(self, name: str) -> TrainingJob:
        with self.lock:
            if name not in self.jobs:
                raise ServiceError("ResourceNotFound", f"Requested resource not found: training job {name}")
            return self.jobs[name]

    def check_response(self, op: str, out: dict) -> None:
        """A response missing a member the output shape requires is this server's bug, not the client's."""
        shape = self.service_model.operation_model(op).output_shape
        missing = [m for m in (shape.required_members if shape else []) if m not in out]
        if missing:
            raise ServiceError("InternalFailure", f"loopback server bug: {op} response lacks {missing}", 500)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc: dict, error: str | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", f"loopback-{time.monotonic_ns()}")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: str, message: str, status: int = 400) -> None:
        self._send(status, {"__type": code, "message": message}, code)

    def do_POST(self):  # http.server's name
        srv: SageMakerServer = self.server  # type: ignore[assignment]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        prefix = srv.service_model.metadata["targetPrefix"] + "."
        op = target[len(prefix):] if target.startswith(prefix) else ""
        if op not in srv.service_model.operation_names:
            return self._error("UnknownOperationException", f"unknown target {target!r}")
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            return self._error("SerializationException", "the request body is not JSON")
        shape = srv.service_model.operation_model(op).input_shape
        report = srv.validator.validate(params, shape)
        problems = [report.generate_report()] if report.has_errors() else constraint_errors(params, shape)
        if problems:
            count = len(problems)
            return self._error("ValidationException",
                               f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems))
        with srv.lock:
            srv.calls.append((op, params))
        fault = srv.faults.take(op)
        if fault == RESET:
            return reset(self)
        if fault:
            code, message = fault if isinstance(fault, tuple) else (fault, "injected by the test")
            return self._error(code, message, SERVER_ERRORS.get(code, 400))
        try:
            out = srv.handle_op(op, params)
            srv.check_response(op, out)
        except ServiceError as exc:
            return self._error(exc.code, str(exc), exc.status)
        self._send(200, out)
