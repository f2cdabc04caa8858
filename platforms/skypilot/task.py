"""The `--set` settings of `platbench launch skypilot` and the SkyPilot task they describe, as the task
YAML's dictionary (no SkyPilot import: `--dry-run` prints it offline; train.py hands it to
`sky.Task.from_yaml_config`, which validates it against SkyPilot's schema).

Task YAML fields used (https://docs.skypilot.co/en/latest/reference/yaml-spec.html):
- resources.cloud / accelerators (`NAME:COUNT`) / use_spot / region / image_id (`docker:IMAGE` runs the
  task inside that container: https://docs.skypilot.co/en/latest/examples/docker-containers.html)
- resources.job_recovery: a managed job's recovery strategy after a preemption, and restarts on a user
  error (https://docs.skypilot.co/en/latest/examples/managed-jobs.html#jobs-restarts-on-user-code-failure)
- file_mounts with `source: s3://BUCKET | gs://BUCKET` and `mode: MOUNT_CACHED` (a FUSE mount whose writes
  are cached locally and uploaded asynchronously, the mode SkyPilot recommends for outputs and checkpoints;
  reads go through the same cache): https://docs.skypilot.co/en/latest/reference/storage.html
- envs, run (the command run in the container).

One mount of the whole bucket: SkyPilot 0.9 refuses a MOUNT / MOUNT_CACHED source below the bucket
(s3://BUCKET/prefix: "MOUNT mode does not support mounting specific files from cloud storage", checked
when the launch constructs the storage: Storage._validate_source). The image's CMD is `train` (Dockerfile)
and the trainer finds its folders from PLATBENCH_DATA / PLATBENCH_OUT (trainer/environment.py, the generic
table), pointing into the mount:

    BUCKET → /platbench/bucket   MOUNT_CACHED
    PLATBENCH_DATA  /platbench/bucket/<prefix>/datasets/<fingerprint>/platbench-manifest.json (shards + manifest)
    PLATBENCH_OUT   /platbench/bucket/<prefix>/jobs/<run>   (results, model/, checkpoints/)
"""
from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from platforms.core.cloud_settings import CloudJobSettings, poll_every
from platforms.core.api import Job
from platforms.core.container_env import container_env, pinned_digest
from platforms.core.names import SHORT_STAMP, NameRule

MOUNT_PATH = "/platbench/bucket"
CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod", "kubernetes")
# the bucket scheme each cloud's own object store has among platbench's stores; the other clouds mount
# either (SkyPilot mounts s3:// and gs:// from any cloud, with that store's credentials on the cluster)
NATIVE_SCHEME = {"aws": "s3", "gcp": "gs"}
# SkyPilot's own parse of `accelerators` as a string: <name> or <name>:<count> (sky/resources.py)
ACCELERATORS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(:\d+(\.\d+)?)?$")
BUCKET_RE = re.compile(r"^(s3|gs)://[a-z0-9][a-z0-9.\-_]{1,220}[a-z0-9]$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*(:\d+)?/[^\s@:]+(@sha256:[0-9a-f]{64}|:[\w][\w.\-]{0,127})$")
# a Docker reference's repository path: lower-case components joined by . _ __ - (distribution/reference grammar,
# https://github.com/distribution/reference/blob/main/reference.go)
REPO_PATH_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def image_problem(image: str) -> Optional[str]:
    """Which rule of REGISTRY/NAME@sha256:… or REGISTRY/NAME:TAG `image` breaks, in words; None if none."""
    ref, _, digest = image.partition("@")
    host, slash, rest = ref.partition("/")
    if not slash or not re.match(r"^[A-Za-z0-9.\-]+(:\d+)?$", host) or "." not in host and ":" not in host \
            and host != "localhost":
        return "has no registry host (REGISTRY/NAME…): the cluster pulls it from a registry, e.g. ECR or Artifact Registry"
    path, colon, tag = rest.partition(":")
    if host.lower() != host or path.lower() != path:
        return "has upper-case letters: a registry host and repository path are lower-case (only a tag may not be)"
    if not REPO_PATH_RE.match(path):
        return ("has a repository path that is not lower-case letters and digits joined by '.', '_', '__' or "
                "'-' between '/'-separated parts")
    if digest:
        if colon or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return "has a digest that is not @sha256: and 64 lower-case hex digits"
        return None
    if not colon:
        return "has no :TAG or @sha256: digest: the image to run must be named exactly"
    if not re.fullmatch(r"[\w][\w.\-]{0,127}", tag):
        return "has a tag that is not 1-128 letters, digits, '_', '.', '-' (not starting with '.' or '-')"
    return None if IMAGE_RE.match(image) else "is not REGISTRY/platbench@sha256:… or REGISTRY/platbench:TAG"
# cluster names: lower-case letters, digits and dashes, starting with a letter (sky/utils/common_utils.py
# check_cluster_name_is_valid); up to 40 here, which leaves room for the short stamp only
NAME = NameRule(40, chars="a-z0-9", lower=True, letter_first=True, stamp=SHORT_STAMP,
                hint="up to 40 lower-case letters, digits, dashes, starting with a letter")


class SkyPilotSettings(CloudJobSettings):
    """`--set KEY=VALUE` for `platbench launch skypilot`. job_name: the cluster's (or managed job's) name,
    default run_name; run_name: outputs under jobs/<run_name> (a new launch of the run resumes it), default a
    unique name; staging, prefix and poll_seconds as core/cloud_settings.py has them."""

    JOB_NAME: ClassVar[NameRule] = NAME
    RUN_NAME: ClassVar[NameRule] = NAME

    cloud: Optional[Literal["aws", "gcp", "azure", "lambda", "runpod", "kubernetes"]] = None
    accelerators: Optional[str] = None   # NAME:COUNT, e.g. A100:1 (`sky show-gpus` lists them)
    use_spot: bool = False               # → a managed job (`sky jobs launch`): preemption recovery
    region: Optional[str] = None
    image: Optional[str] = None          # REGISTRY/platbench@sha256:… (or :TAG)
    bucket: Optional[str] = None         # s3://NAME or gs://NAME: the dataset and the outputs
    max_restarts_on_errors: int = Field(0, ge=0, le=10)  # managed job: restarts after a non-zero exit
    poll_seconds: float = poll_every(10.0)

    @model_validator(mode="after")
    def _checked(self):
        if self.accelerators is not None and not ACCELERATORS_RE.match(self.accelerators):
            raise ValueError(f"accelerators {self.accelerators!r} is not NAME or NAME:COUNT (e.g. A100:1)")
        problem = image_problem(self.image) if self.image is not None else None
        if problem:
            raise ValueError(f"image {self.image!r} {problem}")
        if self.bucket is not None and not BUCKET_RE.match(self.bucket.rstrip("/")):
            raise ValueError(f"bucket {self.bucket!r} is not s3://NAME or gs://NAME")
        native = NATIVE_SCHEME.get(self.cloud or "")
        if self.bucket and native and not self.bucket.startswith(native + "://"):
            raise ValueError(f"cloud {self.cloud} mounts its own buckets: give --set bucket={native}://NAME")
        return self

    @property
    def max_run(self) -> float:
        """SkyPilot puts no limit on a job's time (a managed job recovers from preemptions): the cloud-job
        template's deadline never comes."""
        return math.inf

    @property
    def digest(self) -> Optional[str]:
        return pinned_digest(self.image)

    @property
    def scheme(self) -> str:
        return (self.bucket or "").split("://", 1)[0] or NATIVE_SCHEME.get(self.cloud or "", "s3")

    @property
    def gpu_request(self) -> str:
        """The accelerators the task asks for (SkyPilot's NAME:COUNT; A100:1 unless given): every task has a GPU."""
        return self.accelerators or "A100:1"

    @property
    def gpu_count(self) -> int:
        return int(self.gpu_request.partition(":")[2] or 1)

    @property
    def bucket_name(self) -> str:
        return (self.bucket or f"{self.scheme}://BUCKET").split("://", 1)[1].rstrip("/")


def task_config(cfg: SkyPilotSettings, name: str, out_key: str, data_key: str, command: list[str],
                env: dict[str, str]) -> dict:
    """The task YAML's dictionary. data_key: the staged manifest's (or folder's) key in the bucket; out_key: the
    outputs' key in the bucket; both are read and written through the bucket's mount at MOUNT_PATH."""
    resources = {"cloud": cfg.cloud or "aws", "accelerators": cfg.gpu_request,
                 "use_spot": cfg.use_spot, "image_id": f"docker:{cfg.image or 'REGISTRY/platbench@sha256:DIGEST'}"}
    if cfg.region:
        resources["region"] = cfg.region
    if cfg.use_spot:  # a managed job: recover from preemption on new capacity, resume from the checkpoint
        resources["job_recovery"] = {"strategy": "EAGER_NEXT_REGION",
                                     "max_restarts_on_errors": cfg.max_restarts_on_errors}
    return {
        "name": name,
        "resources": resources,
        "envs": {**env, "PLATBENCH_DATA": f"{MOUNT_PATH}/{data_key}", "PLATBENCH_OUT": f"{MOUNT_PATH}/{out_key}"},
        "file_mounts": {MOUNT_PATH: {"source": f"{cfg.scheme}://{cfg.bucket_name}", "mode": "MOUNT_CACHED"}},
        "run": shlex.join(command),
    }


def job_task(cfg: SkyPilotSettings, job: Job, name: str, out_rel: str, data_rel: str) -> dict:
    """The task that runs `job`: the trainer's command and the container's environment (with the image's ID
    where the push record knows it); out_rel and data_rel are keys under the settings' prefix."""
    from platforms.image import pinning

    env = container_env("skypilot", pinning.image_env(cfg.image), digest=cfg.digest)
    job.on_hardware(cfg.gpu_count)  # a GPU's price: --device cuda, never a silent CPU run (issue 24 item 9)
    command = ["train", "--dataset-name", Path(job.data).resolve().name, *job.trainer_args()]
    prefix = cfg.prefix.strip("/")
    return task_config(cfg, name, f"{prefix}/{out_rel}", f"{prefix}/{data_rel}", command, env)
