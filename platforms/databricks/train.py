"""Databricks: the trainer as a one-time Jobs run on a new single-node GPU job cluster, through databricks-sdk
(WorkspaceClient), with the dataset staged into a Unity Catalog volume through the Files API.

Why not the platbench image: on classic job clusters Databricks runs a custom container only through
Databricks Container Services, whose images are built from Databricks' runtime base images
(https://docs.databricks.com/en/compute/custom-containers.html); the platbench image is not, and the GPU ML
runtime is what brings CUDA, torch and the GPU drivers there. So the launcher builds a wheel from this checkout
(the same trainer package the image installs) and runs it in the platform's runtime: the run records the
runtime version in place of an image digest (tags platbench.runner=databricks-runtime,
platbench.databricks.runtime, platbench.databricks.wheel_sha256), and the trainer's results.json records the
software versions the runtime actually had. A documented way to run an arbitrary image exists only for the
AI Runtime CLI's workloads (`air register image`, Beta: https://docs.databricks.com/aws/en/machine-learning/
ai-runtime/cli/docker-images), not for Jobs runs through the SDK; it is not used here.
GPU and ML runtimes need dedicated (single-user) access mode: standard access mode supports neither
(https://docs.databricks.com/compute/access-mode-limitations.html), hence data_security_mode SINGLE_USER.

Platform contracts relied on (official pages):
- One-time runs: POST /api/2.2/jobs/runs/submit (tasks with new_cluster, libraries, spark_python_task;
  timeout_seconds; idempotency_token), runs/get, runs/get-output, runs/cancel:
  https://docs.databricks.com/api/workspace/jobs/submit, …/jobs/getrun, …/jobs/getrunoutput, …/jobs/cancelrun
- Run states (life_cycle_state, result_state) and durations (queue/setup/execution/cleanup_duration):
  https://docs.databricks.com/api/workspace/jobs/getrun (platforms/databricks/phases.py)
- Single-node job clusters (num_workers 0, spark.databricks.cluster.profile singleNode, spark.master
  local[*], custom tag ResourceClass=SingleNode): https://docs.databricks.com/en/compute/configure.html
- Node types and runtimes the workspace offers: GET /api/2.1/clusters/list-node-types and
  /api/2.1/clusters/spark-versions (https://docs.databricks.com/api/workspace/clusters); GPU ML runtimes
  are named `<version>.x-gpu-ml-scala2.1x` (https://docs.databricks.com/en/machine-learning/databricks-runtime-ml.html)
- Spot: aws_attributes.availability SPOT_WITH_FALLBACK, azure_attributes SPOT_WITH_FALLBACK_AZURE,
  gcp_attributes PREEMPTIBLE_WITH_FALLBACK_GCP; first_on_demand 0 so the single node (the driver) may be
  spot too: https://docs.databricks.com/api/workspace/clusters/create
- Cluster events (CREATING, RUNNING, TERMINATING …): POST /api/2.1/clusters/events
- Volumes and the Files API: platforms/databricks/storage.py; wheels installed from a volume:
  https://docs.databricks.com/en/libraries/volume-libraries.html
- The `databricks` CLI equivalents: https://docs.databricks.com/en/dev-tools/cli/commands.html
  (`databricks jobs submit --json`, `databricks jobs get-run`, `databricks fs cp`, …)

Cost: the Jobs API reports no billed DBUs per run, so the cost is an estimate: the run's cluster seconds
(setup + execution + cleanup: the cluster exists from its creation to its termination) × (the node type's
DBU rate × USD per DBU + the VM's list price), both from prices.yaml.

Polling, Ctrl-C and teardown are the cloud-job template's (platforms/core/cloud_job.py); `Workspace` is its
CloudJobs seam (runs/submit, runs/get, runs/cancel) plus the workspace's other calls."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from platforms.core import pricing, tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_settings import CloudJobSettings, LocalMode, TimeLimit
from platforms.core.container_env import container_env
from platforms.core.names import NameRule
from platforms.core.run_tags import price_tags
from platforms.core.staging_plan import closing_steps, staging_steps
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs
from platforms.core.settings import validate_job
from platforms.databricks import SPEC
from platforms.databricks.phases import DURATIONS, PHASES, TERMINAL
from platforms.databricks.storage import volume_full_name, volume_path
from platforms.errors import UserError

SHARD_MB = 32          # below the SDK's 50 MiB multipart threshold: each shard is one Files API PUT
ENTRY_SCRIPT = "run_trainer.py"   # the task's python_file: platforms/databricks/run_trainer.py, uploaded as it is
RUNTIME_RE = re.compile(r"^\d+\.\d+\.x-([cg]pu-)?ml-scala2\.1[23]$")  # CPU (x-cpu-ml-) and GPU (x-gpu-ml-) ML runtimes
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
CLOUDS = {".cloud.databricks.com": "aws", ".azuredatabricks.net": "azure", ".gcp.databricks.com": "gcp"}
SPOT = {"aws": ("aws_attributes", "SPOT_WITH_FALLBACK", "ON_DEMAND"),
        "azure": ("azure_attributes", "SPOT_WITH_FALLBACK_AZURE", "ON_DEMAND_AZURE"),
        "gcp": ("gcp_attributes", "PREEMPTIBLE_WITH_FALLBACK_GCP", "ON_DEMAND_GCP")}
RESULT = {"SUCCESS": "finished", "CANCELED": "killed", "CANCELLED": "killed", "TIMEDOUT": "failed",
          "FAILED": "failed", "MAXIMUM_CONCURRENT_RUNS_REACHED": "failed", "UPSTREAM_FAILED": "failed"}


# a one-time run's run_name (runs/submit); it is also a folder in the volume
NAME = NameRule(100, chars="A-Za-z0-9_.", title="a valid run name", hint="letters, digits, '.', '-' and '_'")


class DatabricksSettings(CloudJobSettings, TimeLimit, LocalMode):
    """`--set KEY=VALUE` for `platbench launch databricks`; job_name (the one-time run's name in Databricks),
    run_name (its output folder jobs/<run_name>/outputs: a run of the same run_name resumes from the
    checkpoints there; also the default job_name), staging, prefix, poll_seconds, max_run and local as every
    cloud job has them (core/cloud_settings.py)."""

    JOB_NAME: ClassVar[NameRule] = NAME
    RUN_NAME: ClassVar[NameRule] = NAME
    MAX_RUN_LIMIT: ClassVar[int] = 48 * 3600

    host: Optional[str] = Field(default_factory=lambda: os.environ.get("DATABRICKS_HOST"))
    profile: Optional[str] = Field(default_factory=lambda: os.environ.get("DATABRICKS_CONFIG_PROFILE"))
    volume: Optional[str] = None                        # /Volumes/CATALOG/SCHEMA/VOLUME
    node_type: str = "g4dn.xlarge"
    runtime: str = "16.4.x-gpu-ml-scala2.12"
    spot: bool = False
    cloud: Optional[Literal["aws", "azure", "gcp"]] = None  # default: from the host name
    region: str = "us-east-1"                           # where prices are looked up

    @field_validator("volume")
    @classmethod
    def _volume(cls, value):
        if value is None:
            return None
        try:
            return volume_full_name(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self):
        if not RUNTIME_RE.match(self.runtime):
            raise ValueError(f"runtime {self.runtime!r} is not a Databricks ML runtime (e.g. "
                             "16.4.x-gpu-ml-scala2.12; `databricks clusters spark-versions` lists them)")
        if not NODE_RE.match(self.node_type):
            raise ValueError(f"node_type {self.node_type!r} is not a node type id (e.g. g4dn.xlarge, "
                             "Standard_NC4as_T4_v3, a2-highgpu-1g)")
        if self.host is not None and not re.match(r"^https?://[A-Za-z0-9.-]+(:\d+)?/?$", self.host):
            raise ValueError(f"host {self.host!r} is not a workspace URL (https://WORKSPACE.cloud.databricks.com)")
        if not re.match(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", self.prefix.strip("/")):
            raise ValueError(f"prefix {self.prefix!r}: a relative folder of letters, digits, '.', '-' and '_'")
        return self

    @property
    def cloud_name(self) -> str:
        """aws | azure | gcp: the setting, else the workspace host's domain, else aws."""
        from urllib.parse import urlsplit

        if self.cloud:
            return self.cloud
        host = urlsplit(self.host or "").hostname or ""
        return next((c for suffix, c in CLOUDS.items() if host.endswith(suffix)), "aws")

    @property
    def bucket(self) -> Optional[str]:
        """The volume's full name: `platbench transfer databricks` opens the store by it."""
        return self.volume


def _reason(exc) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build_wheel(dest: Path) -> Path:
    """A wheel of this checkout (trainer + platforms), built in a copy so the checkout gets no build/ folder."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").is_file():
        raise UserError(f"databricks: {repo} is not a platbench checkout (no pyproject.toml): the run needs a wheel "
                        "built from one")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (repo / name).is_file():
                shutil.copy2(repo / name, src / name)
        for pkg in ("trainer", "platforms"):
            shutil.copytree(repo / pkg, src / pkg, ignore=ignore)
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--wheel-dir", str(dest), str(src)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise UserError("databricks: building the platbench wheel failed: "
                            + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    wheels = sorted(Path(dest).glob("platbench-*.whl"))
    if not wheels:
        raise UserError("databricks: pip built no platbench wheel")
    return wheels[-1]


class Workspace(CloudJobs):
    """The seam around the workspace's control plane (WorkspaceClient): node types, runtimes, one-time runs,
    their output and cluster events. Every SDK error becomes one line."""

    def __init__(self, client):
        self.w = client

    def call(self, what: str, fn, *args, **kwargs):
        from databricks.sdk.errors import DatabricksError

        try:
            return fn(*args, **kwargs)
        except DatabricksError as exc:
            raise UserError(f"databricks: {what}: {_reason(exc)}") from None
        except (OSError, ValueError) as exc:  # connection refused, bad host, … (after the SDK's own retries)
            raise UserError(f"databricks: {what}: {_reason(exc)}") from None

    def node_types(self) -> dict[str, Any]:
        resp = self.call("list node types", self.w.clusters.list_node_types)
        return {n.node_type_id: n for n in resp.node_types or []}

    def runtimes(self) -> set[str]:
        resp = self.call("list runtimes", self.w.clusters.spark_versions)
        return {v.key for v in resp.versions or []}

    def create(self, spec: dict) -> int:
        from databricks.sdk.service.jobs import SubmitTask

        waiter = self.call(f"submit run {spec['run_name']!r}", self.w.jobs.submit, run_name=spec["run_name"],
                           tasks=[SubmitTask.from_dict(t) for t in spec["tasks"]],
                           timeout_seconds=spec["timeout_seconds"], idempotency_token=spec["idempotency_token"])
        return int(waiter.run_id)

    def get(self, run_id: int) -> dict:
        return self.call(f"run {run_id}", self.w.jobs.get_run, run_id).as_dict()

    def logs(self, task_run_id: int) -> str:
        """The task's stdout as runs/get-output returns it (its last 5 MB); '' when not (yet) available."""
        from databricks.sdk.errors import DatabricksError

        try:
            return self.w.jobs.get_run_output(task_run_id).logs or ""
        except (DatabricksError, OSError):
            return ""

    def failure(self, task_run_id: int) -> str:
        """Why a task failed, first line: runs/get-output's `error`. A failed run's state_message only says "Workload
        failed, see run output for details" (https://docs.databricks.com/api/workspace/jobs/getrunoutput)."""
        from databricks.sdk.errors import DatabricksError

        try:
            error = self.w.jobs.get_run_output(task_run_id).error or ""
        except (DatabricksError, OSError):
            return ""
        return next((line.strip() for line in error.splitlines() if line.strip()), "")

    def cluster_events(self, cluster_id: str) -> list[dict]:
        from databricks.sdk.errors import DatabricksError

        try:
            return [e.as_dict() for e in self.w.clusters.events(cluster_id)]
        except (DatabricksError, OSError):
            return []

    def cancel(self, run_id: int) -> None:
        self.call(f"cancel run {run_id}", self.w.jobs.cancel_run, run_id)


@dataclass(kw_only=True)
class DatabricksHandle(CloudJob):
    """job_id: the run's run_id (None in local mode)."""

    run_name: str
    outputs_key: str
    epochs_seen: int = 0                # epochs the driver's log has reported so far
    epochs_shown: bool = False          # the progress bar has its total


class DatabricksPlatform(CloudJobPlatform):
    spec = SPEC
    settings_model = DatabricksSettings
    PHASES, TERMINAL = PHASES, TERMINAL
    job_noun = "Databricks run"
    _wheel: Optional[tuple[str, str]] = None   # (volume path of the wheel, its sha256), once staged

    def _price(self) -> Optional[pricing.Quote]:
        cfg = self.parsed()
        return pricing.training_quote("databricks", cfg.region, [(cfg.node_type, 1), (f"{cfg.node_type} DBU", 1)],
                                      cfg.spot)

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        from platforms.databricks import credentials

        cfg = self.parsed()
        validate_job(job)
        self._quote = self._price()
        return self.needs(credentials.find(cfg.profile), "Databricks", {
            "volume": "--set volume=/Volumes/CATALOG/SCHEMA/VOLUME (a Unity Catalog volume for data and outputs)"},
            f"{cfg.node_type} (VM and DBUs) in {cfg.region}")

    def check(self, job: Job) -> None:
        from platforms.databricks import credentials
        from platforms.databricks.storage import VolumeStore, workspace_client

        cfg = self.parsed()
        validate_job(job)
        if not cfg.volume:
            raise UserError("databricks: no volume: add --set volume=/Volumes/CATALOG/SCHEMA/VOLUME for the dataset, "
                            "the wheel and the outputs")
        found, where = credentials.find(cfg.profile)
        if not found:
            raise UserError(f"databricks: no Databricks credentials found: {where}")
        client = workspace_client(cfg.host, cfg.profile)
        self._store = VolumeStore(cfg.volume, client=client)
        self.jobs = Workspace(client)
        if not cfg.local:
            nodes = self.jobs.node_types()
            node = nodes.get(cfg.node_type)
            if node is None:
                gpus = sorted(k for k, n in nodes.items() if (n.num_gpus or 0) > 0)
                raise UserError(f"databricks: unknown node type {cfg.node_type!r} in this workspace "
                                f"(GPU node types: {', '.join(gpus[:8]) or 'none'})")
            if "-gpu-" in cfg.runtime and not (node.num_gpus or 0):
                raise UserError(f"databricks: node type {cfg.node_type!r} has no GPU; the GPU ML runtime "
                                f"{cfg.runtime} needs one")
            if cfg.runtime not in self.jobs.runtimes():
                raise UserError(f"databricks: runtime {cfg.runtime!r} is not offered by this workspace "
                                "(databricks clusters spark-versions)")
            job.on_hardware(node.num_gpus)  # a GPU node type: the trainer on --device cuda
        try:
            exists = self._store.bucket_exists()
        except Exception as exc:  # noqa: BLE001 - connection errors, bad tokens: one line
            raise UserError(f"databricks: volume {cfg.volume}: {_reason(exc)}") from None
        if not exists:
            raise UserError(f"databricks: volume {volume_path(cfg.volume)} does not exist or is not readable with "
                            "these credentials (databricks volumes read " + cfg.volume + ")")
        self._quote = self._price()

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: cfg.region, tracking.Tag.INSTANCE_TYPE: cfg.node_type,
                tracking.Tag.LOCAL_MODE: str(cfg.local).lower(), tracking.Tag.STAGING: cfg.staging,
                "platbench.spot": str(cfg.spot).lower(), "platbench.runner": "databricks-runtime",
                "platbench.databricks.runtime": cfg.runtime, "platbench.databricks.cloud": cfg.cloud_name,
                "platbench.image_note": "not run from the platbench image: Databricks ML runtimes take no custom "
                                        "container; the trainer ran as a wheel in runtime " + cfg.runtime}
        return {**tags, **price_tags(self._quote)}

    # ------------------------------------------------------------------ the request
    def _run_name(self, job: Job) -> str:
        cfg = self.parsed()
        return cfg.job_name or cfg.run_name or cfg.JOB_NAME.unique(f"platbench-{job.model}")

    def outputs_key(self, name: str) -> str:
        """The run's output folder in the volume: fixed by run_name (else the run's own name), so a run
        submitted again under the same run_name finds the checkpoints the interrupted one left and resumes."""
        cfg = self.parsed()
        return f"{cfg.prefix.strip('/')}/jobs/{cfg.run_key(name)}/outputs/"

    def run_spec(self, job: Job, name: str, data_key: str, dataset_name: str, wheel_key: str, token: str) -> dict:
        """The one-time run in `databricks jobs submit --json`'s shape (the Jobs API runs/submit body). `token` is
        this attempt's idempotency token: a token that exists returns the existing run and starts none (jobs.submit,
        https://docs.databricks.com/api/workspace/jobs/submit), so each launch has its own, and the SDK's retries of
        one submit reuse it."""
        cfg = self.parsed()
        root = volume_path(cfg.volume or "CATALOG.SCHEMA.VOLUME")
        env = container_env("databricks")
        attrs, spot, on_demand = SPOT[cfg.cloud_name]
        availability = {"availability": spot if cfg.spot else on_demand}
        if cfg.cloud_name != "gcp":
            availability["first_on_demand"] = 0 if cfg.spot else 1  # the single node is the driver
        cluster = {"spark_version": cfg.runtime, "node_type_id": cfg.node_type, "num_workers": 0,
                   "spark_conf": {"spark.databricks.cluster.profile": "singleNode", "spark.master": "local[*]"},
                   "custom_tags": {"ResourceClass": "SingleNode", "platbench": "true"},
                   "data_security_mode": "SINGLE_USER", "spark_env_vars": env, attrs: availability}
        wheel_dir = wheel_key.rsplit("/", 1)[0]
        params = ["train", "--data", f"{root}/{data_key}", "--out", f"{root}/{self.outputs_key(name).rstrip('/')}",
                  "--dataset-name", dataset_name, *job.trainer_args()]
        return {"run_name": name, "timeout_seconds": cfg.max_run, "idempotency_token": token,
                "tasks": [{"task_key": "train", "new_cluster": cluster,
                           "libraries": [{"whl": f"{root}/{wheel_key}"}],
                           "spark_python_task": {"python_file": f"{root}/{wheel_dir}/{ENTRY_SCRIPT}",
                                                 "parameters": params}}]}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        prefix = cfg.prefix.strip("/")
        root = volume_path(cfg.volume or "CATALOG.SCHEMA.VOLUME")
        name = cfg.job_name or cfg.run_name or cfg.JOB_NAME.placeholder(f"platbench-{job.model}")
        data_key = (f"{prefix}/datasets/<fingerprint>/platbench-manifest.json" if cfg.staging == "sharded"
                    else f"{prefix}/naive/{Path(job.data).resolve().name}")
        wheel_key = f"{prefix}/wheels/<sha256>/platbench-0.1.0-py3-none-any.whl"
        spec = self.run_spec(job, name, data_key, Path(job.data).resolve().name, wheel_key,
                             attempt_token(name, "<uuid4 of this launch>"))
        who = f" --profile {cfg.profile}" if cfg.profile else ""
        steps = [PlanStep("check credentials, the volume" + ("" if cfg.local else
                          ", the node type (GPUs) and the runtime") + " before anything is uploaded",
                          f"databricks current-user me{who} && databricks volumes read {cfg.volume or 'CATALOG.SCHEMA.VOLUME'}{who}"
                          + ("" if cfg.local else f" && databricks clusters list-node-types{who} && "
                             f"databricks clusters spark-versions{who}")),
                 PlanStep("build a wheel of this checkout (trainer + platforms) and put it and the task's entry "
                          f"script in the volume under {prefix}/wheels/<sha256>/ (content-addressed)",
                          f"pip wheel --no-deps -w dist . && databricks fs cp dist/platbench-0.1.0-py3-none-any.whl "
                          f"dbfs:{root}/{wheel_key}{who}")]
        steps += staging_steps(job.data, cfg.staging, f"{root}/{prefix}",
                               lambda what, to: f"databricks fs cp {what} dbfs:{to}{who}",
                               lambda what, to: f"databricks fs cp -r {what} dbfs:{to}{who}", store="the volume",
                               unit="volume file", resumable=f"<{SHARD_MB} MB, one Files API PUT each; overwrite=false: "
                                                             "resumable")
        if cfg.local:
            steps.append(PlanStep("local mode: run the task here as the job cluster would (the wheel installed into a "
                                  "scratch folder, /Volumes paths downloaded before and the output uploaded after)",
                                  "python run_trainer.py " + " ".join(shlex.quote(p) for p in
                                                                      spec["tasks"][0]["spark_python_task"]["parameters"])))
        else:
            spot = "spot with fallback" if cfg.spot else "on demand"
            steps += [
                PlanStep(f"submit a one-time run on a new single-node {cfg.node_type} job cluster ({spot}, runtime "
                         f"{cfg.runtime}, timeout {cfg.max_run}s); run.json: " + json.dumps(spec),
                         f"databricks jobs submit --json @run.json --no-wait{who}"),
                PlanStep("wait, reporting the run's states (QUEUED, PENDING, RUNNING, TERMINATING), its cluster's "
                         "events and the epochs in the driver's log",
                         f"databricks jobs get-run RUN_ID{who} && databricks jobs get-run-output TASK_RUN_ID{who}"),
            ]
        return steps + closing_steps(
            f"databricks fs cp -r dbfs:{root}/{self.outputs_key(name).rstrip('/')} .{who}",
            "runtime (in place of an image digest), node type, cost estimate = cluster seconds x (DBUs x DBU price + "
            "VM price)" + (f" ({self._quote.usd_per_hour:.4f} USD/h, {self._quote.basis})" if self._quote else ""),
            None if cfg.local else f"databricks jobs cancel-run RUN_ID{who}",
            what="results.json, metrics.jsonl, train.log and model/ from the run's output folder",
            stop="cancel the run (its job cluster terminates with it)")

    # ------------------------------------------------------------------ stage / submit and the run's states
    def stage(self, job: Job) -> dict[str, Any]:
        cfg = self.parsed()
        prefix = cfg.prefix.strip("/")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            wheel = build_wheel(Path(tmp))
            data = wheel.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            folder = f"{prefix}/wheels/{sha}"
            self._store.put_bytes(f"{folder}/{ENTRY_SCRIPT}", Path(__file__).with_name(ENTRY_SCRIPT).read_bytes(),
                                  if_absent=True)
            self._store.put_bytes(f"{folder}/{wheel.name}", data, if_absent=True)  # its name: pip reads it
            self._wheel = (f"{folder}/{wheel.name}", sha)
        wheel_s = time.perf_counter() - t0
        figures = super().stage(job, **({"shard_mb": SHARD_MB} if cfg.staging == "sharded" else {}))
        return {**figures, "wheel_seconds": wheel_s, "platbench.databricks.wheel_sha256": sha}

    def submit(self, job: Job, staged: dict[str, Any]) -> DatabricksHandle:
        cfg = self.parsed()
        name = self._run_name(job)
        data_key = self._staged.data_key.rstrip("/")
        spec = self.run_spec(job, name, data_key, self._staged.name, self._wheel[0], attempt_token(name))
        handle = DatabricksHandle(spec=spec, staged=self._staged, run_name=name, outputs_key=self.outputs_key(name))
        if cfg.local:
            from platforms.databricks.emulator import task_run

            handle.local_run = task_run(0, name, spec["tasks"][0], self._store, cfg.max_run, "local")
            handle.local_run.start()
        else:
            handle.job_id = self.jobs.create(spec)
        return handle

    def job_state(self, described: dict) -> str:
        return (described.get("state") or {}).get("life_cycle_state") or "PENDING"

    def after_poll(self, handle: DatabricksHandle, d: dict, progress) -> None:
        """The driver's stdout, as runs/get-output shows it: the trainer's "- Epoch: N" lines."""
        from trainer import loglines

        life, task = self.job_state(d), (d.get("tasks") or [{}])[0]
        if not ((life in ("RUNNING", "TERMINATING") or life in TERMINAL) and task.get("run_id")):
            return
        done = [int(float(m)) for m in re.findall(loglines.regex("epoch"), self.jobs.logs(int(task["run_id"])),
                                                  re.MULTILINE)]
        if done and not handle.epochs_shown and job_epochs(handle.spec):
            progress.epochs(job_epochs(handle.spec))
            handle.epochs_shown = True
        for epoch in done[handle.epochs_seen:]:
            progress.epoch_done(epoch, "")
        handle.epochs_seen = max(handle.epochs_seen, len(done))

    def after_end(self, handle: DatabricksHandle, d: dict, outcome: Outcome) -> Outcome:
        """A failed run's reason from runs/get-output; how long its cluster took to come up, from its events."""
        task = (d.get("tasks") or [{}])[0]
        if outcome.status == "failed" and task.get("run_id"):
            outcome.message = self.jobs.failure(int(task["run_id"])) or outcome.message
        cluster_id = (task.get("cluster_instance") or {}).get("cluster_id")
        if cluster_id:
            outcome.metrics.update(cluster_start_seconds(self.jobs.cluster_events(cluster_id)))
        return outcome

    def job_outcome(self, handle: DatabricksHandle, d: dict) -> Outcome:
        state = d.get("state") or {}
        status = RESULT.get(state.get("result_state") or "", "failed")
        phases = {phase: ms / 1000.0 for key, phase in DURATIONS.items() if (ms := run_duration(d, key))}
        cluster_s = sum(phases.get(p, 0.0) for p in ("provisioning", "training", "stopping")) or None
        cfg = self.parsed()
        on_demand = pricing.quote("databricks", cfg.region, [(cfg.node_type, 1), (f"{cfg.node_type} DBU", 1)])
        tags = {tracking.Tag.JOB_ID: str(handle.job_id if handle.job_id is not None else handle.run_name),
                "platbench.databricks.run_name": handle.run_name,
                "platbench.databricks.state": f"{state.get('life_cycle_state', '')}/{state.get('result_state', '')}",
                "platbench.cost_basis": "estimate: cluster seconds (setup + execution + cleanup) x (DBU rate x USD "
                                        "per DBU + VM list price); the Jobs API reports no billed DBUs per run"}
        return Outcome(status, None, phases=phases, billed_seconds=None, **self.costs(cluster_s, on_demand),
                       tags=tags, message=state.get("state_message") or f"run {handle.run_name} {status}")

    # ------------------------------------------------------------------ collect
    def collect(self, handle: DatabricksHandle, outcome: Outcome, dest: Path) -> Path:
        return self.collect_folders(handle, outcome, dest, [(handle.outputs_key, "")],
                                    f"databricks run {handle.run_name}", self._store.uri(handle.outputs_key))


def attempt_token(name: str, unique: Optional[str] = None) -> str:
    """An idempotency token of at most 64 characters (jobs.submit): the run's name, cut, and one launch's uuid4."""
    import uuid

    return f"{name[:31]}-{unique or uuid.uuid4().hex}"


def run_duration(d: dict, key: str) -> int:
    """A runs/get duration (ms). A runs/submit with tasks[] is a multitask run, whose own setup, execution and
    cleanup durations are 0: they are its tasks' (Run.setup_duration in databricks-sdk's jobs.py,
    https://docs.databricks.com/api/workspace/jobs/getrun), summed here (this launcher submits one task)."""
    return d.get(key) or sum(t.get(key) or 0 for t in d.get("tasks") or [])


def job_epochs(spec: dict) -> Optional[int]:
    params = spec["tasks"][0]["spark_python_task"]["parameters"]
    if "--epochs" in params:
        return int(params[params.index("--epochs") + 1])
    from platforms.core.emulator import preset_epochs

    return preset_epochs(params[params.index("--model") + 1] if "--model" in params else None)


def cluster_start_seconds(events: list[dict]) -> dict[str, float]:
    """From the cluster's events (POST /api/2.1/clusters/events, timestamps in ms): seconds from CREATING to
    the first RUNNING, i.e. how long the node took to come up before libraries were installed."""
    created = min((e["timestamp"] for e in events if e.get("type") == "CREATING" and e.get("timestamp")), default=None)
    running = min((e["timestamp"] for e in events if e.get("type") == "RUNNING" and e.get("timestamp")), default=None)
    if created is None or running is None or running < created:
        return {}
    return {"cluster_start_seconds": (running - created) / 1000.0}
