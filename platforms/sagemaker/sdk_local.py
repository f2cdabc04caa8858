"""SageMaker local mode as the SageMaker Python SDK itself implements it: the SDK runs the platbench image
through Docker Compose (`Estimator(instance_type="local")` to train, `Model.deploy(instance_type="local")`
to serve), reading the dataset from S3 and writing model.tar.gz / output.tar.gz back to S3 — the real S3,
or a moto server named by AWS_ENDPOINT_URL. `platbench launch sagemaker --set local=true` runs this when a
Docker engine answers and `image_uri` names an image that engine holds (`--set local_runner=auto`, the
default; `docker` insists, `native` runs the trainer as a subprocess instead: platforms/sagemaker/emulator.py).

This is the check that the image honours SageMaker's contract as SageMaker's own code reads it: the SDK
writes /opt/ml/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json, downloads the channel,
mounts /opt/ml, runs the image with the command `train` (or `serve`, port 8080 published, /ping polled),
then tars /opt/ml/model and /opt/ml/output. Source: sagemaker/local/image.py (_SageMakerContainer.train,
serve, retrieve_artifacts) and sagemaker/local/local_session.py, sagemaker 2.257; the local-mode config keys
(local.container_root, local.container_config, local.serving_port) are documented at
https://sagemaker.readthedocs.io/en/v2.257.0/overview.html#local-mode

Where the SDK's local mode differs from the service, and what platbench does about it:
- channels: it downloads each channel's S3Uri as a prefix (S3DataType is not read), so a ManifestFile
  channel would arrive as the manifest alone → the dataset is staged naive (one object per file);
- CheckpointConfig and managed spot are refused in local mode (sagemaker/estimator.py:
  "Setting checkpoint_s3_uri is not supported in local mode.") → not passed; checkpoints stay in the
  container;
- output.tar.gz holds all of /opt/ml/output (data/ and failure) where the service packs
  /opt/ml/output/data only → rewritten to the service's layout after the job, with `failure` taken out as the
  job's FailureReason, so collect() reads both the same way;
- the host folders it mounts are made by the calling user with tempfile.mkdtemp (mode 0700), so a container
  user other than the caller cannot read or write them (aws/sagemaker-python-sdk#4764) → the container runs
  as the caller's uid:gid (`local.container_config.user`), as docker-compose.gpu.yml runs it as
  PLATBENCH_UID. On the service the container runs as the image's USER.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from platforms.errors import UserError

RUNNERS = ("auto", "native", "docker")
# Local mode never assumes the role; the SDK only needs something shaped like an ARN (a bare name is
# looked up in IAM). A real role passed with --set role= is used as given.
PLACEHOLDER_ROLE = "arn:aws:iam::000000000000:role/platbench-local-mode"
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
JOB_FILE = "sdk-job.json"
FAILURE_FILE = "failure"


# ---------------------------------------------------------------------------------------------- engine
def _docker(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def engine_problem() -> Optional[str]:
    """None when a Docker engine answers and a compose tool the SDK can use is there; else why not."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=15)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 15 s"
    if info.returncode != 0 or not info.stdout.strip():
        return "no Docker engine answers (" + (info.stderr.strip().splitlines() or ["docker info failed"])[-1] + ")"
    # the SDK's own test (sagemaker/local/image.py _get_compose_cmd_prefix): `docker compose version` saying
    # "v2", else a docker-compose on PATH
    try:
        version = _docker("compose", "version", timeout=15)
        compose_v2 = version.returncode == 0 and "v2" in version.stdout
    except subprocess.TimeoutExpired:
        compose_v2 = False
    if not compose_v2 and shutil.which("docker-compose") is None:
        return ("no Docker Compose the SageMaker SDK's local mode recognises: `docker compose version` must print "
                "v2…, or docker-compose must be on PATH")
    return None


def image_digest(image: str) -> Optional[str]:
    """The identity of a local image: its registry digest when it was pushed or pulled (RepoDigests, the
    same sha256 ECR reports), else its image ID (the sha256 of its config, what `docker build` prints)."""
    try:
        proc = _docker("image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", image)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    repo_digests, _, image_id = proc.stdout.strip().rpartition(" ")
    digests = json.loads(repo_digests or "null") or []
    return digests[0].split("@", 1)[1] if digests else image_id or None


def choose_runner(cfg) -> str:
    """native | docker for `--set local=true`, checking what the SDK's local mode cannot do before any
    upload. May switch cfg.staging to naive (see the module docstring)."""
    want = cfg.local_runner
    if want == "native":
        return "native"
    if not cfg.image_uri:
        if want == "docker":
            raise UserError("sagemaker: local_runner=docker needs --set image_uri=IMAGE (an image the local "
                            "Docker engine holds, e.g. one built from this repository's Dockerfile)")
        return "native"
    problem = engine_problem()
    if problem is None and image_digest(cfg.image_uri) is None:
        problem = f"image {cfg.image_uri!r} is not in the local Docker engine (docker build or docker pull it)"
    if problem is not None:
        if want == "docker":
            raise UserError(f"sagemaker: local_runner=docker: {problem}")
        return "native"
    if cfg.spot:
        raise UserError("sagemaker: the SageMaker SDK's local mode does not run managed spot; drop --set spot=true "
                        "(or --set local_runner=native)")
    if cfg.staging == "sharded":
        if "staging" in cfg.model_fields_set:
            raise UserError("sagemaker: the SageMaker SDK's local mode reads S3Prefix channels only, not the "
                            "ManifestFile of sharded staging: use --set staging=naive (or local_runner=native)")
        cfg.staging = "naive"
    return "docker"


def plan_steps(request: dict, cfg) -> list[tuple[str, str]]:
    """(title, equivalent command) for the dry-run plan."""
    name = request["TrainingJobName"]
    out = request["OutputDataConfig"]["S3OutputPath"]
    channel = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    hp = json.dumps(request["HyperParameters"])
    return [
        ("local mode through the SageMaker SDK and Docker: Estimator(instance_type='local') downloads the "
         "channel, writes /opt/ml/input/config/*.json and runs the image with `docker compose up` (command "
         "`train`, as this user's uid:gid; no CheckpointConfig: the SDK's local mode refuses it)",
         f"python -c \"from sagemaker.estimator import Estimator; from sagemaker.local import LocalSession; "
         f"Estimator(image_uri='{cfg.image_uri}', role='{PLACEHOLDER_ROLE}', instance_count=1, "
         f"instance_type='local', output_path='{out}', hyperparameters={hp}, sagemaker_session=LocalSession())"
         f".fit({{'training': '{channel}'}}, job_name='{name}')\""),
        ("the SDK uploads model.tar.gz and output.tar.gz; output.tar.gz is rewritten to the service's layout "
         "(the contents of /opt/ml/output/data)", f"aws s3 ls {out}/{name}/output/"),
    ]


# ---------------------------------------------------------------------------------------------- training
def local_run(request: dict, store, prefix: str, staged, region: str, image: str):
    """A core.emulator.LocalRun (same timeline, describe() and stop/cleanup as the native local mode) whose
    process is `python -m platforms.sagemaker.sdk_local train JOB.json`: the SDK driving Docker."""
    from platforms.sagemaker.emulator import local_run as native_local_run

    run = native_local_run(request, store, prefix, staged)
    job_file = run.root / JOB_FILE
    run.argv = [sys.executable, "-m", "platforms.sagemaker.sdk_local", "train", str(job_file)]
    run.runner = "docker"  # the image runs: its outputs must name its digest (core/launch.py)
    run.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def prepare(r) -> None:
        r.enter("Starting")
        job_file.write_text(json.dumps({
            "request": request, "region": region, "bucket": store.bucket, "image": image,
            "container_root": str(r.root / "sdk"), "user": f"{os.getuid()}:{os.getgid()}",
        }))

    def finalize(r, rc: Optional[int]) -> None:
        failure = r.root / FAILURE_FILE
        if failure.is_file():
            r.failure = failure.read_text()[:1024]

    run.prepare, run.finalize = prepare, finalize
    return run


def _session(region: str, bucket: Optional[str], container_root: Path, user: str, serving_port: Optional[int] = None):
    import boto3
    from sagemaker.local import LocalSession

    container_root.mkdir(parents=True, exist_ok=True)
    session = LocalSession(boto_session=boto3.session.Session(region_name=region), default_bucket=bucket,
                           sagemaker_config=TELEMETRY_OFF)
    local: dict[str, Any] = {"local_code": True, "container_root": str(container_root),
                             "container_config": {"user": user}}
    if serving_port:
        local["serving_port"] = serving_port
    session.config = {"local": local}
    return session


class _ComposeLines(io.TextIOBase):
    """stdout for the SDK: `docker compose up` prefixes each container line with `<name>  | `; drop that
    prefix (and tty carriage returns) so the trainer's metric lines start their line, as in the service's
    log stream, for the launcher's progress display and any log scraper."""

    def __init__(self, out):
        self.out, self.buf = out, ""

    def write(self, text: str) -> int:
        self.buf += text.replace("\r", "")
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            head, sep, rest = line.partition(" | ")
            if sep and head.strip() and " " not in head.strip() and "algo-" in head:
                line = rest
            self.out.write(line + "\n")
            self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def normalize_output(s3, bucket: str, key: str) -> tuple[Optional[str], bool]:
    """Rewrite the SDK's output.tar.gz (all of /opt/ml/output) as the service packs it (the contents of
    /opt/ml/output/data). Returns (the failure file's text or None, whether results.json is in it)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    failure, has_results, out = None, False, io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(body)) as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            name = member.name.lstrip("./")
            if name == FAILURE_FILE and member.isfile():
                failure = src.extractfile(member).read().decode(errors="replace")
                continue
            if not name.startswith("data/") or not (member.isfile() or member.isdir()):
                continue
            member.name = name[len("data/"):]
            has_results = has_results or member.name == "results.json"
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    s3.put_object(Bucket=bucket, Key=key, Body=out.getvalue())
    return failure, has_results


def _train(job_file: Path) -> int:
    """The process local_run() starts: Estimator(instance_type="local").fit(...), then the output layout."""
    import logging

    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    job = json.loads(job_file.read_text())
    root = job_file.parent
    req = job["request"]
    # StopTrainingJob (LocalRun.stop) sends SIGTERM to this whole process group: compose stops the container
    # (SIGTERM → the trainer checkpoints and exits 143); this process lives on so the SDK still collects
    # and uploads /opt/ml/model and /opt/ml/output, as the service does after a stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.stdout = _ComposeLines(sys.__stdout__)
    session = _session(job["region"], job["bucket"], Path(job["container_root"]), job["user"])
    spec, res = req["AlgorithmSpecification"], req["ResourceConfig"]
    channel = req["InputDataConfig"][0]
    source = channel["DataSource"]["S3DataSource"]
    role = req.get("RoleArn") if str(req.get("RoleArn", "")).startswith("arn:") else PLACEHOLDER_ROLE
    estimator = Estimator(
        image_uri=job["image"], role=role, instance_count=1, instance_type="local",
        volume_size=res["VolumeSizeInGB"], max_run=req["StoppingCondition"]["MaxRuntimeInSeconds"],
        output_path=req["OutputDataConfig"]["S3OutputPath"], sagemaker_session=session,
        hyperparameters=dict(req["HyperParameters"]), environment=dict(req.get("Environment", {})),
        metric_definitions=spec.get("MetricDefinitions"), debugger_hook_config=False, disable_profiler=True,
    )
    error = None
    try:
        estimator.fit({channel["ChannelName"]: TrainingInput(source["S3Uri"], s3_data_type="S3Prefix",
                                                             distribution=source["S3DataDistributionType"])},
                      wait=True, logs=True, job_name=req["TrainingJobName"])
    except Exception as exc:  # noqa: BLE001 - the SDK raises RuntimeError/ValueError/ClientError alike
        error = f"SageMaker SDK local mode: {exc}".splitlines()[0][:900]
    failure, has_results = None, False
    out = req["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    bucket, _, prefix = out[len("s3://"):].partition("/")
    key = f"{prefix}/{req['TrainingJobName']}/output/output.tar.gz".lstrip("/")
    try:
        failure, has_results = normalize_output(session.s3_client, bucket, key)
    except Exception as exc:  # noqa: BLE001 - no output.tar.gz: the SDK failed before collecting
        error = error or f"no output.tar.gz at s3://{bucket}/{key}: {exc}".splitlines()[0]
    sys.stdout.flush()
    if has_results and not failure:
        return 0
    message = failure or error or "the training container wrote no results.json (see the job log above)"
    (root / FAILURE_FILE).write_text(message)
    print(f"platbench: {message}", file=sys.__stderr__)
    return 1


# ---------------------------------------------------------------------------------------------- serving
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_endpoint(model_data: str, image: str, region: str, container_root: Path,
                   env: Optional[dict[str, str]] = None, content_type: str = "image/png",
                   port: Optional[int] = None) -> Iterator[Any]:
    """Serve model.tar.gz (an s3:// or file:// URI) with the SDK's local mode: Model.deploy(
    instance_type="local") unpacks it into /opt/ml/model and runs the image with `serve`, port 8080
    published on `port` (a free one by default), until /ping answers. Yields a Predictor (bytes in, JSON
    out) whose endpoint is always deleted afterwards."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    port = port or free_port()
    session = _session(region, None, Path(container_root), f"{os.getuid()}:{os.getgid()}", serving_port=port)
    name = f"platbench-local-{int(time.time())}"
    model = Model(image_uri=image, model_data=model_data, role=PLACEHOLDER_ROLE, sagemaker_session=session,
                  env=env or {}, name=name)
    model.deploy(initial_instance_count=1, instance_type="local", endpoint_name=name)
    predictor = Predictor(name, sagemaker_session=session, serializer=IdentitySerializer(content_type),
                          deserializer=JSONDeserializer())
    try:
        yield predictor
    finally:
        try:
            predictor.delete_endpoint(delete_endpoint_config=True)
        finally:
            model.delete_model()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "train":
        return _train(Path(argv[1]))
    print("usage: python -m platforms.sagemaker.sdk_local train JOB.json   (started by the SageMaker launcher)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
