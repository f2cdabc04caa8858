"""Amazon SageMaker: a training job from the platbench image, through the `sagemaker` SDK (v2 Estimator)
and boto3, with the dataset staged into S3, managed spot with checkpoints, and a local mode.

Platform contracts relied on (official pages):
- CreateTrainingJob request (image, role, channels, output path, resources, stopping condition,
  hyperparameters as a string→string map, metric definitions, managed spot, checkpoint config):
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
- The SDK's generic Estimator (image_uri, role, instance_type/count, use_spot_instances, max_wait,
  checkpoint_s3_uri, metric_definitions, environment) and TrainingInput (s3_data_type, distribution):
  https://sagemaker.readthedocs.io/en/v2.257.0/api/training/estimators.html
  https://sagemaker.readthedocs.io/en/v2.257.0/api/utility/inputs.html
- ManifestFile channels (a JSON list: {"prefix": …} then keys relative to it); each object lands at its
  relative path under /opt/ml/input/data/<channel>/:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html
- The container: `docker run IMAGE train`, /opt/ml/input/config/{hyperparameters,inputdataconfig,
  resourceconfig}.json, /opt/ml/input/data/<channel>, TRAINING_JOB_NAME / TRAINING_JOB_ARN:
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
- Outputs: /opt/ml/model → <S3OutputPath>/<job>/output/model.tar.gz, /opt/ml/output/data →
  output.tar.gz beside it, /opt/ml/output/failure → FailureReason; exit 0 = Completed, else Failed:
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-signal-success-failure.html
- Checkpoints: /opt/ml/checkpoints synced with CheckpointConfig.S3Uri, existing ones copied in at start:
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CheckpointConfig.html
- Managed spot: MaxWaitTimeInSeconds ≥ MaxRuntimeInSeconds; Interrupted → restarted with checkpoints:
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StoppingCondition.html
- DescribeTrainingJob: SecondaryStatusTransitions (phase timings), BillableTimeInSeconds (wall-clock;
  × InstanceCount = instance time billed), TrainingTimeInSeconds, FailureReason, ModelArtifacts:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
- Managed spot billing: savings = 1 − BillableTimeInSeconds / TrainingTimeInSeconds (e.g. 100 billable
  of 500 training seconds = 80% saved), i.e. the spot discount shows as fewer billable seconds:
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_SecondaryStatusTransition.html
- StopTrainingJob (SIGTERM, 120 s, then SIGKILL):
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html
- Metric definitions (Name + Regex over the job's log):
  https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html
- TrainingJobName: up to 63 characters, ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, unique in the account and
  region (CreateTrainingJob page above): a generated name is cut before its time stamp and random suffix,
  never through them, and never ends in "-".
- Quotas: a new account often has 0 instances of a GPU type "for training job usage" (and "for spot
  training job usage"); CreateTrainingJob then fails with ResourceLimitExceeded. Quotas are raised in the
  Service Quotas console (service "Amazon SageMaker"):
  https://docs.aws.amazon.com/sagemaker/latest/dg/regions-quotas.html
  https://docs.aws.amazon.com/servicequotas/latest/userguide/request-quota-increase.html
- The input bucket must be in the job's region (S3DataSource: "Your input bucket must be in the same
  AWS region as your training job"); checked with S3 GetBucketLocation in `check`:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html
- GPU of each instance family (accelerated computing instances):
  https://aws.amazon.com/sagemaker/pricing/ and https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from platforms.clouds.aws.bucket_name import BucketName
from platforms.core import pricing

from platforms.core import tracking
from platforms.core.cloud_job import GRACE_SECONDS, CloudJob, CloudJobPlatform, CloudJobs
from platforms.core.cloud_settings import CloudJobSettings, LocalMode, TimeLimit
from platforms.core.container_env import container_env
from platforms.core.image_gpus import IMAGE_CUDA_ARCHS, arch_supported  # tests read them here
from platforms.core.names import NameRule
from platforms.core.run_tags import image_tags, price_tags
from platforms.core.staging_plan import closing_steps, staging_steps
from platforms.sagemaker import SPEC
from platforms.core.api import Job, Outcome, PlanStep
from platforms.sagemaker.emulator import local_run
from platforms.core.settings import validate_job
from platforms.core.sdk import require
from platforms.errors import UserError
from platforms.sagemaker.phases import PHASES, TERMINAL_SECONDARY

CHANNEL = "training"
# TrainingJobName (CreateTrainingJob page above); the checkpoint path's run_name takes the same characters
JOB_NAME = NameRule(63, title="a valid training job name", hint="1-63 of a-z, 0-9, -")
RUN_NAME = NameRule(63, hint="1-63 of a-z, A-Z, 0-9, -")
JOB_NAME_RE = JOB_NAME.pattern
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})

# instance family → (GPU, compute capability) (EC2 accelerated computing page above; SageMaker names)
GPU_FAMILIES = {
    "ml.p2": ("K80", (3, 7)), "ml.p3": ("V100", (7, 0)), "ml.p3dn": ("V100", (7, 0)), "ml.g4dn": ("T4", (7, 5)),
    "ml.g5": ("A10G", (8, 6)), "ml.g6": ("L4", (8, 9)), "ml.g6e": ("L40S", (8, 9)), "ml.p4d": ("A100", (8, 0)),
    "ml.p4de": ("A100", (8, 0)), "ml.p5": ("H100", (9, 0)), "ml.p5e": ("H200", (9, 0)), "ml.p5en": ("H200", (9, 0)),
}


def has_gpu(instance_type: str) -> bool:
    """Whether the instance's family is one of the GPU families above."""
    return instance_type.rsplit(".", 1)[0] in GPU_FAMILIES


def unusable_gpu(instance_type: str) -> Optional[str]:
    """Why the image cannot use this instance's GPU, or None."""
    family = instance_type.rsplit(".", 1)[0]
    if family in GPU_FAMILIES:
        gpu, cc = GPU_FAMILIES[family]
        if not arch_supported(cc):
            return (f"{instance_type} has {gpu} GPUs (sm_{cc[0]}{cc[1]}), which the image's torch build cannot use "
                    f"(it has kernels for {', '.join(IMAGE_CUDA_ARCHS)}): pick e.g. ml.g4dn, ml.g5, ml.g6 or ml.p4d")
    return None


ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")

class SageMakerSettings(CloudJobSettings, TimeLimit, LocalMode):
    """`--set KEY=VALUE` for `platbench launch sagemaker`; job_name, run_name (checkpoints/<run_name>: a new
    job of the run resumes where an interrupted one stopped), staging, prefix, poll_seconds, max_run and local
    as every cloud job has them (core/cloud_settings.py)."""

    JOB_NAME: ClassVar[NameRule] = JOB_NAME
    RUN_NAME: ClassVar[NameRule] = RUN_NAME
    MAX_RUN_LIMIT: ClassVar[int] = 28 * 24 * 3600

    region: str = Field(default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    bucket: Optional[BucketName] = None
    role: Optional[str] = None                  # ARN or role name (needed unless local)
    image_uri: Optional[str] = None             # ECR URI of the platbench image (needed unless local)
    instance_type: str = "ml.g4dn.xlarge"
    # several instances train one model with DDP: every instance's trainer reads resourceconfig.json and
    # starts its ranks with torchrun (trainer/distributed.py), the role `distribution` torch_distributed
    # gives the toolkit in AWS's PyTorch containers; the dataset channel stays FullyReplicated (every rank
    # reads its slice of each batch). https://sagemaker.readthedocs.io/en/v2.257.0/frameworks/pytorch/using_pytorch.html#distributed-pytorch-training
    instance_count: int = Field(1, ge=1, le=64)
    distribution: Optional[Literal["torch_distributed"]] = None
    volume_gb: int = Field(30, ge=1, le=16384)
    spot: bool = False
    max_wait: Optional[int] = Field(None, ge=60, le=28 * 24 * 3600)
    # local=true: the SageMaker SDK's own local mode through Docker, or the trainer as a subprocess;
    # auto = docker when an engine answers and holds image_uri (platforms/sdk_local.py)
    local_runner: Literal["auto", "native", "docker"] = "auto"

    @model_validator(mode="after")
    def _consistent(self):
        if unusable_gpu(self.instance_type):
            raise ValueError(unusable_gpu(self.instance_type))
        if self.instance_count > 1 and self.distribution != "torch_distributed":
            raise ValueError(f"instance_count {self.instance_count} trains one model on several instances only with "
                             "--set distribution=torch_distributed (DDP, torchrun on each instance)")
        if self.instance_count > 1 and self.local:
            raise ValueError("local=true runs one instance on this machine: use instance_count 1 (or --devices N)")
        if self.max_wait is not None and not self.spot:
            raise ValueError("max_wait applies to spot jobs only (add --set spot=true)")
        if self.spot and self.max_wait is not None and self.max_wait < self.max_run:
            raise ValueError(f"max_wait ({self.max_wait}) must be >= max_run ({self.max_run}) for spot jobs")
        return self

    @property
    def effective_max_wait(self) -> Optional[int]:
        return (self.max_wait or 2 * self.max_run) if self.spot else None


@dataclass(kw_only=True)
class SageMakerHandle(CloudJob):
    """job_id: the TrainingJobName; spec: the CreateTrainingJob request (also what local mode runs);
    described: the last DescribeTrainingJob."""

    secondary_seen: list = field(default_factory=list)   # SecondaryStatusTransitions already reported

    @property
    def job_name(self) -> str:
        return self.job_id

    @property
    def request(self) -> dict:
        return self.spec


class SageMakerJobs(CloudJobs):
    """CreateTrainingJob through the SDK's Estimator, DescribeTrainingJob and StopTrainingJob."""

    def __init__(self, platform: "SageMakerPlatform"):
        self.platform = platform

    def create(self, spec: dict) -> str:
        from botocore.exceptions import ClientError

        estimator, inputs = self.platform._estimator(spec)
        try:
            estimator.fit(inputs, wait=False, logs=False, job_name=spec["TrainingJobName"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceLimitExceeded":
                raise UserError(quota_message(self.platform.cfg, exc)) from None
            raise UserError(f"sagemaker: CreateTrainingJob was refused: {aws_error(exc)}") from None
        return spec["TrainingJobName"]

    def get(self, job_id: str) -> dict:
        return self.platform._sm.describe_training_job(TrainingJobName=job_id)

    def cancel(self, job_id: str) -> None:
        self.platform._sm.stop_training_job(TrainingJobName=job_id)


def checked_session(region: str, instance_type: str, shape: str, who: str, what: str):
    """(boto3 session, sagemaker client) after checking the region, the instance type against the API's own
    enum `shape` (TrainingInstanceType, ProductionVariantInstanceType) and that credentials exist."""
    session = sdk_session(region)
    regions = session.get_available_regions("sagemaker")
    if region not in regions:
        raise UserError(f"{who}: unknown region {region!r} (SageMaker regions: {', '.join(regions)})")
    sm = session.client("sagemaker", region_name=region)
    types = sm.meta.service_model.shape_for(shape).enum
    if instance_type not in types:
        close = [t for t in types if t.startswith(instance_type.rsplit(".", 1)[0])][:6]
        raise UserError(f"{who}: unknown {what} {instance_type!r}"
                        + (f" (did you mean {', '.join(close)}?)" if close else ""))
    if session.get_credentials() is None:
        raise UserError(f"{who}: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or run `aws configure`)")
    return session, sm


def sdk_session(region: str):
    """A boto3 session; the SDK module itself is imported only where a job is created."""
    from platforms.clouds.aws.sdk import boto3_module

    return boto3_module().session.Session(region_name=region)


def metric_definitions() -> list[dict]:
    """One {Name, Regex} per trainer log line (trainer/loglines.py), so SageMaker charts them."""
    from trainer import loglines

    return [{"Name": name, "Regex": loglines.regex(name)} for name in loglines.METRICS]


class SageMakerPlatform(CloudJobPlatform):
    nodes_setting = "instance_count={n} distribution=torch_distributed"  # what --nodes N means here (core/launch.py refuse_nodes)
    spec = SPEC
    settings_model = SageMakerSettings
    TERMINAL = TERMINAL
    job_noun = "SageMaker training job"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.cfg: Optional[SageMakerSettings] = None
        self._session = None
        self._sm = None
        self._role_arn: Optional[str] = None
        self._image_digest: Optional[str] = None
        self._runner: Optional[str] = None  # local=true: "docker" | "native"

    # ------------------------------------------------------------------ check

    def preflight(self, job: Job) -> list[str]:
        from platforms.clouds.aws import credentials

        cfg = self.parsed()
        validate_job(job)
        if cfg.local:
            from platforms.sagemaker import sdk_local

            self._runner = sdk_local.choose_runner(cfg)
        self._quote = training_quote(cfg)
        missing = {"bucket": f"--set bucket=NAME (an S3 bucket in {cfg.region})"}
        if not cfg.local:
            missing.update(image_uri="--set image_uri=…@sha256:… (the image in ECR)",
                           role="--set role=ARN_OR_NAME (an execution role)")
        return self.needs(credentials.find(), "AWS", missing)

    def check(self, job: Job) -> None:
        cfg = self.parsed()
        validate_job(job)
        if cfg.local:
            from platforms.sagemaker import sdk_local

            self._runner = sdk_local.choose_runner(cfg)
        session, sm = checked_session(cfg.region, cfg.instance_type, "TrainingInstanceType", "sagemaker",
                                      "training instance type")
        if not cfg.bucket:
            raise UserError("sagemaker: no bucket: add --set bucket=NAME (an S3 bucket in "
                            f"{cfg.region} for the dataset, checkpoints and outputs)")
        if not cfg.local:
            if not cfg.image_uri:
                raise UserError("sagemaker: no image: add --set image_uri=ACCOUNT.dkr.ecr.REGION.amazonaws.com/"
                                "platbench:TAG (or --set local=true to run here)")
            if not cfg.role:
                raise UserError("sagemaker: no execution role: add --set role=ARN_OR_NAME (a role SageMaker can "
                                "assume, with access to the bucket)")
        self._session = session
        self._sm = self.client(session, "sagemaker")
        from platforms.clouds.aws.s3 import S3Store

        self._store = S3Store(cfg.bucket, session=session)
        if not self._store.bucket_exists():
            raise UserError(f"sagemaker: bucket {cfg.bucket!r} does not exist or is not reachable with these credentials")
        where = self._store.bucket_region()
        if where != cfg.region:
            raise UserError(f"sagemaker: bucket {cfg.bucket!r} is in {where}, the job in {cfg.region}: SageMaker reads "
                            f"and writes only buckets in the job's region (use a bucket in {cfg.region} or "
                            f"--set region={where})")
        if not cfg.local:
            # a GPU instance: the trainer must use its GPU (--device cuda), never the CPU at the GPU's price
            job.on_hardware(1 if has_gpu(cfg.instance_type) else 0)
            self._role_arn = self.resolve_role(cfg.role)
            from platforms.image import pinning

            # the job runs REPO@sha256:…: a tag resolved by ECR and the push record, refused if they differ
            self.cfg = pinning.pinned_settings(cfg, "image_uri", "sagemaker", lookup=self._ecr_digest)
            self.jobs = SageMakerJobs(self)
        self._quote = training_quote(cfg)

    def client(self, session, service: str):
        from platforms.clouds.aws.sdk import client_config, count_attempts
        from platforms.core.store import StoreStats

        client = session.client(service, region_name=self.cfg.region, config=client_config(8))
        if not hasattr(self, "api_stats"):
            self.api_stats = StoreStats()
        count_attempts(client, self.api_stats)
        return client

    def resolve_role(self, role: str) -> str:
        """A role name or ARN → an ARN that exists (IAM GetRole); without iam:GetRole, a well-formed ARN
        is trusted as given. https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html"""
        from botocore.exceptions import ClientError

        name = role.rsplit("/", 1)[-1] if role.startswith("arn:") else role
        if role.startswith("arn:") and not ROLE_ARN_RE.match(role):
            raise UserError(f"sagemaker: role {role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        try:
            return self._session.client("iam").get_role(RoleName=name)["Role"]["Arn"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchEntity":
                raise UserError(f"sagemaker: IAM role {name!r} does not exist") from None
            if code in ("AccessDenied", "AccessDeniedException") and role.startswith("arn:"):
                return role
            raise UserError(f"sagemaker: could not check IAM role {name!r}: {code or exc}") from None

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: cfg.region, tracking.Tag.INSTANCE_TYPE: cfg.instance_type,
                tracking.Tag.LOCAL_MODE: str(cfg.local).lower(), tracking.Tag.STAGING: cfg.staging,
                "platbench.spot": str(cfg.spot).lower()}
        if self._runner:
            tags["platbench.local_runner"] = self._runner
        if cfg.image_uri:
            tags["platbench.image_uri"] = cfg.image_uri
            self._image_digest = self._digest(cfg.image_uri)
            tags.update(image_tags(self._image_digest))
        return {**tags, **price_tags(self._quote)}

    def _digest(self, image_uri: str) -> Optional[str]:
        """sha256:… from an image URI pinned by digest, or from ECR (DescribeImages) for a tag.
        https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html"""
        if "@sha256:" in image_uri:
            return image_uri.split("@", 1)[1]
        if self._runner == "docker":  # the image the local engine runs
            from platforms.sagemaker import sdk_local

            return sdk_local.image_digest(image_uri)
        from platforms.image import pinning

        repository, tag, _ = pinning.split(image_uri)
        try:
            return self._ecr_digest(repository, tag)
        except pinning.Missing:
            return None

    def _ecr_digest(self, repository: str, tag: str) -> Optional[str]:
        """ECR's digest of REPO:TAG (DescribeImages): None when REPO is not ECR's or ECR cannot be asked;
        pinning.Missing when ECR answers there is no such repository or tag."""
        from platforms.image.pinning import Missing

        m = re.match(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)$", repository)
        if not m or self._session is None:
            return None
        try:
            ecr = self._session.client("ecr", region_name=m.group(2))
            images = ecr.describe_images(registryId=m.group(1), repositoryName=m.group(3),
                                         imageIds=[{"imageTag": tag}])["imageDetails"]
        except Exception as exc:  # noqa: BLE001 - no ECR access: the push record decides (pinning.py)
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise Missing(f"ECR: {code}") from None
            return None
        return images[0]["imageDigest"] if images else None

    # ------------------------------------------------------------------ the request
    def _job_name(self, job: Job) -> str:
        cfg = self.parsed()
        return cfg.job_name or JOB_NAME.unique(cfg.run_name or f"platbench-{job.model}")

    def training_request(self, job: Job, job_name: str, channel_uri: str, channel_type: str,
                         dataset_name: Optional[str] = None) -> dict:
        """The CreateTrainingJob request, in the API's own shape (API_CreateTrainingJob.html)."""
        cfg = self.parsed()
        hyperparameters = job.trainer_hyperparameters()
        # the channel holds shards or a copy: name the dataset after the user's folder, not the copy's
        hyperparameters.setdefault("dataset_name", dataset_name or Path(job.data).resolve().name)
        root = f"s3://{cfg.bucket}/{cfg.prefix.strip('/')}"
        from platforms.image import pinning

        # and its image ID where the push record knows it
        env = container_env("sagemaker", pinning.image_env(cfg.image_uri), digest=self._image_digest)
        request = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": {"TrainingImage": cfg.image_uri or "local", "TrainingInputMode": "File",
                                       "MetricDefinitions": metric_definitions()},
            "RoleArn": self._role_arn or "local",
            "HyperParameters": hyperparameters,
            "InputDataConfig": [{"ChannelName": CHANNEL, "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": channel_type, "S3Uri": channel_uri, "S3DataDistributionType": "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": f"{root}/jobs"},
            "ResourceConfig": {"InstanceType": cfg.instance_type, "InstanceCount": cfg.instance_count,
                               "VolumeSizeInGB": cfg.volume_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": cfg.max_run},
            "Environment": env,
            "CheckpointConfig": {"S3Uri": f"{root}/checkpoints/{cfg.run_key(job_name)}",
                                 "LocalPath": "/opt/ml/checkpoints"},
            "EnableManagedSpotTraining": cfg.spot,
        }
        if cfg.spot:
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = cfg.effective_max_wait
        return request

    def _estimator(self, request: dict):
        """The SDK's generic Estimator carrying exactly `request` (the SDK sends CreateTrainingJob)."""
        import logging

        os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
        sagemaker = require("sagemaker", "sagemaker", "the SageMaker Python SDK")
        from sagemaker.estimator import Estimator
        from sagemaker.inputs import TrainingInput
        session = sagemaker.Session(boto_session=self._session, sagemaker_client=self._sm,
                                    default_bucket=self.cfg.bucket)
        spec, res, stop = request["AlgorithmSpecification"], request["ResourceConfig"], request["StoppingCondition"]
        estimator = Estimator(
            image_uri=spec["TrainingImage"], role=request["RoleArn"], instance_count=res["InstanceCount"],
            instance_type=res["InstanceType"], volume_size=res["VolumeSizeInGB"], max_run=stop["MaxRuntimeInSeconds"],
            output_path=request["OutputDataConfig"]["S3OutputPath"], sagemaker_session=session,
            hyperparameters=dict(request["HyperParameters"]), metric_definitions=spec["MetricDefinitions"],
            use_spot_instances=request["EnableManagedSpotTraining"], max_wait=stop.get("MaxWaitTimeInSeconds"),
            checkpoint_s3_uri=request["CheckpointConfig"]["S3Uri"],
            checkpoint_local_path=request["CheckpointConfig"]["LocalPath"], environment=request["Environment"],
            debugger_hook_config=False, disable_profiler=True,
        )
        source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
        channel = TrainingInput(source["S3Uri"], s3_data_type=source["S3DataType"],
                                distribution=source["S3DataDistributionType"], input_mode="File")
        return estimator, {CHANNEL: channel}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        bucket, prefix = cfg.bucket or "BUCKET", cfg.prefix.strip("/")
        name = cfg.job_name or JOB_NAME.placeholder(cfg.run_name or f"platbench-{job.model}")
        root = f"s3://{bucket}/{prefix}"
        if cfg.staging == "sharded":
            channel_uri, channel_type = f"{root}/datasets/<fingerprint>/sagemaker.manifest", "ManifestFile"
        else:
            channel_uri, channel_type = f"{root}/naive/{Path(job.data).resolve().name}/", "S3Prefix"
        self.cfg = cfg
        if not cfg.local:
            job.on_hardware(1 if has_gpu(cfg.instance_type) else 0)  # as check() decides: the request shows it
        request = self.training_request(job, name, channel_uri, channel_type)
        request["RoleArn"] = cfg.role if (cfg.role or "").startswith("arn:") else \
            f"arn:aws:iam::ACCOUNT:role/{cfg.role or 'ROLE'}"
        request["AlgorithmSpecification"]["TrainingImage"] = cfg.image_uri or "IMAGE_URI"
        steps = [PlanStep("check credentials, region, instance type, bucket and role before anything is uploaded",
                          f"aws sts get-caller-identity && aws s3api head-bucket --bucket {bucket}"
                          + ("" if cfg.local else f" && aws iam get-role --role-name {request['RoleArn'].rsplit('/', 1)[-1]}"))]
        if not cfg.local:
            from platforms.image import pinning

            steps += pinning.plan_steps(cfg.image_uri, "image_uri", "ECR (DescribeImages)")
        steps += staging_steps(job.data, cfg.staging, root, lambda a, b: f"aws s3 cp {a} {b}",
                               lambda a, b: f"aws s3 sync {a} {b}", resumable="multipart, resumable")
        if cfg.staging == "sharded":
            steps.append(PlanStep("then the SageMaker ManifestFile listing the manifest and its shards",
                                  f"aws s3 cp sagemaker.manifest {channel_uri}"))
        if cfg.local and self._runner == "docker":
            from platforms.sagemaker import sdk_local

            steps += [PlanStep(title, cmd) for title, cmd in sdk_local.plan_steps(request, cfg)]
        elif cfg.local:
            steps += [
                PlanStep("local mode: make a temporary /opt/ml (PLATBENCH_OPT_ML), write input/config/*.json and "
                         "download the channel into input/data/training, as SageMaker does",
                         f"aws s3 cp --recursive {root}/ OPT_ML/input/data/training/   # the manifest's objects"),
                PlanStep("run the trainer natively under the SageMaker contract (SIGTERM → checkpoint, exit 143)",
                         "PLATBENCH_OPT_ML=OPT_ML TRAINING_JOB_NAME=" + name + " python -m trainer train"),
                PlanStep("upload /opt/ml/model and /opt/ml/output/data as model.tar.gz and output.tar.gz, sync "
                         "checkpoints", f"aws s3 cp model.tar.gz {root}/jobs/{name}/output/model.tar.gz"),
            ]
        else:
            steps += [
                *([PlanStep(f"{cfg.instance_count} instances, one DDP run (distribution torch_distributed): each "
                            "instance's trainer reads /opt/ml/input/config/resourceconfig.json and starts "
                            f"{job.devices} rank(s) with torchrun, master the first host",
                            "torchrun --nnodes " + str(cfg.instance_count) + " --node-rank <index of current_host> "
                            "--master-addr <hosts[0]> --master-port 29500 --nproc-per-node " + str(job.devices)
                            + " -m trainer train …")] if cfg.instance_count > 1 else []),
                PlanStep(f"create the training job ({cfg.instance_type} ×{cfg.instance_count}"
                         + (f", managed spot, max wait {cfg.effective_max_wait}s" if cfg.spot else ", on demand")
                         + f", max run {cfg.max_run}s) through the sagemaker SDK's Estimator; a GPU instance "
                         "adds device=cuda to the hyperparameters, so a GPU CUDA cannot use fails the job in one "
                         "line instead of training on the CPU",
                         "aws sagemaker create-training-job --cli-input-json " + shlex.quote(json.dumps(request))),
                PlanStep("wait, reporting SecondaryStatusTransitions (queued, provisioning, image pull, downloading, "
                         "training, uploading)",
                         f"aws sagemaker wait training-job-completed-or-stopped --training-job-name {name} && "
                         f"aws sagemaker describe-training-job --training-job-name {name}"),
            ]
        price = f" at {self._quote.usd_per_hour if self._quote else '?'} USD/h" if not cfg.local else ""
        steps += closing_steps(f"aws s3 cp {root}/jobs/{name}/output/model.tar.gz . && "
                               f"aws s3 cp {root}/jobs/{name}/output/output.tar.gz .",
                               f"region, instance type, image digest, billed seconds, cost{price}",
                               f"aws sagemaker stop-training-job --training-job-name {name}",
                               what="model.tar.gz and output.tar.gz (results.json, metrics.jsonl, train.log)",
                               stop="stop the job and remove what the run created")
        return steps

    # ------------------------------------------------------------------ stage
    def stage(self, job: Job) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        cfg = self.parsed()
        try:
            figures = super().stage(job)
        except ClientError as exc:  # refused, not throttled: the client's retries are spent on those
            raise UserError(f"sagemaker: staging into s3://{cfg.bucket} was refused: {aws_error(exc)}") from None
        staged = self._staged
        if staged.mode == "sharded":
            root = f"s3://{cfg.bucket}/{staged.prefix}/"
            manifest = [{"prefix": root}, staged.data_key[len(staged.prefix) + 1:],
                        *[k[len(staged.prefix) + 1:] for k in staged.shard_keys]]
            key = staged.data_key.rsplit("/", 1)[0] + "/sagemaker.manifest"
            self._store.put_bytes(key, json.dumps(manifest).encode())
            self._channel = (f"s3://{cfg.bucket}/{key}", "ManifestFile")
        else:
            self._channel = (staged.data_uri, "S3Prefix")
        return figures

    # ------------------------------------------------------------------ submit
    def submit(self, job: Job, staged: dict[str, Any]) -> SageMakerHandle:
        cfg = self.parsed()
        name = self._job_name(job)
        request = self.training_request(job, name, *self._channel, dataset_name=self._staged.name)
        handle = SageMakerHandle(job_id=name, spec=request, staged=self._staged)
        if cfg.local and self._runner == "docker":
            from platforms.sagemaker import sdk_local

            handle.local_run = sdk_local.local_run(request, self._store, cfg.prefix, self._staged,
                                                   cfg.region, cfg.image_uri)
            handle.local_run.start()
        elif cfg.local:
            handle.local_run = local_run(request, self._store, cfg.prefix, self._staged)
            handle.local_run.start()
        else:
            self.jobs.create(request)
        return handle

    # ------------------------------------------------------------------ what the template polls
    @property
    def grace_seconds(self) -> float:
        """A spot job may take max_wait (>= max_run, capacity waits included): the template's deadline of
        max_run + grace is the stopping condition plus an hour either way."""
        cfg = self.parsed()
        return GRACE_SECONDS + (cfg.effective_max_wait or cfg.max_run) - cfg.max_run

    def job_state(self, described: dict) -> str:
        return described.get("TrainingJobStatus", "")

    def after_poll(self, handle: SageMakerHandle, d: dict, progress) -> None:
        """The primary status says little (InProgress): the secondary transitions are the phases."""
        for t in d.get("SecondaryStatusTransitions", []):
            key = (t["Status"], str(t.get("StartTime")))
            if key not in handle.secondary_seen:
                handle.secondary_seen.append(key)
                progress.phase(PHASES.get(t["Status"], t["Status"].lower()))
                if t.get("StatusMessage"):
                    progress.batch(t["StatusMessage"][:80])

    def job_outcome(self, handle: SageMakerHandle, d: dict) -> Outcome:
        status = {"Completed": "finished", "Stopped": "killed", "Failed": "failed"}[d["TrainingJobStatus"]]
        if d.get("SecondaryStatus") == "MaxWaitTimeExceeded":
            status = "preempted"
        phases = phase_seconds(d.get("SecondaryStatusTransitions", []), d.get("TrainingEndTime"))
        # both are the job's wall-clock seconds; the instance count is in the quote (pricing.Quote), so it
        # is not applied here a second time
        billed = d.get("BillableTimeInSeconds")
        ran = d.get("TrainingTimeInSeconds")
        if ran is None and d.get("TrainingStartTime") and d.get("TrainingEndTime"):
            ran = (d["TrainingEndTime"] - d["TrainingStartTime"]).total_seconds()
        metrics = {"api_retries": float(self.api_stats.snapshot()["attempts"] - self.api_stats.snapshot()["requests"])}
        if phases.get("downloading") is not None and handle.staged.bytes:
            metrics["download_s_per_mb"] = phases["downloading"] / (handle.staged.bytes / (1024 * 1024))
        if billed is not None and ran:
            metrics["spot_savings_fraction"] = 1 - billed / ran
        for m in d.get("FinalMetricDataList", []):
            metrics[f"sagemaker_{re.sub(r'[^a-zA-Z0-9_]+', '_', m['MetricName'])}"] = float(m["Value"])
        if billed is not None:
            metrics["billed_instance_seconds"] = billed * d.get("ResourceConfig", {}).get("InstanceCount", 1)
        return Outcome(status, None, phases=phases, billed_seconds=billed,
                       cost_usd=self._quote.cost(billed) if self._quote else None,
                       list_estimate_usd=self._quote.cost(ran) if self._quote else None, metrics=metrics,
                       tags={tracking.Tag.JOB_ID: handle.job_name,
                             "platbench.sagemaker.secondary_status": d.get("SecondaryStatus", ""),
                             "platbench.run_name": self.parsed().run_key(handle.job_name),
                             "platbench.checkpoint_uri": handle.request["CheckpointConfig"]["S3Uri"]},
                       message=d.get("FailureReason", "") or f"job {handle.job_name} {d['TrainingJobStatus']}")

    # ------------------------------------------------------------------ collect
    def collect(self, handle: SageMakerHandle, outcome: Outcome, dest: Path) -> Path:
        from platforms.sagemaker.emulator import collect_tarballs

        out_prefix = f"{handle.request['OutputDataConfig']['S3OutputPath']}/{handle.job_name}/output"
        _, _, key_prefix = out_prefix.partition(f"s3://{self.cfg.bucket}/")
        figures = collect_tarballs(self._store, key_prefix, Path(dest), handle.staged.fingerprint,
                                   f"sagemaker job {handle.job_name}")
        outcome.metrics.update(figures)
        outcome.output_dir = Path(dest)
        return Path(dest)

    # ------------------------------------------------------------------ teardown (the template's, then:)
    def release(self, handle: Optional[SageMakerHandle]) -> None:
        """Any unfinished multipart upload of this run's staging is aborted. The staged dataset stays
        (content-addressed, reused by the next run) and so do the job's outputs and checkpoints (resume)."""
        if self._store is not None:
            self._store.abort_incomplete(f"{self.parsed().prefix.strip('/')}/")


def aws_error(exc) -> str:
    """A botocore ClientError as `Code: first line of its message`."""
    err = exc.response.get("Error", {})
    said = (err.get("Message") or str(exc)).strip().splitlines()
    return f"{err.get('Code', type(exc).__name__)}: {said[0] if said else ''}"


def quota_message(cfg: SageMakerSettings, exc) -> str:
    """One line for CreateTrainingJob's ResourceLimitExceeded: the quota by its Service Quotas name and how
    to raise it (regions-quotas page above)."""
    quota = f"{cfg.instance_type} for {'spot ' if cfg.spot else ''}training job usage"
    said = exc.response.get("Error", {}).get("Message", "").splitlines()[0] if exc.response.get("Error") else ""
    return (f"sagemaker: quota exceeded in {cfg.region}: request an increase of the quota '{quota}' (Service Quotas "
            f"console → Amazon SageMaker, or `aws service-quotas list-service-quotas --service-code sagemaker "
            f"--region {cfg.region}` for its code, then `aws service-quotas request-service-quota-increase "
            f"--service-code sagemaker --quota-code CODE --desired-value 1`), or pick another instance type"
            + (f" [{said}]" if said else ""))


def training_quote(cfg: SageMakerSettings) -> Optional[pricing.Quote]:
    """The whole job's price per hour: the on-demand training price × instance count, spot or not.

    Managed spot is NOT priced from a `training_spot` section: SageMaker reports the spot discount in
    BillableTimeInSeconds itself (savings = 1 − BillableTimeInSeconds / TrainingTimeInSeconds,
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html), so billable seconds ×
    the on-demand price is the spot bill, and a spot price per hour on top would take the discount twice.
    Such a cost is the spot bill, hence basis `spot`; the list-price estimate (training seconds × the same
    price) is what the run would have cost on demand."""
    found = pricing.quote("sagemaker", cfg.region, [(cfg.instance_type, cfg.instance_count)])
    if found is None or not cfg.spot:
        return found
    return replace(found, basis=pricing.SPOT)


def phase_seconds(transitions: list[dict], end=None) -> dict[str, float]:
    """Seconds per platbench phase, summed over SecondaryStatusTransitions (EndTime − StartTime)."""
    out: dict[str, float] = {}
    for t in transitions:
        if t["Status"] in TERMINAL_SECONDARY:
            continue
        stop = t.get("EndTime") or end
        if stop is None or t.get("StartTime") is None:
            continue
        name = PHASES.get(t["Status"], t["Status"].lower())
        out[name] = out.get(name, 0.0) + max(0.0, (stop - t["StartTime"]).total_seconds())
    return out
