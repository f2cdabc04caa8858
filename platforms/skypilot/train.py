"""SkyPilot: the platbench image as one SkyPilot task (task.py) on the cloud asked for, launched through
SkyPilot's Python API (client of its API server; 0.9: every call returns a request id that
`sky.stream_and_get` streams and resolves):

- on-demand: `sky.launch(task, cluster_name, down=True)` → (job_id, handle); the job's log with
  `sky.tail_logs(cluster, job_id, follow=True)`; its end state with `sky.job_status`; the cluster always
  removed with `sky.down(cluster)` (https://docs.skypilot.co/en/latest/reference/api.html, "Cluster API").
- use_spot=true: a managed job, `sky.jobs.launch(task, name)` → job_id; SkyPilot's controller recovers it
  after a preemption (resources.job_recovery) and the trainer resumes from its checkpoint in the output
  mount; `sky.jobs.tail_logs(job_id=…, follow=True)`, `sky.jobs.queue`, `sky.jobs.cancel` on an error or
  Ctrl-C (https://docs.skypilot.co/en/latest/reference/api.html, "Managed Jobs API";
  https://docs.skypilot.co/en/latest/examples/managed-jobs.html).

The cost is an estimate: the launched resources' catalog price × the cluster's uptime
(`Resources.get_cost(seconds)`, SkyPilot's catalog), never the cloud's bill. A managed job's controller
launches its own cluster, whose launched resources the client does not get: its cost is not estimated.

Before anything is staged, check() puts the task through SkyPilot's schema, loader and storage-source check,
asks the API server for its health and its optimizer for the resources (`sky.optimize`), and fetches the
image registry's login (an ECR token) for the task's envs.

Tested (tests/skypilot/test_skypilot_launch.py) against SkyPilot 0.9.2's own API server run from a side
environment (its server does not start with this lock's FastAPI 0.165: `fastapi.FastAPI(prefix=…)`;
scripts/skypilot-server-env), AWS played by moto: the optimizer's choice from a catalog the test writes, the
AWS provisioner's calls up to RunInstances, Ctrl-C while SkyPilot waits for SSH → the launch request
cancelled and the instance terminated by `sky.down`, an accelerator the catalog lacks refused before the
upload; use_spot=true up to SkyPilot provisioning its jobs controller VM, Ctrl-C there → the jobs.launch
request cancelled, no job to cancel, the controller (SkyPilot's, shared) named with `sky down`. Not run:
nothing after SSH (moto's instance is no machine): the container, the mounts, the log tail, job_status,
collect, the cost estimate, a managed job on its controller and its preemption recovery.
"""
from __future__ import annotations

import io
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from platforms.core import tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs
from platforms.core.container_env import container_env
from platforms.core.run_tags import image_tags
from platforms.core.settings import validate_job
from platforms.core.staging_plan import staging_steps
from platforms.errors import UserError
from platforms.skypilot import SPEC
from platforms.skypilot.task import NAME, SkyPilotSettings, task_config

PREEMPTED_EXIT = 143  # the trainer checkpoints on SIGTERM and exits 128 + 15
ENDED = "ended"  # job_state of any terminal status: SkyPilot's own say which (JobStatus.is_terminal)


def sky():
    from platforms.core.sdk import require

    return require("sky", SPEC.extra, "SkyPilot")


def validated_task(config: dict):
    """The task through SkyPilot's own checks: its YAML schema, then its loader (which parses resources,
    accelerators and storage mounts); a refusal is one line."""
    import copy

    mod = sky()
    from sky.utils import common_utils, schemas

    try:
        common_utils.validate_schema(config, schemas.get_task_schema(), "Invalid task YAML: ")
        task = mod.Task.from_yaml_config(copy.deepcopy(config))  # the loader pops keys from what it reads
        for storage in task.storage_mounts.values():
            # the source check the launch runs when it constructs the storage (Storage.construct), offline:
            # a MOUNT source below the bucket was refused only once the launch had reached the API server
            type(storage)._validate_source(storage.source, storage.mode, storage.sync_on_reconstruction)
        return task
    except Exception as exc:  # noqa: BLE001 - ValueError, InvalidSkyPilotConfigError, StorageSpecError …
        raise UserError(f"skypilot: the task is refused: {str(exc).strip().splitlines()[0]}") from None


def cancel_request(request_id: str) -> None:
    """Stop a request on the API server (`sky api cancel`); a request already ended is left as it is."""
    mod = sky()
    try:
        mod.get(mod.api_cancel(request_id, silent=True))
    except Exception as exc:  # noqa: BLE001 - the teardown that follows must still run
        print(f"platbench: could not cancel SkyPilot request {request_id} (run `sky api cancel {request_id}`): "
              f"{exc}".splitlines()[0], file=sys.stderr)


ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")
DOCKER_LOGIN = ("SKYPILOT_DOCKER_USERNAME", "SKYPILOT_DOCKER_PASSWORD", "SKYPILOT_DOCKER_SERVER")


def registry_login(image: str) -> dict[str, str]:
    """The task envs with which SkyPilot logs the cluster into a private registry before it pulls image_id
    (https://docs.skypilot.co/en/latest/examples/docker-containers.html#private-registries). Amazon ECR: a
    12-hour token from GetAuthorizationToken (what `aws ecr get-login-password` prints), user AWS
    (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html); another registry: the three
    variables from platbench's own environment when they are set; else none (a public image)."""
    import os

    host = image.split("/", 1)[0]
    ecr = ECR_HOST.match(host)
    if ecr is None:
        return {k: os.environ[k] for k in DOCKER_LOGIN} if all(os.environ.get(k) for k in DOCKER_LOGIN) else {}
    import base64

    from platforms.clouds.aws.sdk import boto3_module

    boto3 = boto3_module("boto3 (the ECR login)")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (data,) = boto3.session.Session(region_name=ecr.group(1)).client("ecr").get_authorization_token()[
            "authorizationData"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"skypilot: no login for the image's registry (ECR {host}): {str(exc).splitlines()[0]}") from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return dict(zip(DOCKER_LOGIN, (username, password, host)))


def not_up_controllers() -> list[str]:
    """SkyPilot's jobs controllers (clusters named sky-jobs-controller-…) that are not UP, from `sky status`."""
    mod = sky()
    try:
        records = mod.get(mod.status(all_users=False))
    except Exception:  # noqa: BLE001 - only for the message of a teardown already in trouble
        return []
    return [r["name"] for r in records if r["name"].startswith("sky-jobs-controller-")
            and getattr(r["status"], "value", r["status"]) != "UP"]


@dataclass(kw_only=True)
class SkyHandle(CloudJob):
    """job_id: SkyPilot's job id (None until the launch returned it); described: {"status", "terminal"}."""

    name: str                 # cluster name, or the managed job's name
    managed: bool
    out_key: str
    resources: Any = None     # the launched sky.Resources (on-demand clusters)
    started: float = 0.0
    ended: Optional[float] = None
    done: bool = False        # the job ended, or was cancelled (a managed job) / its cluster downed
    exit_code: Optional[int] = None  # what the log tail returned (sky.exceptions.JobExitCode)
    downed: bool = False      # cancelled: the managed job, or the on-demand cluster taken down
    tail: Any = None          # the log-tail thread
    last_status: Optional[str] = None


class SkyJobs(CloudJobs):
    """One launch's job: `sky.launch` / `sky.jobs.launch`, its status, its cancel (a managed job's cancel;
    an on-demand cluster runs only this job, so `sky down`)."""

    def __init__(self, handle: SkyHandle):
        self.handle = handle

    def create(self, task) -> str:
        """The launch request's id; the launch itself is streamed by submit()."""
        mod = sky()
        return (mod.jobs.launch(task, name=self.handle.name) if self.handle.managed
                else mod.launch(task, cluster_name=self.handle.name, down=True))

    def get(self, job_id: int) -> dict:
        mod, handle = sky(), self.handle
        if handle.managed:
            records = mod.stream_and_get(mod.jobs.queue(refresh=False))
            rec = next((r for r in records if r.get("job_id") == job_id), None)
            status = rec and rec.get("status")
        else:
            try:
                status = mod.stream_and_get(mod.job_status(handle.name, [job_id])).get(job_id)
            except mod.exceptions.ClusterDoesNotExist:
                # launched with down=True, the cluster removes itself once the job ends: the log tail's exit
                # code (sky.exceptions.JobExitCode: 0 succeeded) says how it ended
                if handle.exit_code is None:
                    raise UserError(f"skypilot: cluster {handle.name} is gone and its job's end is unknown") from None
                return {"status": "SUCCEEDED" if handle.exit_code == 0 else f"FAILED (exit code {handle.exit_code})",
                        "terminal": True}
        return {"status": status.value if status is not None else None,
                "terminal": bool(status is not None and status.is_terminal())}

    def cancel(self, job_id: int) -> None:
        mod, handle = sky(), self.handle
        try:
            mod.stream_and_get(mod.jobs.cancel(job_ids=[job_id]) if handle.managed else mod.down(handle.name))
        except mod.exceptions.ClusterDoesNotExist:
            pass  # already down (`down=True` removes it when the job ends)
        handle.done = handle.downed = True


class _Lines(io.TextIOBase):
    """An output stream for SkyPilot's log tailing that hands each line to the progress display."""

    def __init__(self, progress):
        self.progress, self.buf = progress, ""

    def write(self, text: str) -> int:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.progress.print(line)
        return len(text)


class SkyPilotPlatform(CloudJobPlatform):
    spec = SPEC
    settings_model = SkyPilotSettings
    TERMINAL = frozenset({ENDED})
    job_noun = "SkyPilot job"

    def __init__(self, settings=None):
        super().__init__(settings)
        self._login: dict[str, str] = {}

    # ------------------------------------------------------------------ check
    def _needs(self) -> list[str]:
        cfg = self.parsed()
        needs = []
        if not cfg.cloud:
            needs.append("--set cloud=aws|gcp|azure|lambda|runpod|kubernetes")
        if not cfg.accelerators:
            needs.append("--set accelerators=NAME:COUNT (e.g. A100:1; `sky show-gpus`)")
        if not cfg.image:
            needs.append("--set image=REGISTRY/platbench@sha256:… (`platbench image push`)")
        if not cfg.bucket:
            needs.append("--set bucket=s3://NAME or gs://NAME (the dataset and the outputs)")
        return needs

    def preflight(self, job: Job) -> list[str]:
        from platforms.skypilot import credentials

        validate_job(job)
        found, where = credentials.find()
        return self._needs() + ([] if found else [f"cloud credentials ({where})"])

    @staticmethod
    def api_server() -> str:
        """The SkyPilot API server every SDK call goes through, healthy (a local one is started if the endpoint
        is local, as SkyPilot's client does itself), or one line saying why not."""
        sky()
        from sky.server import common as server_common

        url = server_common.get_server_url()
        try:
            server_common.check_server_healthy_or_start_fn()
        except Exception as exc:  # noqa: BLE001 - ApiServerConnectionError, RuntimeError (local start failed)
            why = ("the local server did not start (~/.sky/api_server/server.log; SkyPilot 0.9's server fails "
                   "with this lock's FastAPI): deploy one and run `sky api login -e URL`"
                   if server_common.is_api_server_local() else str(exc).strip().splitlines()[0])
            raise UserError(f"skypilot: no SkyPilot API server at {url}: {why}") from None
        return url

    def feasible(self, task) -> None:
        """SkyPilot's optimizer, on the API server, looks for the task's resources among the enabled clouds'
        catalogs (`sky.optimize`) before anything is uploaded: an accelerator the cloud does not offer, or a
        cloud not enabled, is one line here instead of a failed launch after the upload."""
        mod = sky()
        from sky.utils import dag_utils

        cfg = self.parsed()
        try:
            mod.get(mod.optimize(dag_utils.convert_entrypoint_to_dag(task)))
        except (mod.exceptions.ResourcesUnavailableError, mod.exceptions.NoCloudAccessError) as exc:
            why = re.sub("\x1b\\[[0-9;]*m", "", " ".join(str(exc).split()))  # one line, without colour codes
            raise UserError(f"skypilot: SkyPilot finds no {cfg.accelerators} on {cfg.cloud}: {why[:300]}") from None

    def check(self, job: Job) -> None:
        from platforms.core import registry

        validate_job(job)
        needs = self._needs()
        if needs:
            raise UserError("skypilot: missing " + "; ".join(needs))
        from platforms.image import pinning

        cfg = self.cfg = pinning.pinned_settings(self.parsed(), "image", "skypilot")  # runs REPO@sha256:… (issue 18)
        task = validated_task(self.task(job, self._name(job), "jobs/check", "datasets/check/platbench-manifest.json"))
        self.api_server()
        self.feasible(task)
        self._login = registry_login(cfg.image)
        self._store = registry.store_class(cfg.scheme)(cfg.bucket_name)

    # ------------------------------------------------------------------ the task
    def _name(self, job: Job) -> str:
        """The cluster's (or managed job's) name: job_name, else run_name, else a unique one."""
        cfg = self.parsed()
        return cfg.job_name or cfg.run_name or NAME.unique(f"pb-{job.model}")

    def task(self, job: Job, name: str, out_rel: str, data_rel: str) -> dict:
        cfg = self.parsed()
        from platforms.image import pinning

        # and its image ID where the push record knows it
        env = container_env("skypilot", pinning.image_env(cfg.image), digest=cfg.digest)
        command = ["train", "--dataset-name", Path(job.data).resolve().name, *job.trainer_args()]
        prefix = cfg.prefix.strip("/")
        return task_config(cfg, name, f"{prefix}/{out_rel}", f"{prefix}/{data_rel}", command, env)

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: cfg.region or "", tracking.Tag.INSTANCE_TYPE: cfg.accelerators or "",
                "platbench.skypilot.cloud": cfg.cloud or "", "platbench.skypilot.use_spot": str(cfg.use_spot).lower()}
        return {**tags, **image_tags(cfg.digest)}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        name = cfg.job_name or cfg.run_name or NAME.placeholder(f"pb-{job.model}")
        out = cfg.run_key(name)
        root = f"{cfg.scheme}://{cfg.bucket_name}/{cfg.prefix.strip('/')}"
        sharded = cfg.staging == "sharded"
        data_rel = ("datasets/<fingerprint>/platbench-manifest.json" if sharded
                    else f"naive/{Path(job.data).resolve().name}")
        text = yaml.safe_dump(self.task(job, name, f"jobs/{out}", data_rel), sort_keys=False).rstrip()
        cli = "aws s3" if cfg.scheme == "s3" else "gcloud storage"
        steps = [PlanStep("check the task with SkyPilot's schema and loader, that the cloud is enabled and that "
                          "SkyPilot's optimizer finds the accelerators in its catalog, before anything is uploaded",
                          f"sky check {cfg.cloud or 'CLOUD'} && sky launch --dryrun task.yaml")]
        from platforms.image import pinning

        steps += pinning.plan_steps(cfg.image, "image")
        ecr = ECR_HOST.match((cfg.image or "").split("/", 1)[0])
        if ecr:
            steps.append(PlanStep("the cluster's login to the image's registry, added to the task's envs at launch "
                                  "(not printed: a 12-hour ECR token)",
                                  f"SKYPILOT_DOCKER_USERNAME=AWS SKYPILOT_DOCKER_SERVER={ecr.group(0)} "
                                  f"SKYPILOT_DOCKER_PASSWORD=$(aws ecr get-login-password --region {ecr.group(1)})"))
        steps += staging_steps(job.data, cfg.staging, root, lambda a, b: f"{cli} cp {a} {b}",
                               lambda a, b: f"{cli} cp --recursive {a} {b}", store=f"the {cfg.scheme}:// bucket",
                               reads="the task mounts the bucket")
        steps.append(PlanStep("write the SkyPilot task: the image as the runtime, the staged data and the output "
                              "folder mounted from the bucket", f"cat > task.yaml <<'EOF'\n{text}\nEOF"))
        if cfg.use_spot:
            steps += [
                PlanStep("launch it as a managed job (spot: SkyPilot recovers it after a preemption and the trainer "
                         "resumes from its checkpoint); stream its log", f"sky jobs launch -n {name} -y task.yaml"),
                PlanStep("on an error or Ctrl-C: cancel the managed job (its cluster goes with it)",
                         f"sky jobs cancel -n {name} -y"),
            ]
        else:
            steps += [
                PlanStep("launch the cluster and run the task; stream its log",
                         f"sky launch -c {name} --down -y task.yaml && sky logs {name} 1"),
                PlanStep("always (also on an error or Ctrl-C): tear the cluster down", f"sky down -y {name}"),
            ]
        steps += [
            PlanStep("collect results.json, metrics.jsonl, train.log and model/ from the output folder",
                     f"{cli} cp --recursive {root}/jobs/{out} ."),
            PlanStep("record the MLflow run; cost = SkyPilot's catalog price of the launched resources × the "
                     "cluster's uptime, labelled estimate" + (" (not estimated for a managed job)" if cfg.use_spot
                                                             else "")),
        ]
        return steps

    # ------------------------------------------------------------------ submit (stage: the template's)
    def submit(self, job: Job, staged: dict[str, Any]) -> SkyHandle:
        mod = sky()
        cfg = self.parsed()
        name = self._name(job)
        st = self._staged
        out_key = f"{cfg.prefix.strip('/')}/jobs/{cfg.run_key(name)}"
        config = self.task(job, name, f"jobs/{cfg.run_key(name)}", st.data_key[len(st.prefix) + 1:].rstrip("/"))
        config["envs"].update(self._login)  # never in the printed plan: it holds the registry password
        task = validated_task(config)
        handle = SkyHandle(name=name, managed=cfg.use_spot, out_key=out_key, staged=st, spec=config,
                           started=time.time())
        self.jobs = SkyJobs(handle)
        request_id = None
        try:  # stream_and_get streams the provisioning log and returns the request's result
            request_id = self.jobs.create(task)
            if cfg.use_spot:
                handle.job_id, _ = mod.stream_and_get(request_id)
            else:
                handle.job_id, h = mod.stream_and_get(request_id)
                handle.resources = getattr(h, "launched_resources", None)
        except BaseException as exc:
            # the launcher tears down only a handle submit returned: a cluster (or a managed job) half
            # provisioned when the launch failed or was interrupted (Ctrl-C) is removed here, by name. The API
            # server goes on provisioning after its client stops listening (`sky launch` says "Request will
            # continue running asynchronously" on Ctrl-C), so the launch request is cancelled first: `sky.down`
            # stops a cluster's running requests itself, but only once the cluster is on record, and a managed
            # job has no name to cancel until its controller has taken it.
            if request_id is not None:
                cancel_request(request_id)
            self.release(handle)
            if isinstance(exc, mod.exceptions.ResourcesUnavailableError):  # a managed job's controller, too
                raise UserError(f"skypilot: SkyPilot found no resources for the launch: {str(exc).splitlines()[0]}") from None
            if isinstance(exc, (mod.exceptions.CloudError, mod.exceptions.NotSupportedError)):
                raise UserError(f"skypilot: the launch failed: {str(exc).strip().splitlines()[0]}") from None
            raise
        print(f"platbench: started SkyPilot {'managed job' if cfg.use_spot else 'cluster'} {name} "
              f"(job {handle.job_id})", file=sys.stderr)
        return handle

    # ------------------------------------------------------------------ what the template polls
    def job_state(self, described: dict) -> str:
        return ENDED if described.get("terminal") else (described.get("status") or "unknown")

    def after_poll(self, handle: SkyHandle, d: dict, progress) -> None:
        """The job's log tail starts with the first poll; each new status is a phase (PENDING, STARTING,
        RUNNING, RECOVERING: a preempted managed job …); at the end the tail gets 30 s to finish."""
        if handle.tail is None:
            mod, stream = sky(), _Lines(progress)

            def follow():  # returns when the job ends, with its exit code
                handle.exit_code = (mod.jobs.tail_logs(job_id=handle.job_id, follow=True, output_stream=stream)
                                    if handle.managed else
                                    mod.tail_logs(handle.name, handle.job_id, follow=True, output_stream=stream))

            handle.tail = threading.Thread(target=follow, daemon=True)
            handle.tail.start()
        if d.get("status") != handle.last_status:
            progress.phase((d.get("status") or "unknown").lower())
            handle.last_status = d.get("status")
        if d.get("terminal"):
            handle.tail.join(30)
            handle.done, handle.ended = True, time.time()

    def pause(self, handle: SkyHandle, progress, seconds: float) -> None:
        handle.tail.join(seconds)  # returns early when the job's log ends

    def job_outcome(self, handle: SkyHandle, d: dict) -> Outcome:
        status = d.get("status")
        state = {"SUCCEEDED": "finished", "CANCELLED": "killed"}.get(status or "", "failed")
        uptime = (handle.ended or time.time()) - handle.started
        cost = None
        basis = "not estimated: a managed job's cluster is launched by its controller"
        if handle.resources is not None:
            cost = handle.resources.get_cost(uptime)
            basis = f"estimate: SkyPilot catalog price of {handle.resources} × {uptime:.0f} s uptime"
        tags = {tracking.Tag.JOB_ID: str(handle.job_id), "platbench.skypilot.name": handle.name,
                "platbench.skypilot.status": status or "", "platbench.run_name": self.parsed().run_key(handle.name),
                "platbench.cost_basis": basis,
                "platbench.checkpoint_uri": f"{self.parsed().scheme}://{self.parsed().bucket_name}/"
                                            f"{handle.out_key}/checkpoints/"}
        return Outcome(state, None, billed_seconds=None, cost_usd=None, list_estimate_usd=cost,
                       metrics={"uptime_seconds": uptime}, tags=tags,
                       message=f"SkyPilot job {handle.job_id} on {handle.name}: {status}")

    # ------------------------------------------------------------------ collect / teardown
    def collect(self, handle: SkyHandle, outcome: Outcome, dest: Path) -> Path:
        return self.collect_folders(handle, outcome, dest, [(handle.out_key + "/", "")], f"skypilot job {handle.name}",
                                    f"{self.parsed().bucket}/{handle.out_key}/")

    def release(self, handle: Optional[SkyHandle]) -> None:
        """After the template's teardown (which cancels a job it saw running), always: the on-demand cluster
        goes down (`sky down`), a managed job still running is cancelled, also one interrupted before
        SkyPilot gave it an id. Staged data and outputs (checkpoints for a resume) stay in the bucket."""
        if handle is None or handle.downed:
            return
        mod = sky()
        try:
            if handle.managed:
                if not handle.done:
                    mod.stream_and_get(mod.jobs.cancel(job_ids=[handle.job_id]) if handle.job_id is not None
                                       else mod.jobs.cancel(name=handle.name))
            else:
                mod.stream_and_get(mod.down(handle.name))
            handle.downed = True
            print(f"platbench: tore down SkyPilot {handle.name}", file=sys.stderr)
        except mod.exceptions.ClusterDoesNotExist:
            pass  # never provisioned, or already down (`down=True` removes it when the job ends)
        except mod.exceptions.ClusterNotUpError as exc:
            # a managed job interrupted before SkyPilot's jobs controller was up: no job to cancel, but the
            # controller VM may have been left provisioning. It is SkyPilot's, shared by every managed job of
            # this user (another launch may be bringing it up), so platbench names it instead of removing it.
            controllers = not_up_controllers() if handle.managed else []
            print(f"platbench: no managed job {handle.name} to cancel ({str(exc).splitlines()[0]})"
                  + "".join(f"; SkyPilot's jobs controller {c} is not up: `sky down {c}` removes it if no other "
                            "managed job needs it" for c in controllers), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
            what = ((f"sky jobs cancel {handle.job_id}" if handle.job_id is not None else f"sky jobs cancel -n {handle.name}")
                    if handle.managed else f"sky down {handle.name}")
            print(f"platbench: could not tear down {handle.name} (run `{what}`): {exc}".splitlines()[0],
                  file=sys.stderr)
