"""SageMaker AI real-time endpoints: the trained model behind the image's `serve`, invoked through
boto3's sagemaker-runtime by the load tool, always deleted afterwards (platforms/core/endpoint.py).

SageMaker AI (boto3)
- CreateModel: PrimaryContainer {Image, ModelDataUrl (a model.tar.gz, unpacked into /opt/ml/model before
  the container starts), Environment}, ExecutionRoleArn:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModel.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html
- CreateEndpointConfig with one ProductionVariant {VariantName, ModelName, InstanceType,
  InitialInstanceCount, ContainerStartupHealthCheckTimeoutInSeconds (60–3600)}:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariant.html
- CreateEndpoint, DescribeEndpoint (EndpointStatus Creating → InService | Failed, FailureReason):
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html
- InvokeEndpoint (sagemaker-runtime): Body ≤ 6 MB, ContentType, Accept, CustomAttributes; a container's
  non-2xx answer comes back as a ModelError carrying OriginalStatusCode:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
- DeleteEndpoint, DeleteEndpointConfig, DeleteModel:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeleteEndpoint.html
- Real-time inference prices: https://aws.amazon.com/sagemaker/pricing/ ("Real-Time Inference")
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platforms.clouds.aws.bucket_name import BucketName
from platforms.core.endpoint import Endpoint, EndpointCost, endpoint_cost, model_tarball
from platforms.core.settings import parse_settings
from platforms.core.transport import Payload, Reply, Target, ThreadedTransport
from platforms.errors import UserError

class SageMakerEndpointSettings(BaseModel):
    """`--set KEY=VALUE` for `platbench endpoint sagemaker`."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    bucket: Optional[BucketName] = None
    prefix: str = "platbench"
    role: Optional[str] = None
    image_uri: Optional[str] = None
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1, le=10)
    name: Optional[str] = None
    startup_timeout: int = Field(600, ge=60, le=3600)   # ContainerStartupHealthCheckTimeoutInSeconds
    poll_seconds: float = Field(15.0, gt=0, le=600)
    max_wait: int = Field(3600, ge=1, le=4 * 3600)      # give up waiting for InService after this

    @model_validator(mode="after")
    def _usable_gpu(self):
        from platforms.sagemaker.train import unusable_gpu

        why = unusable_gpu(self.instance_type)  # GPUs the image's torch build has no kernels for
        if why:
            raise ValueError(why)
        return self


class SageMakerEndpoint(Endpoint):
    platform = "sagemaker"
    settings_model = SageMakerEndpointSettings
    # DeleteEndpoint, DeleteEndpointConfig, DeleteModel and the S3 delete are calls the teardown does not wait
    # beyond (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeleteEndpoint.html)
    teardown_assumed_s = 10.0

    def __init__(self, settings: dict[str, str]):
        super().__init__(settings)
        self._session = self._sm = self._store = None
        self._model_key: Optional[str] = None

    @classmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float) -> "SageMakerTransport":
        cfg = parse_settings(SageMakerEndpointSettings, settings, "sagemaker endpoint")
        return SageMakerTransport(name, cfg.region, concurrency, timeout_s)

    def target(self) -> Target:
        return Target(kind="sagemaker", name=self.name)

    def cost(self) -> Optional[EndpointCost]:
        return endpoint_cost("sagemaker", self.cfg.region, [(self.cfg.instance_type, self.cfg.instance_count)])

    def plan(self) -> list[str]:
        c = self.cfg
        uri = f"s3://{c.bucket or 'BUCKET'}/{c.prefix}/endpoints/{self.name}/model.tar.gz"
        return [
            f"aws s3 cp model.tar.gz {uri}   # model.pt + model.json at the archive's root",
            f"aws sagemaker create-model --model-name {self.name} --execution-role-arn {c.role or 'ROLE'} "
            f"--primary-container Image={c.image_uri or 'IMAGE'},ModelDataUrl={uri}",
            f"aws sagemaker create-endpoint-config --endpoint-config-name {self.name} --production-variants "
            f"VariantName=AllTraffic,ModelName={self.name},InstanceType={c.instance_type},"
            f"InitialInstanceCount={c.instance_count},ContainerStartupHealthCheckTimeoutInSeconds={c.startup_timeout}",
            f"aws sagemaker create-endpoint --endpoint-name {self.name} --endpoint-config-name {self.name}",
            f"aws sagemaker wait endpoint-in-service --endpoint-name {self.name}",
            f"aws sagemaker-runtime invoke-endpoint --endpoint-name {self.name} --content-type image/png "
            f"--body fileb://image.png out.json   # × N, by the load tool",
            f"aws sagemaker delete-endpoint --endpoint-name {self.name}; aws sagemaker delete-endpoint-config "
            f"--endpoint-config-name {self.name}; aws sagemaker delete-model --model-name {self.name}; "
            f"aws s3 rm {uri}   # always",
        ]

    def check(self) -> None:
        from platforms.sagemaker.train import SageMakerPlatform, checked_session

        c = self.cfg
        session, sm = checked_session(c.region, c.instance_type, "ProductionVariantInstanceType",
                                      "sagemaker endpoint", "endpoint instance type")
        for key, what in (("bucket", "an S3 bucket for model.tar.gz"), ("image_uri", "the platbench image in ECR"),
                          ("role", "an execution role SageMaker can assume")):
            if not getattr(c, key):
                raise UserError(f"sagemaker endpoint: add --set {key}=… ({what})")
        # the launcher's client (retry mode, attempt counting) and its role resolution
        launcher = SageMakerPlatform({"region": c.region, "bucket": c.bucket})
        launcher.parsed()
        launcher._session = session
        self._sm = launcher.client(session, "sagemaker")
        self._role_arn = launcher.resolve_role(c.role)
        self._session = session
        from platforms.image import pinning

        # the model serves REPO@sha256:…: a tag resolved by ECR and the push record, refused if they differ
        self.cfg = c = pinning.pinned_settings(c, "image_uri", "sagemaker endpoint", lookup=launcher._ecr_digest)
        from platforms.clouds.aws.s3 import S3Store

        self._store = S3Store(c.bucket, session=session)
        if not self._store.bucket_exists():
            raise UserError(f"sagemaker endpoint: bucket {c.bucket!r} does not exist or is not reachable")

    def deploy(self, model_dir: Path, progress=None) -> None:
        from botocore.exceptions import ClientError

        c = self.cfg
        say = progress or (lambda text: None)
        t0 = time.perf_counter()
        data = model_tarball(model_dir)
        self._model_key = f"{c.prefix}/endpoints/{self.name}/model.tar.gz"
        say(f"uploading model.tar.gz ({len(data) / 1e6:.2f} MB) to s3://{c.bucket}/{self._model_key}")
        self._store.put_bytes(self._model_key, data)
        self.created.append(("s3 object", self._model_key))
        self.timings["upload_s"] = time.perf_counter() - t0
        self.timings["model_mb"] = len(data) / 1e6
        from platforms.image import pinning

        env = pinning.image_env(c.image_uri)  # serve reports the digest it runs (x-platbench-image-digest)
        try:
            t0 = time.perf_counter()
            say(f"creating model, endpoint config and endpoint {self.name}")
            self._sm.create_model(ModelName=self.name, ExecutionRoleArn=self._role_arn,
                                  PrimaryContainer={"Image": c.image_uri,
                                                    "ModelDataUrl": f"s3://{c.bucket}/{self._model_key}",
                                                    "Environment": {k: v for k, v in env.items() if v}})
            self.created.append(("model", self.name))
            self._sm.create_endpoint_config(EndpointConfigName=self.name, ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": self.name, "InstanceType": c.instance_type,
                "InitialInstanceCount": c.instance_count, "ContainerStartupHealthCheckTimeoutInSeconds": c.startup_timeout}])
            self.created.append(("endpoint config", self.name))
            # recorded before the call (as azureml does): one interrupted or failed after SageMaker made the endpoint
            # leaves it billing otherwise; if it was never made, its delete finds nothing (already gone)
            self.created.append(("endpoint", self.name))
            self._sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name)
        except ClientError as exc:
            raise UserError(f"sagemaker endpoint: {exc.response['Error'].get('Code')}: "
                            f"{exc.response['Error'].get('Message')}") from None
        deadline = time.monotonic() + c.max_wait
        while True:
            d = self._sm.describe_endpoint(EndpointName=self.name)
            status = d["EndpointStatus"]
            if status == "InService":
                break
            if status in ("Failed", "OutOfService", "Deleting"):
                raise UserError(f"sagemaker endpoint {self.name} is {status}: {d.get('FailureReason', 'no reason given')}")
            if time.monotonic() > deadline:
                raise UserError(f"sagemaker endpoint {self.name} still {status} after {c.max_wait} s")
            say(f"endpoint {status}")
            time.sleep(c.poll_seconds)
        self.timings["create_to_in_service_s"] = time.perf_counter() - t0

    def delete(self, kind: str, name: str) -> None:
        if kind == "endpoint":
            self._sm.delete_endpoint(EndpointName=name)
        elif kind == "endpoint config":
            self._sm.delete_endpoint_config(EndpointConfigName=name)
        elif kind == "model":
            self._sm.delete_model(ModelName=name)
        elif kind == "s3 object":
            self._store.delete([name])

    def already_gone(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and ("Could not find" in exc.response["Error"].get("Message", "")
                                                 or exc.response["Error"].get("Code") in ("NoSuchKey", "404"))

    def failure(self, exc: Exception) -> str:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            return f"{exc.response['Error'].get('Code')}: {exc.response['Error'].get('Message', '')}"
        return super().failure(exc)

    def transport(self, concurrency: int, timeout_s: float):
        return SageMakerTransport(self.name, self.cfg.region, concurrency, timeout_s)


class SageMakerTransport(ThreadedTransport):
    """InvokeEndpoint through boto3's sagemaker-runtime client, `concurrency` calls at a time in threads.
    botocore's own retries are off (total_max_attempts 1: in botocore's Config `max_attempts` counts retries,
    https://docs.aws.amazon.com/boto3/latest/guide/retries.html): the load tool retries, and counts it."""

    # InvokeEndpoint Body: "Maximum length of 6291456" (the load tool refuses bigger bodies before sending)
    max_payload_bytes = 6 * 1024 * 1024
    payload_limit_source = ("SageMaker InvokeEndpoint, "
                            "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html")

    def __init__(self, endpoint_name: str, region: str, concurrency: int, timeout_s: float):
        from botocore.config import Config

        from platforms.sagemaker.train import sdk_session

        self.name = endpoint_name
        config = Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=concurrency,
                        connect_timeout=10, read_timeout=timeout_s)
        self.client = sdk_session(region).client("sagemaker-runtime", region_name=region, config=config)
        super().__init__(concurrency, "sm-invoke")

    def call(self, payload: Payload) -> Reply:
        from botocore.exceptions import ClientError

        from platforms.clouds.aws.sdk import http_status, transport_errors

        try:
            with transport_errors():
                r = self.client.invoke_endpoint(EndpointName=self.name, Body=payload.body,
                                                ContentType=payload.content_type, Accept="application/json")
                headers = {"content-type": r.get("ContentType", "")}
                attrs = _attributes(r.get("CustomAttributes", ""))
                if "model" in attrs:
                    headers["x-platbench-model"] = attrs["model"]
                if "batch" in attrs:
                    headers["x-platbench-batch"] = attrs["batch"]
                if "image_digest" in attrs:
                    headers["x-platbench-image-digest"] = attrs["image_digest"]
                headers["server"] = f"sagemaker endpoint ({r.get('InvokedProductionVariant', '?')})"
                return Reply(200, r["Body"].read(), headers)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = http_status(exc)
            if err.get("Code") == "ModelError" and exc.response.get("OriginalStatusCode"):
                status = int(exc.response["OriginalStatusCode"])  # the container's own status
            return Reply(status, json.dumps({"error": err.get("Message", "")}).encode(), {})


def _attributes(text: str) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out
