"""Amazon Rekognition Custom Labels, image classification, through boto3's `rekognition` client
(platforms/core/service.py drives it).

- Images: PNG and JPEG only; a classification dataset needs at least 2 labels and at least 1 image per label;
  images of 64×64 to 4096×4096 px for training, testing and detection, so CIFAR-10's 32×32 images are
  upscaled to 64×64 before upload and in every DetectCustomLabels request (recorded: the run's
  platbench.upscaled and platbench.image_min_side tags, service.json, the plan):
  https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/limits.html
- Datasets from a SageMaker Ground Truth manifest in S3, one JSON line per image: `source-ref` (the image's
  S3 URI), a label attribute holding 0 and `<attribute>-metadata` {class-name, confidence,
  type "groundtruth/image-classification", job-name, human-annotated, creation-date}:
  https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/md-create-manifest-file-classification.html
- CreateProject, CreateDataset (DatasetType TRAIN | TEST, DatasetSource.GroundTruthManifest.S3Object),
  DescribeDataset (Status CREATE_IN_PROGRESS → CREATE_COMPLETE | CREATE_FAILED, StatusMessage):
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_CreateDataset.html
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DescribeDataset.html
- CreateProjectVersion (trains from the project's datasets; OutputConfig: where evaluation results go),
  DescribeProjectVersions (Status TRAINING_IN_PROGRESS → TRAINING_COMPLETED | TRAINING_FAILED;
  CreationTimestamp, TrainingEndTimestamp, BillableTrainingTimeInSeconds, EvaluationResult.F1Score):
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_CreateProjectVersion.html
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_ProjectVersionDescription.html
- StartProjectVersion (MinInferenceUnits ≥ 1; STARTING → RUNNING | FAILED), DetectCustomLabels (Image.Bytes
  under 4 MB; MinConfidence 0 returns every label with its confidence), StopProjectVersion (STOPPING →
  STOPPED), DeleteProjectVersion (not while running), DeleteDataset, DeleteProject (after its models and
  datasets are gone):
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_StartProjectVersion.html
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectCustomLabels.html
  https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/running-model.html (image bytes < 4.0 MB;
  billed per inference unit per hour while running)
  https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DeleteProject.html
- Training uses our 80% as the TRAIN dataset and our 20% validation as the TEST dataset (the service
  evaluates on it; its F1 is recorded as service_f1); the deployed model is then scored by platbench on the
  whole held-out test set, which the service never sees.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from pydantic import Field

from platforms.clouds.aws.bucket_name import BucketName
from platforms.core import pricing
from platforms.core.api import Job, PlanStep
from platforms.core.names import unique_name
from platforms.core.sdk import require
from platforms.core.service import (Service, ServiceCost, ServiceData, ServiceSettings, Trained, fit_to_minimum,
                                    predictions)
from platforms.core.transport import Payload, Reply, Target, ThreadedTransport
from platforms.errors import UserError
from platforms.rekognition import SPEC

LIMITS = "https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/limits.html"
LABEL_ATTRIBUTE = "platbench-class"
# DetectCustomLabels throttling: the load tool backs off and retries on 429, so these come back as 429
THROTTLED = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"})


class RekognitionSettings(ServiceSettings):
    region: str = Field(default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    bucket: Optional[BucketName] = None   # S3 bucket for the images, manifests and evaluation output
    prefix: str = "platbench"
    project: Optional[str] = None         # project name (default: platbench-<time>-<random>)
    inference_units: int = Field(1, ge=1, le=100)   # StartProjectVersion MinInferenceUnits
    upload_workers: int = Field(16, ge=1, le=128)


def _iso(ts) -> str:
    return ts.astimezone(timezone.utc).isoformat() if isinstance(ts, datetime) else str(ts)


def _code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class RekognitionService(Service):
    spec = SPEC
    settings_model = RekognitionSettings
    min_labels = 2
    min_per_label = 1
    formats = ("png", "jpeg")
    limits_source = LIMITS
    min_side, max_side = 64, 4096

    def __init__(self, settings=None):
        super().__init__(settings)
        self._session = self._client = self._store = None
        self.project_name = self.project_arn = self.version_arn = None
        self.datasets: dict[str, str] = {}

    # ------------------------------------------------------------------ clients
    def session(self):
        if self._session is None:
            boto3 = require("boto3", SPEC.extra, "the AWS SDK (boto3)")
            self._session = boto3.session.Session(region_name=self.parsed().region)
        return self._session

    def client(self):
        if self._client is None:
            from botocore.config import Config

            # AWS_ENDPOINT_URL_REKOGNITION / AWS_ENDPOINT_URL are botocore's own endpoint settings
            self._client = self.session().client("rekognition", config=Config(retries={"mode": "standard"}))
        return self._client

    def store(self):
        if self._store is None:
            from platforms.clouds.aws.s3 import S3Store

            self._store = S3Store(self.parsed().bucket, region=self.parsed().region, session=self.session())
        return self._store

    def run_prefix(self) -> str:
        return f"{self.parsed().prefix.strip('/')}/{self.project_name}"

    # ------------------------------------------------------------------ before anything is created
    def _name(self) -> str:
        cfg = self.parsed()
        self.project_name = self.project_name or cfg.project or unique_name("platbench")
        return self.project_name

    def preflight(self, job: Job) -> list[str]:
        super().preflight(job)
        from platforms.clouds.aws.credentials import find

        needs = []
        if not self.parsed().bucket:
            needs.append("an S3 bucket for the images and manifests (--set bucket=NAME)")
        found, where = find()
        if not found:
            needs.append(f"AWS credentials ({where})")
        return needs

    def check(self, job: Job, data: ServiceData) -> None:
        super().check(job, data)
        cfg = self.parsed()
        if not cfg.bucket:
            raise UserError("rekognition: --set bucket=NAME is needed (the S3 bucket for the images and manifests)")
        if self.session().get_credentials() is None:
            raise UserError("rekognition: no AWS credentials found (environment, profile or instance role)")
        if not self.store().bucket_exists():
            raise UserError(f"rekognition: S3 bucket {cfg.bucket!r} does not exist or is not readable")
        self._name()

    def run_tags(self, job: Job) -> dict[str, str]:
        return {"platbench.region": self.parsed().region, "platbench.image_min_side": self.upscaling()}

    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        name = self._name()
        bucket = cfg.bucket or "BUCKET"
        where = f"s3://{bucket}/{cfg.prefix.strip('/')}/{name}"
        manifest = lambda split: f"'GroundTruthManifest={{S3Object={{Bucket={bucket},Name={cfg.prefix.strip('/')}/{name}/{split}.manifest}}}}'"  # noqa: E731
        return [
            PlanStep(f"upload the train/validation images and one Ground Truth manifest per split; {self.upscaling()}",
                     f"aws s3 cp --recursive IMAGES {where}/images/"),
            PlanStep("create the project", f"aws rekognition create-project --project-name {name}"),
            PlanStep("create the TRAIN dataset (our 80%) and the TEST dataset (our 20% validation)",
                     f"aws rekognition create-dataset --project-arn ARN --dataset-type TRAIN --dataset-source {manifest('train')}"),
            PlanStep("train a model version; wait for TRAINING_COMPLETED",
                     f"aws rekognition create-project-version --project-arn ARN --version-name v1 "
                     f"--output-config S3Bucket={bucket},S3KeyPrefix={cfg.prefix.strip('/')}/{name}/output"),
            PlanStep(f"start the model on {cfg.inference_units} inference unit(s); wait for RUNNING",
                     f"aws rekognition start-project-version --project-version-arn VERSION_ARN "
                     f"--min-inference-units {cfg.inference_units}"),
            PlanStep(f"evaluate the whole test set, then load test: {cfg.requests} requests at {cfg.concurrency} "
                     "concurrent (boto3 detect_custom_labels; the CLI cannot send image bytes)"),
            PlanStep("stop and delete the model, the datasets, the project and the uploaded objects, always",
                     f"aws rekognition stop-project-version --project-version-arn VERSION_ARN && "
                     f"aws rekognition delete-project-version --project-version-arn VERSION_ARN && "
                     f"aws rekognition delete-project --project-arn ARN && aws s3 rm --recursive {where}/"),
        ]

    # ------------------------------------------------------------------ the run
    def upload(self, data: ServiceData, say) -> dict[str, Any]:
        """Images to S3 (in threads), then one manifest per split that names them."""
        store, prefix = self.store(), self.run_prefix()
        splits = {"train": data.train, "test": data.val}
        keys = self.upload_images(store, prefix, "s3-prefix", splits, self.parsed().upload_workers)
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        for split, items in splits.items():
            lines = [json.dumps({
                "source-ref": store.uri(key), LABEL_ATTRIBUTE: 0,
                f"{LABEL_ATTRIBUTE}-metadata": {"class-name": x.label, "confidence": 1.0, "human-annotated": "yes",
                                                "creation-date": now, "job-name": "labeling-job/platbench",
                                                "type": "groundtruth/image-classification"}})
                for key, x in zip(keys[split], items)]
            store.put_bytes(f"{prefix}/{split}.manifest", ("\n".join(lines) + "\n").encode())
        images = sum(len(k) for k in keys.values())
        data.sent_bytes = self.sent_bytes
        upscaled = f"{self.upscaled} of {images} images to at least {self.min_side}×{self.min_side} px"
        say(f"uploaded {images} images ({upscaled}) and 2 manifests to {store.uri(prefix)}/")
        return {"objects": images + 2, "upload_retries": store.snapshot()["retries"],
                "manifest": store.uri(f"{prefix}/train.manifest"), "upscaled": upscaled}

    def _wait(self, what: str, read, done: set[str], failed: set[str], limit_s: float) -> dict:
        """Poll `read()` (a description with Status) until its Status is in done (returned) or failed (raised)."""
        deadline = time.monotonic() + limit_s
        while True:
            desc = read()
            status = desc.get("Status")
            if status in done:
                return desc
            if status in failed:
                raise UserError(f"rekognition: {what} ended {status}: {desc.get('StatusMessage', 'no reason given')}")
            if time.monotonic() > deadline:
                raise UserError(f"rekognition: {what} still {status} after {limit_s:.0f} s; everything is deleted")
            time.sleep(self.parsed().poll_seconds)

    def _version(self) -> dict:
        out = self.client().describe_project_versions(ProjectArn=self.project_arn, VersionNames=["v1"])
        return out["ProjectVersionDescriptions"][0]

    def train(self, data: ServiceData, say) -> Trained:
        c, cfg, prefix = self.client(), self.parsed(), self.run_prefix()
        self.created.append(("project", self.project_name))  # before the call: an interrupted create is found by name
        self.project_arn = c.create_project(ProjectName=self.project_name)["ProjectArn"]
        for dtype, split in (("TRAIN", "train"), ("TEST", "test")):
            arn = c.create_dataset(ProjectArn=self.project_arn, DatasetType=dtype, DatasetSource={
                "GroundTruthManifest": {"S3Object": {"Bucket": cfg.bucket, "Name": f"{prefix}/{split}.manifest"}}}
            )["DatasetArn"]
            self.datasets[dtype] = arn
            self._wait(f"the {dtype} dataset", lambda: c.describe_dataset(DatasetArn=arn)["DatasetDescription"],
                       {"CREATE_COMPLETE"}, {"CREATE_FAILED"}, 3600)
        self.version_arn = c.create_project_version(
            ProjectArn=self.project_arn, VersionName="v1",
            OutputConfig={"S3Bucket": cfg.bucket, "S3KeyPrefix": f"{prefix}/output"})["ProjectVersionArn"]
        say(f"training {self.version_arn}")
        desc = self._wait("training", self._version, {"TRAINING_COMPLETED"}, {"TRAINING_FAILED"},
                          cfg.max_train_hours * 3600)
        start, end = desc["CreationTimestamp"], desc["TrainingEndTimestamp"]
        f1 = (desc.get("EvaluationResult") or {}).get("F1Score")
        return Trained(seconds=(end - start).total_seconds(), started=_iso(start), ended=_iso(end),
                       billed_seconds=desc.get("BillableTrainingTimeInSeconds"),
                       source="DescribeProjectVersions CreationTimestamp → TrainingEndTimestamp",
                       service_metrics={"f1": f1} if f1 is not None else {})

    def deploy(self, say) -> None:
        self.client().start_project_version(ProjectVersionArn=self.version_arn,
                                            MinInferenceUnits=self.parsed().inference_units)
        self._wait("starting the model", self._version, {"RUNNING"}, {"FAILED", "STOPPED"}, 3600)

    def target(self) -> Target:
        return Target(kind=self.name, name=self.version_arn)

    def transport(self, concurrency: int, timeout_s: float) -> "RekognitionTransport":
        return RekognitionTransport(self.session(), self.version_arn, concurrency, timeout_s, self.min_side)

    def delete(self, kind: str, name: str) -> Iterator[str]:
        """Everything under the run's project name, found again through DescribeProjects (so a model or dataset
        whose create call was interrupted before its ARN came back is found too): each model stopped if it
        runs, waited for if it trains ("If the project version is training, wait until it finishes",
        DeleteProjectVersion), deleted; then the datasets and the project (DeleteProject refuses while models
        exist); then the uploaded objects."""
        if kind == "project":
            yield from self._delete_project(name)
        elif kind == "s3-prefix":
            n = self.store().delete_prefix(name + "/")
            yield f"s3-prefix {self.store().uri(name)}/ ({n} objects)"

    def _delete_project(self, name: str) -> Iterator[str]:
        c, limit = self.client(), self.parsed().max_train_hours * 3600
        for project in c.describe_projects(ProjectNames=[name])["ProjectDescriptions"]:
            arn = project["ProjectArn"]
            versions = c.describe_project_versions(ProjectArn=arn)["ProjectVersionDescriptions"]
            for v in versions:
                version, read = v["ProjectVersionArn"], lambda v=v: self._describe(arn, v["ProjectVersionArn"])
                note = ""
                if v["Status"] in ("RUNNING", "STARTING"):
                    c.stop_project_version(ProjectVersionArn=version)
                    self._wait("stopping the model", read, {"STOPPED", "FAILED"}, set(), 3600)
                    note = " (stopped first)"
                elif v["Status"] == "TRAINING_IN_PROGRESS":
                    self._wait("training", read, {"TRAINING_COMPLETED", "TRAINING_FAILED"}, set(), limit)
                    note = " (after its training ended: a training cannot be stopped)"
                c.delete_project_version(ProjectVersionArn=version)
                self._gone(read)
                yield f"model {version}{note}"
            for d in project.get("Datasets", []):
                c.delete_dataset(DatasetArn=d["DatasetArn"])
                yield f"dataset {d['DatasetArn']}"
            c.delete_project(ProjectArn=arn)
            yield f"project {arn}"

    def _describe(self, project_arn: str, version_arn: str) -> dict:
        for v in self.client().describe_project_versions(ProjectArn=project_arn)["ProjectVersionDescriptions"]:
            if v["ProjectVersionArn"] == version_arn:
                return v
        raise LookupError(version_arn)

    def _gone(self, read, limit_s: float = 3600) -> None:
        """Wait until a deleted model version is no longer described (DeleteProject needs it gone)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                read()
            except LookupError:
                return
            time.sleep(self.parsed().poll_seconds)
        raise UserError(f"rekognition: a deleted model version is still listed after {limit_s:.0f} s")

    def cost(self, trained: Optional[Trained]) -> Optional[ServiceCost]:
        cfg = self.parsed()
        train = pricing.lookup(self.name, cfg.region, "custom-labels-training")
        serve = pricing.quote(self.name, cfg.region, [("inference-unit", cfg.inference_units)], section="endpoint")
        if train is None and serve is None:
            return None
        billed = trained.billed_seconds if trained and trained.billed_seconds is not None else (
            trained.seconds if trained else None)
        basis = "; ".join(p for p in (
            f"training {train.usd_per_hour}/h ({train.source}, {train.date}, {train.status})" if train else "",
            f"serving {serve.sources}" if serve else "") if p)
        return ServiceCost(training_usd=train.usd_per_hour * billed / 3600 if train and billed is not None else None,
                           endpoint_usd_per_hour=serve.usd_per_hour if serve else None, usd_per_request=None,
                           basis=basis)


class RekognitionTransport(ThreadedTransport):
    """DetectCustomLabels through boto3, `concurrency` calls at a time in threads. botocore's own retries are
    off: total_max_attempts 1 (in botocore's Config `max_attempts` counts RETRIES, `total_max_attempts` every
    attempt, https://docs.aws.amazon.com/boto3/latest/guide/retries.html); the load tool retries and counts.
    Every label comes back (MinConfidence 0), best first. An image under min_side is upscaled in the call, as
    a client of the service must (its latency includes that)."""

    max_payload_bytes = 4 * 1024 * 1024
    payload_limit_source = ("DetectCustomLabels image bytes, "
                            "https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/running-model.html")

    def __init__(self, session, version_arn: str, concurrency: int, timeout_s: float, min_side: int = 0):
        from botocore.config import Config

        super().__init__(concurrency, "rekognition-detect")
        self.arn, self.min_side = version_arn, min_side
        self.client = session.client("rekognition", config=Config(
            retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=concurrency,
            connect_timeout=10, read_timeout=timeout_s))

    def call(self, payload: Payload) -> Reply:
        from botocore.exceptions import ClientError

        from platforms.clouds.aws.sdk import http_status, transport_errors

        try:
            with transport_errors():
                body = fit_to_minimum(payload.body, self.min_side) if self.min_side else payload.body
                r = self.client.detect_custom_labels(ProjectVersionArn=self.arn, Image={"Bytes": body},
                                                     MinConfidence=0)
        except ClientError as exc:
            status = 429 if _code(exc) in THROTTLED else http_status(exc)
            return Reply(status, json.dumps({"error": _code(exc)}).encode(), {})
        return predictions([(label["Name"], label["Confidence"] / 100) for label in r.get("CustomLabels", [])],
                           "rekognition DetectCustomLabels")
