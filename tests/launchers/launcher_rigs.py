"""One rig per platform that runs our image, for the launcher conformance kit (tests/launchers): how to reach
its loopback servers, the settings of a local-mode and of a cloud launch there, and what its servers hold
(jobs created, objects stored), so one test says a behaviour once for every platform.

The kit drives launchers through their public entry points only (`platforms.core.launch.launch`, the CLI),
never their internals, so it holds whatever shape a launcher's code takes. Jobs run the stand-in trainer
(tests/stand_in) where what is tested is the launcher's, not the trainer's: in local mode through this
process's environment (each local mode passes it on to the trainer it starts), in the cloud through the job
server's `runtime_env` (the server, like the platform, decides what the job's image runs).

Every process a job starts carries MARK (a variable of its environment, unique per test): `census()` finds
them in /proc, so "nothing is left behind" is checked on the processes themselves, whoever started them."""
from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from platforms.core.progress import JobProgress

TESTS = Path(__file__).resolve().parents[1]
for _folder in ("vertex", "sagemaker", "azureml", "databricks", "apolo"):  # the platforms' loopback servers
    if str(TESTS / _folder) not in sys.path:
        sys.path.append(str(TESTS / _folder))

MARK = "PLATBENCH_KIT_MARK"
TRANSIENT = ("503", "429", "reset")  # the job API's faults that pass (tests/_faults.py)


# ---------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Proc:
    pid: int
    cwd: Optional[Path]


def _environ(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    """Running, sleeping or stopped; a zombie has ended (its parent has yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def census(mark: str) -> list[Proc]:
    """The live processes whose environment carries MARK=mark."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and needle in _environ(entry.name).split(b"\0"):
            try:
                cwd = Path(os.readlink(f"/proc/{entry.name}/cwd"))
            except OSError:
                cwd = None
            if _alive(int(entry.name)):
                found.append(Proc(int(entry.name), cwd))
    return found


def wait_for_census(mark: str, timeout: float = 120) -> list[Proc]:
    """The job's processes once at least one has started (a job entering its training phase may still be
    starting its container)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = census(mark)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no process of the job ({MARK}={mark}) started within {timeout:.0f} s")


class RaiseInTraining(JobProgress):
    """A launch's progress display that, when the launcher sees the job training, takes a census of the job's
    processes and raises `error` (KeyboardInterrupt: Ctrl-C; another: the launcher's own code failing)."""

    def __init__(self, mark: str, error: BaseException):
        super().__init__(enabled=False)
        self.mark, self.error, self.procs = mark, error, []

    def phase(self, name):
        super().phase(name)
        if name == "training":
            self.procs = wait_for_census(self.mark)
            raise self.error


def wait_gone(procs: list[Proc], timeout: float = 60) -> list[Proc]:
    """Those of `procs` still alive after `timeout` s ([] when every one ended)."""
    deadline = time.time() + timeout
    left = procs
    while left and time.time() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p.pid)]
    return left


def newest_run():
    """The newest MLflow run of the kit's store (kit_store)."""
    from platforms.core import tracking

    c = tracking.client()
    return c.search_runs([tracking.experiment_id(c)], order_by=["attributes.start_time DESC"], max_results=1)[0]


def nothing_left(procs: list[Proc], out: Path) -> None:
    """After Ctrl-C: every process of the job ended, no half-run collected, the run KILLED."""
    from platforms.core import tracking

    assert procs, "the census found no process of the job"
    assert wait_gone(procs) == [], "a process of the job outlived Ctrl-C"
    assert not (out / "results.json").exists(), "a half-run was collected"
    r = newest_run()
    assert r.info.status == "KILLED" and r.data.tags[tracking.Tag.STATUS] == "killed"


# ---------------------------------------------------------------------------------------------- the rigs
@dataclass
class Ctx:
    """One test's view of a platform's loopback world."""

    tmp_path: Path
    data: Path                      # the stand-in's dataset (tests/stand_in: the golden run's)
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    servers: dict = field(default_factory=dict)   # fixture name → its value
    place: str = ""                 # the bucket / container / volume of this test
    before: dict = field(default_factory=dict)    # a shared server's records before this test
    config: object = None           # pytest's config (cleanups at the end of this process's session)

    def env(self, stand_in, **knobs) -> dict:
        """The stand-in's environment plus the mark, for a job's runtime."""
        return {**stand_in.env(base={}, **knobs), MARK: self.mark}


_GOLDEN_COPIES: dict = {}


def golden_outside_tmp(golden: Path, config) -> Path:
    """A copy of the golden run outside /tmp, for a job whose /tmp is its own (SageMaker's runner mounts the
    job's scratch there, and pytest's folders are under /tmp); one per process, removed when its session ends
    (config.add_cleanup: an xdist worker ends without running atexit handlers)."""
    if golden not in _GOLDEN_COPIES:
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="platbench-golden-", dir="/var/tmp"))
        config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
        _GOLDEN_COPIES[golden] = shutil.copytree(golden, root / "out")
    return _GOLDEN_COPIES[golden]


def _sagemaker_runtime(ctx: Ctx, env: dict) -> None:
    golden = golden_outside_tmp(Path(env["PLATBENCH_STAND_IN_GOLDEN"]), ctx.config)
    env = {**env, "PLATBENCH_STAND_IN_GOLDEN": str(golden)}
    ctx.servers["sm_api"].runtime_env.update(env)


@dataclass
class Rig:
    name: str
    local_mode: bool                       # a native local mode (--set local=true)
    cloud: bool                            # a loopback server runs its cloud jobs
    fixtures: tuple[str, ...]              # the pytest fixtures its servers need
    refusal: tuple[dict, str] = ({}, "")   # settings a server-backed check refuses, and what it says
    place: Callable = None                 # ctx → the bucket / container / volume it stages into
    local: Callable = None                 # ctx → local-mode settings
    remote: Callable = None                # ctx → cloud settings
    jobs: Callable = None                  # ctx → what its job server created
    stored: Callable = None                # ctx → what its object store holds
    runtime: Callable = None               # (ctx, env) → the job server runs jobs with env added
    cancelled: Callable = None             # ctx → asserts the job server cancelled the job and it ended
    cli_env: Callable = lambda ctx: {}     # ctx → environment of a `platbench` command (files it needs made)
    scratch: bool = True                   # local mode runs the trainer in a scratch folder of its own
    failure_says: str = ""                 # what a job whose trainer crashed is reported with (a pattern)
    step_faults: dict = field(default_factory=dict)  # launch step → ctx → its server refuses that step from now on
    job_server: str = ""                   # the fixture of its job API's server (its fail() and faults)
    job_calls: dict = field(default_factory=dict)  # "create" | "get" | "cancel" → (method, path pattern) | (operation,)
    fault_names: dict = field(default_factory=dict)  # the kit's fault → the server's name for it, where they differ
    # ctx → settings that bound its SDK's retries to seconds (its own knob); None: its retries of a lasting fault
    # take minutes and no setting shortens them (the kit leaves that case out: too long for the suite)
    short_retries: Optional[Callable] = lambda ctx: {}
    short_retries_env: dict = field(default_factory=dict)  # the same, where the knob is an environment variable
    create_retried: bool = True            # its launcher (or SDK) retries the job's creation after a transient fault

    def __str__(self) -> str:
        return self.name

    def fail(self, ctx: "Ctx", call: str, fault: str, times: int) -> None:
        """The job API's next `times` `call`s fail with `fault`: "503", "429" (throttling) or "reset", each shaped
        as the service sends it (tests/_faults.py)."""
        ctx.servers[self.job_server].fail(*self.job_calls[call], self.fault_names.get(fault, fault), times)

    def faults_left(self, ctx: "Ctx") -> int:
        """Injected faults not yet met."""
        return ctx.servers[self.job_server].faults.left()

    def transient(self, ctx: "Ctx", call: str, times: int) -> None:
        """Each of TRANSIENT fails the next `times` `call`s, one after another."""
        for fault in TRANSIENT:
            self.fail(ctx, call, fault, times)


# --- Vertex AI: the Cloud Storage emulator and the loopback Vertex AI server (tests/vertex)
VERTEX_IMAGE = "us-docker.pkg.dev/p/r/platbench@sha256:" + "b" * 64


def _gcs_bucket(ctx: Ctx) -> str:
    from conftest_clouds import new_bucket_name
    from google.cloud import storage

    name = new_bucket_name()
    storage.Client(project="test").create_bucket(name)
    return name


def _gcs_blobs(ctx: Ctx) -> list[str]:
    from google.cloud import storage

    return [b.name for b in storage.Client(project="test").list_blobs(ctx.place)]


def _vertex_cancelled(ctx: Ctx) -> None:
    srv = ctx.servers["job_service"]
    name = "projects/p/locations/us-central1/customJobs/1"
    assert srv.cancelled == [name]
    described = srv.wait(name)
    assert described["state"] == "JOB_STATE_CANCELLED" and described["error"]["code"] == 1
    assert all(p.poll() is not None for p in srv.jobs[name].procs)


VERTEX = Rig(
    "vertex", local_mode=True, cloud=True, fixtures=("gcs", "job_service"),
    failure_says="The replica workerpool0-0 exited with a non-zero status of 1",
    refusal=({"machine_type": "huge-box"}, "unknown machine type 'huge-box'"),
    place=_gcs_bucket,
    local=lambda ctx: {"bucket": ctx.place, "local": "true", "accelerator_type": "none"},
    # CPU machines in the cloud too: a GPU one starts the trainer with --device cuda, which the loopback's
    # GPU-less replicas refuse (tests/vertex proves that once)
    remote=lambda ctx: {"project": "p", "bucket": ctx.place, "image_uri": VERTEX_IMAGE, "poll_seconds": "0.05",
                        "api_endpoint": ctx.servers["job_service"].url, "accelerator_type": "none"},
    jobs=lambda ctx: list(ctx.servers["job_service"].created),
    stored=_gcs_blobs,
    runtime=lambda ctx, env: ctx.servers["job_service"].runtime_env.update(env),
    cancelled=_vertex_cancelled,
    # its launcher retries get_custom_job for 120 s (platforms/vertex/train.py, no setting): passed at 154 s once
    short_retries=None,
    # customJobs.create takes no request id: a retry could start the job twice, so the launcher makes one try
    create_retried=False,
    job_server="job_service", job_calls={"create": ("POST", r"/customJobs$"), "get": ("GET", r"/customJobs/\d+$"),
                                         "cancel": ("POST", r"/customJobs/\d+:cancel$")},
    step_faults={"staging": lambda ctx: ctx.servers["gcs"].fail(
                     lambda method, path, headers: method in ("POST", "PUT") and "/upload/" in path, "403", 10**6),
                 "submitting": lambda ctx: ctx.servers["job_service"].fail("POST", r"/customJobs$", "400", 10**6),
                 # the launcher's downloads of the job's outputs (the job's own /gcs sync only uploads there)
                 "collecting": lambda ctx: ctx.servers["gcs"].fail(
                     lambda method, path, headers: method == "GET" and "platbench%2Fjobs%2F" in path, "403", 10**6)},
)


# --- SageMaker: moto (S3, IAM) and the loopback training control plane (tests/sagemaker)
def _s3_bucket(ctx: Ctx) -> str:
    import boto3
    from conftest_clouds import new_bucket_name

    name = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _s3_objects(ctx: Ctx) -> list[str]:
    import boto3

    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=ctx.place).get("Contents", [])]


def _sagemaker_role() -> str:
    import boto3

    iam = boto3.client("iam")
    try:
        return iam.create_role(RoleName="platbench-sm", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName="platbench-sm")["Role"]["Arn"]


def _sagemaker_sent(ctx: Ctx, target: str) -> list[dict]:
    sm = ctx.servers["sm_api"]
    with sm.lock:
        return [dict(body) for op, body in sm.calls if op == target]


def _sagemaker_cancelled(ctx: Ctx) -> None:
    (created,) = _sagemaker_sent(ctx, "CreateTrainingJob")
    # the job, and only it, was asked to stop (once, or again after a fault the kit injected: tests/_faults.py)
    assert {s["TrainingJobName"] for s in _sagemaker_sent(ctx, "StopTrainingJob")} == {created["TrainingJobName"]}
    job = ctx.servers["sm_api"].jobs[created["TrainingJobName"]]
    job.thread.join(timeout=60)
    assert job.status == "Stopped" and job.secondary == "Stopped"
    # SIGTERM: the trainer checkpoints and exits 143, or the signal ends it before its handler is set
    assert all(p.returncode in (143, -15) for p in job.procs), [p.returncode for p in job.procs]


def _sagemaker_remote(ctx: Ctx) -> dict:
    from sagemaker_fixtures import PLATBENCH_IMAGE

    return {"bucket": ctx.place, "role": _sagemaker_role(), "image_uri": PLATBENCH_IMAGE, "poll_seconds": "0.1",
            "instance_type": "ml.m5.xlarge"}  # a CPU instance: a GPU one runs --device cuda (tests/sagemaker)


SAGEMAKER = Rig(
    "sagemaker", local_mode=True, cloud=True, fixtures=("aws", "sm_api", "job_runner"),
    failure_says="AlgorithmError: the training image exited with status 1",
    refusal=({"role": "nobody"}, "IAM role 'nobody' does not exist"),
    place=_s3_bucket,
    local=lambda ctx: {"bucket": ctx.place, "local": "true"},
    remote=_sagemaker_remote,
    jobs=lambda ctx: _sagemaker_sent(ctx, "CreateTrainingJob"),
    stored=_s3_objects,
    runtime=_sagemaker_runtime,
    cancelled=_sagemaker_cancelled,
    job_server="sm_api", job_calls={"create": ("CreateTrainingJob",), "get": ("DescribeTrainingJob",),
                                    "cancel": ("StopTrainingJob",)},
    # its own error codes (AWS JSON 1.1, CommonErrors: throttling is a 400)
    fault_names={"503": "ServiceUnavailable", "429": "ThrottlingException"},
    # botocore's standard mode: 8 attempts by default, backing off up to 20 s each (half a minute of a lasting 503)
    short_retries_env={"PLATBENCH_S3_MAX_ATTEMPTS": "2"},
    step_faults={"staging": lambda ctx: ctx.servers["aws"].fail(
                     lambda method, path, headers: method in ("POST", "PUT") and path.startswith(f"/{ctx.place}/"),
                     "403", 10**6),
                 "submitting": lambda ctx: ctx.servers["sm_api"].fail("CreateTrainingJob", "ValidationException",
                                                                      10**6),
                 # the launcher's downloads of the job's artifacts (the job runner reaches S3 without the proxy)
                 "collecting": lambda ctx: ctx.servers["aws"].fail(
                     lambda method, path, headers: method == "GET" and path.startswith(f"/{ctx.place}/platbench/jobs/"),
                     "403", 10**6)},
)


# --- Azure ML: Azurite and the loopback Azure ML control plane (tests/azureml)
AZUREML_IMAGE = "myacr.azurecr.io/platbench@sha256:" + "c" * 64


def _azure_container(ctx: Ctx) -> str:
    from azurite_server import new_container

    return new_container(ctx.servers["blob_env"])


def _azure_blobs(ctx: Ctx) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(ctx.servers["blob_env"])
    return [b.name for b in service.get_container_client(ctx.place).list_blobs()]


def _azureml_remote(ctx: Ctx) -> dict:
    from azureml_server import SUBSCRIPTION

    return {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "workspace": "ws", "image": AZUREML_IMAGE,
            "container": ctx.place, "poll_seconds": "0.2", "instance_type": "Standard_D4s_v3"}  # serverless CPU


def _azureml_cancelled(ctx: Ctx) -> None:
    srv = ctx.servers["azure_ml"]
    (name,) = srv.jobs
    assert srv.calls("POST", rf"/jobs/{name}/cancel$")
    job = srv.jobs[name]
    assert job.done.wait(60) and job.status == "Canceled" and "CancelRequested" in job.times
    assert job.processes and all(p.poll() is not None for p in job.processes)  # it had started


AZUREML = Rig(
    "azureml", local_mode=True, cloud=True, fixtures=("blob_env", "azure_ml"),
    failure_says=r"job \S+ Failed",
    refusal=({"compute": "no-such-cluster"}, "compute 'no-such-cluster' in workspace 'ws': not found"),
    place=_azure_container,
    local=lambda ctx: {"container": ctx.place, "local": "true"},
    remote=_azureml_remote,
    jobs=lambda ctx: list(ctx.servers["azure_ml"].jobs),
    stored=_azure_blobs,
    runtime=lambda ctx, env: ctx.servers["azure_ml"].runtime_env.update(env),
    cancelled=_azureml_cancelled,
    job_server="azure_ml", job_calls={"create": ("PUT", r"/jobs/[^/]+$"), "get": ("GET", r"/jobs/[^/]+$"),
                                      "cancel": ("POST", r"/jobs/[^/]+/cancel$")},
)


# --- Databricks: the loopback workspace and its job cluster (tests/databricks)
DBX_VOLUME = "/Volumes/main/platbench/runs"


def _dbx_place(ctx: Ctx) -> str:
    """The volume; what the module's workspace held before this test, which its records are taken after."""
    ws = ctx.servers["workspace"]
    ctx.before = {"requests": len(ws.requests), "run": max(ws.runs, default=0), "files": set(ws.files)}
    return DBX_VOLUME


def _dbx_requests(ctx: Ctx) -> list[str]:
    return [p for _, p in ctx.servers["workspace"].requests[ctx.before["requests"]:]]


def _dbx_cancelled(ctx: Ctx) -> None:
    ws = ctx.servers["workspace"]
    assert "/api/2.2/jobs/runs/cancel" in _dbx_requests(ctx)
    (r,) = [r for run_id, r in ws.runs.items() if run_id > ctx.before["run"]]
    r.thread.join(60)
    assert not r.thread.is_alive()
    assert ws.get_run(r.run_id)["state"]["result_state"] == "CANCELED"


def _dbx_short_retries(ctx: Ctx) -> dict:
    """A profile (the SDK's configuration file, in the test's HOME) whose retry_timeout_seconds ends the SDK's
    retries of 429/503s and resets after seconds, not its default 300."""
    ws = ctx.servers["workspace"]
    cfg = Path(os.environ["HOME"]) / ".databrickscfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"[kit]\nhost = {ws.url}\ntoken = {ws.token}\nretry_timeout_seconds = 5\n")
    return {"profile": "kit"}


def _dbx_jobs(ctx: Ctx) -> list:
    return [p for p in _dbx_requests(ctx) if p.startswith("/api/2.2/jobs/runs/submit")]


def _dbx_files(ctx: Ctx) -> list[str]:
    new = set(ctx.servers["workspace"].files) - ctx.before["files"]
    return sorted(p for p in new if p.startswith(DBX_VOLUME + "/"))


DATABRICKS = Rig(
    "databricks", local_mode=True, cloud=True, fixtures=("workspace", "job_cluster"),
    failure_says="stand-in: failing on demand in epoch 2",
    refusal=({"volume": "/Volumes/main/platbench/missing"}, "volume /Volumes/main/platbench/missing does not exist"),
    place=_dbx_place,
    local=lambda ctx: {"volume": ctx.place, "poll_seconds": "0.2", "local": "true"},
    remote=lambda ctx: {"volume": ctx.place, "poll_seconds": "0.2", "node_type": "i3.xlarge",
                        "runtime": "16.4.x-cpu-ml-scala2.12"},  # a CPU node: a GPU one runs --device cuda
    jobs=_dbx_jobs,
    stored=_dbx_files,
    runtime=lambda ctx, env: ctx.servers["workspace"].runtime_env.update(env),
    cancelled=_dbx_cancelled,
    short_retries=_dbx_short_retries,
    job_server="workspace", job_calls={"create": ("POST", r"/jobs/runs/submit$"), "get": ("GET", r"/jobs/runs/get$"),
                                       "cancel": ("POST", r"/jobs/runs/cancel$")},
)


# --- Apolo: the loopback Apolo platform (tests/apolo/_apolo_server.py)
def _apolo_cancelled(ctx: Ctx) -> None:
    srv = ctx.servers["apolo_stand_in"]
    assert len(srv.killed) == 1
    job = srv.jobs[srv.killed[0]]
    deadline = time.time() + 30
    while not job.finished_ and time.time() < deadline:
        time.sleep(0.1)
    assert job.status == "cancelled"


def _apolo_stored(ctx: Ctx) -> list[str]:
    base = ctx.servers["apolo_stand_in"].root / "storage"
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def _apolo_remote(ctx: Ctx) -> dict:
    from _apolo_server import settings

    return settings(ctx.servers["apolo_stand_in"])


APOLO = Rig(
    "apolo", local_mode=False, cloud=True, fixtures=("apolo_stand_in",),
    failure_says=r"exit code 1\b",
    refusal=({"preset": "gpu-huge"}, "unknown preset 'gpu-huge' on cluster pb-cluster"),
    place=lambda ctx: "",
    remote=_apolo_remote,
    jobs=lambda ctx: [r for r in ctx.servers["apolo_stand_in"].requests
                      if r[0] == "POST" and r[1].startswith("/api/v1/jobs")],
    stored=_apolo_stored,
    runtime=lambda ctx, env: ctx.servers["apolo_stand_in"].runtime_env.update(env),
    cancelled=_apolo_cancelled,
    create_retried=False,  # apolo-sdk retries no job call (see test_kit_faults.BUGS)
    job_server="apolo_stand_in", job_calls={"create": ("POST", r"^/api/v1/jobs$"),
                                            "get": ("GET", r"^/api/v1/jobs/job-[^/]+$"),
                                            "cancel": ("DELETE", r"^/api/v1/jobs/job-[^/]+$")},
)


# --- this machine: `platbench launch local` trains in its own process; docker needs an engine. The kit proves
# for docker only its refusal before anything is created (no engine answers); nothing stands in for the Engine
# API, so its Ctrl-C (container stopped, run KILLED, resumed) and its engine's refusals are
# tests/image/test_image_docker_launch.py's, under scripts/image-test with a real engine
LOCAL = Rig("local", local_mode=True, cloud=False, fixtures=(), scratch=False,
            refusal=({"region": "x"}, "takes no --set options"),
            place=lambda ctx: "", jobs=lambda ctx: [], stored=lambda ctx: [])
NO_ENGINE = "unix:///nonexistent/docker.sock"


def _docker_env(ctx: Ctx) -> dict:
    """The record `platbench image build` leaves (a launch refuses without one), and no engine."""
    import json

    record = ctx.tmp_path / "work" / ".platbench" / "image.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"image": "platbench:latest", "id": "sha256:" + "ab" * 32, "build_args": {},
                                  "versions": {}, "pushed": {}}))
    return {"DOCKER_HOST": NO_ENGINE}


DOCKER = Rig("docker", local_mode=False, cloud=False, fixtures=(), cli_env=_docker_env,
             # run as the dataset's owner: pytest's folders are 0700, which the image's default user cannot read
             refusal=({"user": f"{os.getuid()}:{os.getgid()}"}, "no Docker engine answers at " + NO_ENGINE),
             place=lambda ctx: "", jobs=lambda ctx: [], stored=lambda ctx: [])

RIGS = {r.name: r for r in (LOCAL, VERTEX, SAGEMAKER, AZUREML, DATABRICKS, APOLO, DOCKER)}

# Registered platforms that run our image but are not in a rig, and where their launcher's behaviour is proven
NOT_IN_THE_KIT = {
    "skypilot": "its loopback is SkyPilot's own API server over moto's EC2: an instance is provisioned, no job "
                "ever runs the image there; its Ctrl-C while provisioning / before the jobs controller is up, "
                "and its refusal before the upload, are tests/skypilot/test_skypilot_launch.py's",
}


def rigs(where: Callable[[Rig], bool]) -> list:
    return [pytest.param(r, id=r.name) for r in RIGS.values() if where(r)]


@pytest.fixture
def kit_store(tmp_path_factory, monkeypatch):
    """One MLflow store per xdist worker for the kit's launches (MLFLOW_TRACKING_URI): a new store costs
    seconds of schema migrations, and each test finds its run by id or as the newest."""
    db = tmp_path_factory.getbasetemp() / "kit-mlflow" / "mlflow.db"
    db.parent.mkdir(exist_ok=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")


def open_rig(rig: Rig, request, tmp_path: Path, data: Path) -> Ctx:
    """The rig's servers for this test (its fixtures, by name) and a fresh bucket / container / volume."""
    ctx = Ctx(tmp_path, data, config=request.config)
    for name in rig.fixtures:
        ctx.servers[name] = request.getfixturevalue(name)
    ctx.place = rig.place(ctx)
    return ctx
