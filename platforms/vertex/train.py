"""Google Vertex AI: a CustomJob running the platbench image, through google-cloud-aiplatform (the
JobService API) and google-cloud-storage, with the dataset staged into Cloud Storage and a local mode.

Platform contracts relied on (official pages):
- CustomJob / CustomJobSpec (workerPoolSpecs with machineSpec, replicaCount, containerSpec{imageUri,
  command, args, env}, diskSpec; baseOutputDirectory; scheduling{timeout, strategy}; serviceAccount):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs
- baseOutputDirectory sets AIP_MODEL_DIR=<base>/model/, AIP_CHECKPOINT_DIR=<base>/checkpoints/,
  AIP_TENSORBOARD_LOG_DIR=<base>/logs/ in the container (same CustomJobSpec page, field baseOutputDirectory)
- Cloud Storage is mounted read-write at /gcs/<bucket>/ in custom training:
  https://cloud.google.com/vertex-ai/docs/training/cloud-storage-file-system
- Machine types and accelerators for training (which GPU goes with which machine family):
  https://cloud.google.com/vertex-ai/docs/training/configure-compute
- Spot VMs for training (scheduling.strategy = SPOT):
  https://cloud.google.com/vertex-ai/docs/training/use-spot-vms
  billed "by job duration and machine type", nothing for time queued or preempted (Billing section of
  https://cloud.google.com/vertex-ai/docs/predictions/use-spot-vms); priced from the `training_spot`
  section where it has the machine, else at on-demand, labelled (platforms/core/pricing.py training_quote)
- JobState values; createTime / startTime (first RUNNING) / endTime / error:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState
- Cancelling a custom job (customJobs.cancel → JOB_STATE_CANCELLED):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs/cancel
- Regional endpoints ({region}-aiplatform.googleapis.com):
  https://cloud.google.com/vertex-ai/docs/general/locations
- Credentials: Application Default Credentials:
  https://cloud.google.com/docs/authentication/application-default-credentials
- CustomJob.displayName: up to 128 UTF-8 characters (projects.locations.customJobs page above): a generated
  name is cut before its time stamp and random suffix, never through them, and never ends in "-".
- Quotas: a job short of quota ("Custom model training … per region", per GPU type, with a separate
  preemptible/Spot quota) waits in JOB_STATE_QUEUED; quotas are raised in the console (IAM & Admin →
  Quotas & System Limits): https://cloud.google.com/vertex-ai/docs/quotas
  https://cloud.google.com/docs/quotas/view-manage — `max_queue` bounds the wait, then the job is cancelled.
- Bucket location: a single-region bucket elsewhere than the job's region is refused in `check`
  (data read across regions through /gcs; https://cloud.google.com/vertex-ai/docs/general/locations and
  https://cloud.google.com/storage/docs/locations); multi-region buckets are accepted for training.

There is no emulator for Vertex's control plane: the three job calls (create, get, cancel) sit behind
`VertexJobs` (core/cloud_job.py's CloudJobs seam), which local mode replaces with a native run of the same
CustomJob spec; polling, Ctrl-C and teardown are the cloud-job template's (platforms/core/cloud_job.py).
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platforms.core import pricing

from platforms.core import tracking
from platforms.vertex import SPEC
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_settings import CloudJobSettings, LocalMode, TimeLimit
from platforms.core.container_env import container_env, pinned_digest
from platforms.core.names import NameRule
from platforms.core.image_gpus import IMAGE_CUDA_ARCHS, arch_supported
from platforms.core.run_tags import image_tags, price_tags
from platforms.core.staging_plan import closing_steps, staging_steps
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs, seen_timeline, timeline_phases, timestamp
from platforms.vertex.emulator import local_run
from platforms.core.settings import validate_job
from platforms.core.sdk import require
from platforms.errors import UserError
from platforms.vertex.phases import PHASES, QUEUED, TERMINAL

# Accelerator → the machine-type families it can be attached to (configure-compute page).
ACCELERATOR_FAMILIES = {
    "NVIDIA_TESLA_T4": ("n1-",), "NVIDIA_TESLA_V100": ("n1-",), "NVIDIA_TESLA_P100": ("n1-",),
    "NVIDIA_TESLA_P4": ("n1-",), "NVIDIA_TESLA_A100": ("a2-highgpu", "a2-megagpu"),
    "NVIDIA_A100_80GB": ("a2-ultragpu",), "NVIDIA_L4": ("g2-",), "NVIDIA_H100_80GB": ("a3-",),
    "NVIDIA_H100_MEGA_80GB": ("a3-mega",), "NVIDIA_H200_141GB": ("a3-ultra",),
}
MACHINE_RE = re.compile(r"^(n1|n2|n2d|e2|c2|c2d|m1|a2|a3|g2)-[a-z]+(-\d+[a-z]?)?(-[a-z0-9]+)?$")


class DisplayName(NameRule):
    """CustomJob.displayName: any UTF-8 up to max_len characters; a generated one is letters, digits and -."""

    def fits(self, name: str) -> bool:
        return self.min_len <= len(name) <= self.max_len


JOB_NAME = DisplayName(128, hint="1-128 characters")
# run_name is a folder in the bucket and the stem of generated display names
RUN_NAME = NameRule(63, hint="1-63 of a-z, A-Z, 0-9, -")

# accelerator → compute capability (https://developer.nvidia.com/cuda-gpus)
ACCELERATOR_CC = {
    "NVIDIA_TESLA_T4": (7, 5), "NVIDIA_TESLA_V100": (7, 0), "NVIDIA_TESLA_P100": (6, 0), "NVIDIA_TESLA_P4": (6, 1),
    "NVIDIA_TESLA_A100": (8, 0), "NVIDIA_A100_80GB": (8, 0), "NVIDIA_L4": (8, 9), "NVIDIA_H100_80GB": (9, 0),
    "NVIDIA_H100_MEGA_80GB": (9, 0), "NVIDIA_H200_141GB": (9, 0),
}


def unusable_accelerator(acc: str) -> Optional[str]:
    """Why the image cannot use this accelerator, or None."""
    cc = ACCELERATOR_CC.get(acc)
    if cc and not arch_supported(cc):
        return (f"{acc} (sm_{cc[0]}{cc[1]}) cannot run the image's torch build (kernels for "
                f"{', '.join(IMAGE_CUDA_ARCHS)}): pick e.g. NVIDIA_TESLA_T4, NVIDIA_L4 or NVIDIA_TESLA_A100")
    return None


def quota_hint(cfg) -> str:
    """Which Vertex AI quota a job short of capacity most likely lacks, and where to raise it."""
    what = (f"'Custom model training {'preemptible ' if cfg.spot else ''}{cfg.accelerator_type} GPUs per region'"
            if cfg.accelerator_count else f"'Custom model training CPUs for {cfg.machine_type.split('-')[0].upper()} "
            "machine types per region'")
    return (f"the quota {what} in {cfg.region} (console: IAM & Admin → Quotas & System Limits, service Vertex AI "
            "API, filter custom_model_training; https://cloud.google.com/vertex-ai/docs/quotas)")


class VertexProject(BaseModel):
    """The `--set` keys every Vertex AI command shares (training jobs and endpoints)."""

    model_config = ConfigDict(extra="forbid")

    project: Optional[str] = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_PROJECT")
                                   or os.environ.get("CLOUDSDK_CORE_PROJECT"))
    region: str = "us-central1"
    bucket: Optional[str] = None
    prefix: str = "platbench"
    image_uri: Optional[str] = None
    api_endpoint: Optional[str] = None           # default {region}-aiplatform.googleapis.com

    @property
    def loopback_endpoint(self) -> bool:
        return bool(self.api_endpoint and re.match(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/?$",
                                                   self.api_endpoint))


def client_kwargs(cfg: VertexProject) -> dict[str, Any]:
    """Arguments of a GAPIC client (JobService, ModelService, …): the regional endpoint or `api_endpoint`,
    and no credentials, so the client takes Application Default Credentials itself. A server on this
    machine gets the same signed calls as the service (it checks them), over REST: plain http:// has no
    gRPC channel."""
    from google.api_core.client_options import ClientOptions

    kwargs: dict[str, Any] = {"client_options": ClientOptions(
        api_endpoint=cfg.api_endpoint or f"{cfg.region}-aiplatform.googleapis.com")}
    if cfg.loopback_endpoint:
        kwargs["transport"] = "rest"
    return kwargs


class VertexSettings(VertexProject, CloudJobSettings, TimeLimit, LocalMode):
    """`--set KEY=VALUE` for `platbench launch vertex`; job_name (the CustomJob's displayName), run_name (its
    base output directory, hence AIP_CHECKPOINT_DIR, is jobs/<run_name>: a new job of the run resumes an
    interrupted one), staging, prefix, poll_seconds, max_run and local as every cloud job has them
    (core/cloud_settings.py)."""

    JOB_NAME: ClassVar[NameRule] = JOB_NAME
    RUN_NAME: ClassVar[NameRule] = RUN_NAME

    machine_type: str = "n1-standard-8"
    accelerator_type: str = "NVIDIA_TESLA_T4"     # "none" for a CPU-only job
    accelerator_count: int = Field(1, ge=0, le=16)
    # replicas of one DDP run: workerpool0 holds the primary (replicaCount 1, as Vertex requires), workerpool1
    # the other replica_count - 1; each replica's trainer reads CLUSTER_SPEC and starts its ranks with torchrun
    # https://cloud.google.com/vertex-ai/docs/training/distributed-training
    replica_count: int = Field(1, ge=1, le=64)
    boot_disk_gb: int = Field(100, ge=10, le=65536)
    spot: bool = False
    service_account: Optional[str] = None
    # seconds a job may wait in JOB_STATE_QUEUED (short of quota) before it is cancelled
    max_queue: int = Field(3600, ge=1, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _consistent(self):
        if self.replica_count > 1 and self.local:
            raise ValueError("local=true runs one replica on this machine: use replica_count 1 (or --devices N)")
        if self.bucket is not None and not re.match(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$", self.bucket):
            raise ValueError(f"bucket {self.bucket!r} is not a valid Cloud Storage bucket name")
        if not MACHINE_RE.match(self.machine_type):
            raise ValueError(f"unknown machine type {self.machine_type!r} (e.g. n1-standard-8, g2-standard-8, "
                             "a2-highgpu-1g)")
        acc = self.accelerator_type
        if acc.lower() == "none" or self.accelerator_count == 0:
            self.accelerator_type, self.accelerator_count = "none", 0
        elif acc not in ACCELERATOR_FAMILIES:
            raise ValueError(f"unknown accelerator type {acc!r} (one of: "
                             f"{', '.join(a for a in ACCELERATOR_FAMILIES if not unusable_accelerator(a))}, none)")
        elif unusable_accelerator(acc):
            raise ValueError(unusable_accelerator(acc))
        elif not self.machine_type.startswith(ACCELERATOR_FAMILIES[acc]):
            raise ValueError(f"{acc} cannot be attached to {self.machine_type} (needs a "
                             f"{' or '.join(f.rstrip('-') for f in ACCELERATOR_FAMILIES[acc])} machine type)")
        return self



class VertexJobs(CloudJobs):
    """Vertex's JobService: create / get / cancel a CustomJob, REST-shaped dicts in and out."""

    def __init__(self, cfg: VertexSettings, stats):
        aiplatform_v1 = require("google.cloud.aiplatform_v1", "vertex", "the Vertex AI SDK (google-cloud-aiplatform)")
        self.types = aiplatform_v1
        self.parent = f"projects/{cfg.project}/locations/{cfg.region}"
        self.client = aiplatform_v1.JobServiceClient(**client_kwargs(cfg))
        from google.api_core import retry as retries

        self.retry = retries.Retry(predicate=retries.if_transient_error, initial=0.5, maximum=16, timeout=120,
                                   on_error=lambda exc: stats.add(retries=1))
        self.stats = stats

    def create(self, spec: dict) -> str:
        job = self.types.CustomJob.from_json(json.dumps(spec))  # unknown fields are refused here
        self.stats.add(requests=1)
        return self.client.create_custom_job(parent=self.parent, custom_job=job).name

    def get(self, name: str) -> dict:
        self.stats.add(requests=1)
        job = self.client.get_custom_job(name=name, retry=self.retry)
        return json.loads(self.types.CustomJob.to_json(job, use_integers_for_enums=False))

    def cancel(self, name: str) -> None:
        self.stats.add(requests=1)
        self.client.cancel_custom_job(name=name, retry=self.retry)


@dataclass(kw_only=True)
class VertexHandle(CloudJob):
    """job_id: projects/…/customJobs/ID (local mode: the display name)."""

    base_output: str                    # gs://bucket/prefix/jobs/<run key>


class VertexPlatform(CloudJobPlatform):
    nodes_setting = "replica_count={n}"  # what --nodes N means here (core/launch.py refuse_nodes)
    spec = SPEC
    settings_model = VertexSettings
    PHASES, TERMINAL, QUEUED = PHASES, TERMINAL, QUEUED
    job_noun = "Vertex AI job"

    def __init__(self, settings=None):
        super().__init__(settings)
        from platforms.core.store import StoreStats

        self.api_stats = StoreStats()

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        from platforms.clouds.gcp import credentials

        cfg = self.parsed()
        validate_job(job)
        self._quote = pricing.training_quote("vertex", cfg.region, self._items(cfg), cfg.spot)
        missing = {"bucket": f"--set bucket=NAME (a Cloud Storage bucket in {cfg.region})"}
        if not cfg.local:
            missing.update(project="--set project=PROJECT_ID",
                           image_uri="--set image_uri=…@sha256:… (the image in Artifact Registry)")
        return self.needs(credentials.find(), "Google Cloud", missing)

    @staticmethod
    def _items(cfg) -> list[tuple[str, int]]:
        items = [(cfg.machine_type, cfg.replica_count)]
        if cfg.accelerator_count:
            items.append((cfg.accelerator_type, cfg.accelerator_count * cfg.replica_count))
        return items

    def check(self, job: Job) -> None:
        cfg = self.parsed()
        validate_job(job)
        SUPPORTED_REGIONS = require("google.cloud.aiplatform.constants.base", "vertex",
                                    "the Vertex AI SDK (google-cloud-aiplatform)").SUPPORTED_REGIONS
        if cfg.region not in SUPPORTED_REGIONS or cfg.region == "global":
            raise UserError(f"vertex: unknown region {cfg.region!r} (Vertex AI regions: "
                            f"{', '.join(sorted(r for r in SUPPORTED_REGIONS if r != 'global'))})")
        if not cfg.bucket:
            raise UserError(f"vertex: no bucket: add --set bucket=NAME (a Cloud Storage bucket in {cfg.region} for "
                            "the dataset, checkpoints and outputs)")
        if not cfg.local:
            if not cfg.project:
                raise UserError("vertex: no project: add --set project=PROJECT_ID (or set GOOGLE_CLOUD_PROJECT)")
            if not cfg.image_uri:
                raise UserError("vertex: no image: add --set image_uri=REGION-docker.pkg.dev/PROJECT/REPO/platbench:TAG "
                                "(or --set local=true to run here)")
        # every JobService call is signed; only a local run against the Cloud Storage emulator (which the
        # storage library speaks to anonymously) needs no credentials
        needs_adc = not cfg.local or not os.environ.get("STORAGE_EMULATOR_HOST")
        if needs_adc:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                google.auth.default()
            except DefaultCredentialsError:
                raise UserError("vertex: no Google Cloud credentials found (run `gcloud auth application-default "
                                "login` or set GOOGLE_APPLICATION_CREDENTIALS)") from None
        from platforms.clouds.gcp.gcs import GCSStore

        self._store = GCSStore(cfg.bucket, project=cfg.project)
        if not self._store.bucket_exists():
            raise UserError(f"vertex: bucket {cfg.bucket!r} does not exist or is not reachable with these credentials")
        where, kind = self._store.bucket_location()
        if kind == "region" or re.fullmatch(r"[a-z]+-[a-z]+\d+", where):
            if where != cfg.region:
                raise UserError(f"vertex: bucket {cfg.bucket!r} is in {where}, the job in {cfg.region}: use a bucket "
                                f"in {cfg.region} (or --set region={where})")
        if not cfg.local:
            from platforms.image import pinning

            # an accelerator: the trainer must use it (--device cuda), never the CPU at the GPU's price
            job.on_hardware(cfg.accelerator_count)
            # the job runs REPO@sha256:…: a tag resolved from the push record / the registry (issue 18)
            cfg = self.cfg = pinning.pinned_settings(cfg, "image_uri", "vertex")
            self.jobs = VertexJobs(cfg, self.api_stats)
        self._quote = pricing.training_quote("vertex", cfg.region, self._items(cfg), cfg.spot)

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        machine = cfg.machine_type + (f"+{cfg.accelerator_count}x{cfg.accelerator_type}" if cfg.accelerator_count else "")
        tags = {tracking.Tag.REGION: cfg.region, tracking.Tag.INSTANCE_TYPE: machine,
                tracking.Tag.LOCAL_MODE: str(cfg.local).lower(), tracking.Tag.STAGING: cfg.staging,
                "platbench.spot": str(cfg.spot).lower()}
        if cfg.image_uri:
            tags["platbench.image_uri"] = cfg.image_uri
        return {**tags, **image_tags(pinned_digest(cfg.image_uri)), **price_tags(self._quote)}

    # ------------------------------------------------------------------ the request
    def _display_name(self, job: Job) -> str:
        cfg = self.parsed()
        if cfg.job_name:
            return cfg.job_name
        return cfg.JOB_NAME.unique(cfg.run_name or f"platbench-{job.model}")

    def run_key(self, display_name: str) -> str:
        """The run a job belongs to (run_name, else the job itself): its base output directory."""
        return self.parsed().run_key(display_name)

    def custom_job(self, job: Job, display_name: str, data_uri: str, dataset_name: str) -> dict:
        """The CustomJob resource, in the REST API's JSON shape (CustomJobSpec page)."""
        cfg = self.parsed()
        base = f"gs://{cfg.bucket}/{cfg.prefix.strip('/')}/jobs/{self.run_key(display_name)}"
        from platforms.image import pinning

        # its digest, and its image ID where the push record knows it
        env = container_env("vertex", pinning.image_env(cfg.image_uri), PLATBENCH_DATA=data_uri)
        machine: dict[str, Any] = {"machineType": cfg.machine_type}
        if cfg.accelerator_count:
            machine.update(acceleratorType=cfg.accelerator_type, acceleratorCount=cfg.accelerator_count)
        spec: dict[str, Any] = {
            "workerPoolSpecs": [{
                "machineSpec": machine,
                "replicaCount": "1",  # int64: a string in REST JSON; the primary replica
                "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": cfg.boot_disk_gb},
                # args replace the image's CMD: the same `train` the image runs on SageMaker
                "containerSpec": {"imageUri": cfg.image_uri or "local",
                                  "args": ["train", "--dataset-name", dataset_name, *job.trainer_args()],
                                  "env": [{"name": k, "value": v} for k, v in env.items()]},
            }],
            "baseOutputDirectory": {"outputUriPrefix": base},
            "scheduling": {"timeout": f"{cfg.max_run}s", "strategy": "SPOT" if cfg.spot else "STANDARD"},
        }
        if cfg.replica_count > 1:  # the other replicas: the same machine and container, in workerpool1
            spec["workerPoolSpecs"].append({**spec["workerPoolSpecs"][0], "replicaCount": str(cfg.replica_count - 1)})
        if cfg.service_account:
            spec["serviceAccount"] = cfg.service_account
        labels = {"platbench": "true", "model": re.sub(r"[^a-z0-9_-]", "-", job.model.lower())[:63]}
        return {"displayName": display_name, "jobSpec": spec, "labels": labels}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        bucket, prefix = cfg.bucket or "BUCKET", cfg.prefix.strip("/")
        root = f"gs://{bucket}/{prefix}"
        name = cfg.job_name or cfg.JOB_NAME.placeholder(cfg.run_name or f"platbench-{job.model}")
        data_uri = (f"{root}/datasets/<fingerprint>/platbench-manifest.json" if cfg.staging == "sharded"
                    else f"{root}/naive/{Path(job.data).resolve().name}/")
        if not cfg.local:
            job.on_hardware(cfg.accelerator_count)  # as check() decides: the job spec shows it
        spec = self.custom_job(job, name, data_uri, Path(job.data).resolve().name)
        spec["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] = cfg.image_uri or "IMAGE_URI"
        project, region = cfg.project or "PROJECT", cfg.region
        steps = [PlanStep("check credentials, project, region, machine/accelerator and bucket before anything is "
                          "uploaded", f"gcloud auth application-default print-access-token >/dev/null && "
                          f"gcloud storage buckets describe gs://{bucket}")]
        if not cfg.local:
            from platforms.image import pinning

            steps += pinning.plan_steps(cfg.image_uri, "image_uri", "Artifact Registry")
        steps += staging_steps(job.data, cfg.staging, root, lambda what, to: f"gcloud storage cp {what} {to}",
                               lambda what, to: f"gcloud storage cp -r {what}/* {to}",
                               resumable="only-if-absent, resumable", reads="the job reads it through the /gcs mount")
        if cfg.local:
            steps += [
                PlanStep("local mode: a temporary folder stands in for /gcs (PLATBENCH_GCS_ROOT); the staged "
                         "dataset and existing checkpoints are downloaded into it",
                         f"gcloud storage cp -r {root}/... GCS_ROOT/{bucket}/{prefix}/"),
                PlanStep("run the trainer natively with the job's args and env, AIP_MODEL_DIR / "
                         "AIP_CHECKPOINT_DIR from baseOutputDirectory",
                         "PLATBENCH_GCS_ROOT=GCS_ROOT AIP_MODEL_DIR=" + spec["jobSpec"]["baseOutputDirectory"][
                             "outputUriPrefix"] + "/model/ python -m trainer " +
                         " ".join(shlex.quote(a) for a in spec["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"])),
                PlanStep("upload what the job wrote under the base output directory back to the bucket",
                         f"gcloud storage cp -r GCS_ROOT/{bucket}/{prefix}/jobs/{self.run_key(name)} {root}/jobs/"),
            ]
        else:
            if cfg.replica_count > 1:
                steps.append(PlanStep(
                    f"{cfg.replica_count} replicas, one DDP run: workerpool0 the primary (1), workerpool1 the other "
                    f"{cfg.replica_count - 1}; each replica's trainer reads CLUSTER_SPEC and starts {job.devices} "
                    "rank(s) with torchrun, master the workerpool0 host",
                    f"torchrun --nnodes {cfg.replica_count} --node-rank <from CLUSTER_SPEC task> --master-addr "
                    f"<workerpool0 host> --master-port <its port> --nproc-per-node {job.devices} -m trainer train …"))
            steps += [
                PlanStep(f"create the custom job ({cfg.machine_type}"
                         + (f" + {cfg.accelerator_count}× {cfg.accelerator_type}" if cfg.accelerator_count else "")
                         + (", Spot" if cfg.spot else ", on demand") + f", timeout {cfg.max_run}s) through the "
                         "JobService API (google-cloud-aiplatform); an accelerator adds --device cuda to the args, "
                         "so a GPU CUDA cannot use fails the job in one line instead of training on the CPU",
                         f"gcloud ai custom-jobs create --project={project} --region={region} "
                         f"--display-name={name} --config=job.yaml   # job.yaml: "
                         + json.dumps(spec["jobSpec"])),
                PlanStep("wait, reporting the job's states (queued, pending/provisioning, running) and times",
                         f"gcloud ai custom-jobs describe JOB_ID --project={project} --region={region}"),
            ]
        return steps + closing_steps(
            f"gcloud storage cp -r {root}/jobs/{self.run_key(name)}/output {root}/jobs/{self.run_key(name)}/model .",
            "region, machine, image, running-time cost at list price"
            + (f" ({self._quote.usd_per_hour:.4f} USD/h, {self._quote.basis})" if self._quote else ""),
            f"gcloud ai custom-jobs cancel JOB_ID --project={project} --region={region}",
            what="results.json, metrics.jsonl, train.log (base/output/) and the model (base/model/)")

    # ------------------------------------------------------------------ submit and the job's states
    def submit(self, job: Job, staged: dict[str, Any]) -> VertexHandle:
        display = self._display_name(job)
        spec = self.custom_job(job, display, self._staged.data_uri, self._staged.name)
        handle = VertexHandle(job_id=display, spec=spec, staged=self._staged,
                              base_output=spec["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"])
        if self.parsed().local:
            handle.local_run = local_run(spec, display, self._store, self._staged)
            handle.local_run.start()
        else:
            handle.job_id = self.jobs.create(spec)
        return handle

    def job_state(self, described: dict) -> str:
        return described.get("state", "JOB_STATE_UNSPECIFIED")

    def queued_since(self, handle: VertexHandle, described: dict) -> datetime:
        return timestamp(described.get("createTime")) or handle.seen[self.job_state(described)]

    def queue_hint(self) -> str:
        return quota_hint(self.parsed())

    def job_outcome(self, handle: VertexHandle, d: dict) -> Outcome:
        cfg = self.parsed()
        state = d.get("state")
        status = {"JOB_STATE_SUCCEEDED": "finished", "JOB_STATE_CANCELLED": "killed"}.get(state, "failed")
        created, started, ended = (timestamp(d.get(k)) for k in ("createTime", "startTime", "endTime"))
        phases: dict[str, float] = {}
        timeline = d.get("stateTimeline") or seen_timeline(handle)
        if timeline:  # observed state changes (exact in local mode, polling resolution otherwise)
            points = [(s, timestamp(t)) for s, t in timeline]
            if created and points[0][0] != "JOB_STATE_QUEUED":
                points.insert(0, ("JOB_STATE_QUEUED", created))  # queued from createTime until seen moving
            if not d.get("stateTimeline"):  # the job's own times win over when polling first saw a state:
                # startTime "first entered JOB_STATE_RUNNING", endTime entered the terminal state
                points = [(s, started if s == "JOB_STATE_RUNNING" and started else
                           ended if s in TERMINAL and ended else t) for s, t in points]
            phases = timeline_phases(points, ended or datetime.now(timezone.utc), PHASES)
        if created and started:  # the documented times win for the boundary they define
            before = (started - created).total_seconds()
            if "provisioning" not in phases:
                phases["queued"] = before
        if started and ended and "training" not in phases:
            phases["training"] = (ended - started).total_seconds()
        # the job's wall-clock running time: replicas are counted once, in the quote (pricing.Quote)
        running = (ended - started).total_seconds() if started and ended else None
        metrics = {"api_retries": float(self.api_stats.snapshot()["retries"])}
        # cost at the spot price for a spot job where prices.yaml has one; the estimate on demand
        on_demand = pricing.quote("vertex", cfg.region, self._items(cfg)) if cfg.spot else self._quote
        tags = {tracking.Tag.JOB_ID: handle.job_id, "platbench.vertex.state": state or "",
                "platbench.run_name": self.run_key(handle.spec.get("displayName", handle.job_id)),
                "platbench.checkpoint_uri": handle.base_output + "/checkpoints/",
                "platbench.cost_basis": "running time (endTime - startTime) x list price; Vertex reports no billed time"}
        return Outcome(status, None, phases=phases, billed_seconds=None,
                       **self.costs(running, on_demand), metrics=metrics,
                       tags=tags, message=(d.get("error") or {}).get("message", "") or f"job {handle.job_id} {state}")

    # ------------------------------------------------------------------ collect
    def collect(self, handle: VertexHandle, outcome: Outcome, dest: Path) -> Path:
        base_key = handle.base_output[len(f"gs://{self.cfg.bucket}/"):]
        return self.collect_folders(handle, outcome, dest, [(f"{base_key}/output/", ""), (f"{base_key}/model/", "model")],
                                    f"vertex job {handle.job_id}", f"{handle.base_output}/output/")
