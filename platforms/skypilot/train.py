"""SkyPilot: the platbench image as one SkyPilot task (task.py) on the cloud asked for, launched through
SkyPilot's Python API (client of its API server; 0.9: every call returns a request id that
`sky.stream_and_get` streams and resolves). The job's calls, on-demand (`sky.launch`, the cluster always
removed with `sky down`) or use_spot=true (a managed job, `sky.jobs.launch`, that SkyPilot's controller
recovers after a preemption while the trainer resumes from its checkpoint in the output mount): jobs.py.
https://docs.skypilot.co/en/latest/reference/api.html; https://docs.skypilot.co/en/latest/examples/managed-jobs.html

The cost is an estimate: the launched resources' catalog price × the cluster's uptime
(`Resources.get_cost(seconds)`, SkyPilot's catalog), never the cloud's bill. A managed job's controller
launches its own cluster, whose launched resources the client does not get: its cost is not estimated.
Before the launch, the dry run's cost plan and the --max-usd watch use the VM's list price from prices.yaml
(ec2_quote: AWS, a region set, an accelerator request the table lists), SkyPilot being offline then.

Before anything is staged, check() puts the task through SkyPilot's schema, loader and storage-source check,
asks the API server for its health and its optimizer for the resources (`sky.optimize`) (client.py), and
fetches the image registry's login (an ECR token) for the task's envs (pull_login.py).

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

import time
from pathlib import Path
from typing import Any, Optional

from platforms.core import pricing, tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_job import CloudJobPlatform, say
from platforms.core.run_tags import image_tags
from platforms.core.settings import validate_job
from platforms.errors import UserError
from platforms.skypilot import SPEC
from platforms.skypilot.client import api_server, cancel_request, feasible, not_up_controllers, sky, validated_task
from platforms.skypilot.jobs import ENDED, SkyHandle, SkyJobs
from platforms.skypilot.plan import plan_steps
from platforms.skypilot.pull_login import registry_login
from platforms.skypilot.task import NAME, SkyPilotSettings, job_task


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
        self._quote = ec2_quote(self.parsed())
        found, where = credentials.find()
        return self._needs() + ([] if found else [f"cloud credentials ({where})"])

    def check(self, job: Job) -> None:
        from platforms.core import registry
        from platforms.image import pinning

        validate_job(job)
        needs = self._needs()
        if needs:
            raise UserError("skypilot: missing " + "; ".join(needs))
        cfg = self.cfg = pinning.pinned_settings(self.parsed(), "image", "skypilot")  # runs REPO@sha256:… (issue 18)
        task = validated_task(job_task(cfg, job, self._name(job), "jobs/check", "datasets/check/platbench-manifest.json"))
        api_server()
        feasible(task, cfg.accelerators, cfg.cloud)
        self._login = registry_login(cfg.image)
        self._store = registry.store_class(cfg.scheme)(cfg.bucket_name)
        self._quote = ec2_quote(cfg)  # what the budget watch (--max-usd) holds the job to

    def _name(self, job: Job) -> str:
        """The cluster's (or managed job's) name: job_name, else run_name, else a unique one."""
        cfg = self.parsed()
        return cfg.job_name or cfg.run_name or NAME.unique(f"pb-{job.model}")

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: cfg.region or "", tracking.Tag.INSTANCE_TYPE: cfg.accelerators or "",
                "platbench.skypilot.cloud": cfg.cloud or "", "platbench.skypilot.use_spot": str(cfg.use_spot).lower()}
        return {**tags, **image_tags(cfg.digest)}

    def plan(self, job: Job) -> list[PlanStep]:
        return plan_steps(self.parsed(), job)

    # ------------------------------------------------------------------ submit (stage: the template's)
    def submit(self, job: Job, staged: dict[str, Any]) -> SkyHandle:
        mod = sky()
        cfg = self.parsed()
        name = self._name(job)
        st = self._staged
        out_key = f"{cfg.prefix.strip('/')}/jobs/{cfg.run_key(name)}"
        config = job_task(cfg, job, name, f"jobs/{cfg.run_key(name)}", st.data_key[len(st.prefix) + 1:].rstrip("/"))
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
        say(f"started SkyPilot {'managed job' if cfg.use_spot else 'cluster'} {name} (job {handle.job_id})")
        return handle

    # ------------------------------------------------------------------ what the template polls
    def job_state(self, described: dict) -> str:
        return ENDED if described.get("terminal") else (described.get("status") or "unknown")

    def after_poll(self, handle: SkyHandle, d: dict, progress) -> None:
        """The job's log tail starts with the first poll; each new status is a phase (PENDING, STARTING,
        RUNNING, RECOVERING: a preempted managed job …); at the end the tail gets 30 s to finish."""
        if handle.tail is None:
            handle.follow(progress)
        if d.get("status") != handle.last_status:
            progress.phase((d.get("status") or "unknown").lower())
            handle.last_status = d.get("status")
        if d.get("terminal"):
            handle.tail.join(30)
            handle.done, handle.ended = True, time.time()

    def pause(self, handle: SkyHandle, progress, seconds: float) -> None:
        handle.tail.join(seconds)  # returns early when the job's log ends

    def job_outcome(self, handle: SkyHandle, d: dict) -> Outcome:
        cfg, status = self.parsed(), d.get("status")
        state = {"SUCCEEDED": "finished", "CANCELLED": "killed"}.get(status or "", "failed")
        uptime = (handle.ended or time.time()) - handle.started
        cost = None
        basis = "not estimated: a managed job's cluster is launched by its controller"
        if handle.resources is not None:
            cost = handle.resources.get_cost(uptime)
            basis = f"estimate: SkyPilot catalog price of {handle.resources} × {uptime:.0f} s uptime"
        tags = {tracking.Tag.JOB_ID: str(handle.job_id), "platbench.skypilot.name": handle.name,
                "platbench.skypilot.status": status or "", "platbench.run_name": cfg.run_key(handle.name),
                "platbench.cost_basis": basis,
                "platbench.checkpoint_uri": f"{cfg.scheme}://{cfg.bucket_name}/{handle.out_key}/checkpoints/"}
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
            say(f"tore down SkyPilot {handle.name}")
        except mod.exceptions.ClusterDoesNotExist:
            pass  # never provisioned, or already down (`down=True` removes it when the job ends)
        except mod.exceptions.ClusterNotUpError as exc:
            # a managed job interrupted before SkyPilot's jobs controller was up: no job to cancel, but the
            # controller VM may have been left provisioning. It is SkyPilot's, shared by every managed job of
            # this user (another launch may be bringing it up), so platbench names it instead of removing it.
            controllers = not_up_controllers() if handle.managed else []
            say(f"no managed job {handle.name} to cancel ({str(exc).splitlines()[0]})"
                + "".join(f"; SkyPilot's jobs controller {c} is not up: `sky down {c}` removes it if no other "
                          "managed job needs it" for c in controllers))
        except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
            what = ((f"sky jobs cancel {handle.job_id}" if handle.job_id is not None else f"sky jobs cancel -n {handle.name}")
                    if handle.managed else f"sky down {handle.name}")
            say(f"could not tear down {handle.name} (run `{what}`): {exc}")


def ec2_quote(cfg: SkyPilotSettings) -> Optional[pricing.Quote]:
    """The VM's price per hour from prices.yaml (or the price cache): the entry of the region whose
    `accelerators` is the request (NAME alone is NAME:1, as SkyPilot reads it). None for another cloud, no
    region (SkyPilot's optimizer picks one) or a request the table does not list. use_spot is priced on
    demand, labelled so (no spot price in the table): an upper bound of the spot VM's price."""
    if cfg.cloud != "aws" or not cfg.region or not cfg.accelerators:
        return None
    want = cfg.accelerators if ":" in cfg.accelerators else f"{cfg.accelerators}:1"
    entries = ((pricing.shipped("skypilot").data.get("training") or {}).get(cfg.region) or {}).items()
    instance = next((sku for sku, e in entries if str(e.get("accelerators", "")).lower() == want.lower()), None)
    return None if instance is None else pricing.training_quote("skypilot", cfg.region, [(instance, 1)], cfg.use_spot)
