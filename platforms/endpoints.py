"""Real-time inference endpoints on the clouds: put the trained model behind the image's `serve` on a
SageMaker real-time endpoint or a Vertex AI endpoint, invoke it through the platform's SDK with the load
tool's engine (platforms/load.py), and delete endpoint, endpoint config / deployment and model afterwards
— always: on success, on error and on Ctrl-C (SIGINT is held off while the deletes run). The cost of the
endpoint per hour, day, month (730 h) and year (8,760 h) comes from the price table (platforms/prices.yaml).

Sessions and clients are the cloud launchers' (platforms/sagemaker.py, platforms/vertex.py): the same boto3
session and retry config, the same Vertex client options (and REST + anonymous credentials for a server on
127.0.0.1). The model artifact is the trainer's model directory (model.pt + model.json).

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

Vertex AI (google-cloud-aiplatform, GAPIC clients)
- ModelService.UploadModel: Model {displayName, artifactUri (copied to the container as AIP_STORAGE_URI),
  containerSpec {imageUri, predictRoute, healthRoute, ports}} → long-running operation:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models/upload
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ModelContainerSpec
- EndpointService.CreateEndpoint, DeployModel (DeployedModel {model, dedicatedResources {machineSpec,
  minReplicaCount, maxReplicaCount}}, trafficSplit), UndeployModel, DeleteEndpoint; ModelService.DeleteModel:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints
- PredictionService.RawPredict: the HTTP body goes to the container's predict route unchanged (here:
  PNG/JPEG bytes or {"instances": [...]}):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints/rawPredict
- Prediction prices: https://cloud.google.com/vertex-ai/pricing ("Prediction and explanation")
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import re
import secrets
import signal
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platforms import pricing
from platforms.errors import UserError
from platforms.load import Payload, Reply, Target
from platforms.vertex import VertexProject

HOURS = {"hour": 1, "day": 24, "month": 730, "year": 8760}  # 730 h: the month of the clouds' calculators
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MODEL_FILES = ("model.pt", "model.json")


class TransportError(Exception):
    """An SDK call that got no HTTP answer; `platbench_kind` is what the load tool counts it as."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.platbench_kind = kind


# ------------------------------------------------------------------------------------------ cost
@dataclass(frozen=True)
class EndpointCost:
    usd_per_hour: float
    basis: str     # the price table entries used, with source and date
    note: str = ""

    def per(self) -> dict[str, float]:
        return {unit: round(self.usd_per_hour * hours, 4) for unit, hours in HOURS.items()}

    def to_dict(self) -> dict:
        return {"usd_per": self.per(), "basis": self.basis, "note": self.note}


def endpoint_cost(platform: str, region: str, items: list[tuple[str, int]]) -> Optional[EndpointCost]:
    """Price of keeping the endpoint up. Real-time inference prices are looked up under
    `<platform>_endpoint` in prices.yaml; where that table has no entry, the platform's training list
    price for the same machine stands in, and `note` says so."""
    quote = pricing.quote(f"{platform}_endpoint", region, items)
    if quote is not None:
        return EndpointCost(quote.usd_per_hour, quote.sources)
    quote = pricing.quote(platform, region, items)
    if quote is None:
        return None
    return EndpointCost(quote.usd_per_hour, quote.sources,
                        note=f"no real-time inference price for this machine in prices.yaml ({platform}_endpoint); "
                             f"the training list price stands in")


def model_tarball(model_dir: Path) -> bytes:
    """model.tar.gz with model.pt and model.json at its root: what SageMaker unpacks into /opt/ml/model."""
    from trainer.inference import read_card
    from trainer.errors import ConfigError

    try:
        read_card(model_dir)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in MODEL_FILES:
            tar.add(Path(model_dir) / name, arcname=name)
    return buf.getvalue()


def _settings(cls, settings: dict, platform: str):
    try:
        return cls(**settings)
    except ValidationError as exc:
        from platforms.cloud_local import one_line_validation_error

        raise UserError(f"{platform} endpoint: " + one_line_validation_error(exc)) from None


def _name(given: Optional[str]) -> str:
    name = given or f"platbench-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not NAME_RE.match(name):
        raise UserError(f"endpoint name {name!r} is not valid (1–63 of a-z, A-Z, 0-9 and -)")
    return name


@contextmanager
def _sigint_held():
    """Ctrl-C during teardown would leave a billed endpoint behind: hold it until the deletes are done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------ SageMaker
class SageMakerEndpointSettings(BaseModel):
    """`--set KEY=VALUE` for `platbench endpoint sagemaker`."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    bucket: Optional[str] = None
    prefix: str = "platbench"
    role: Optional[str] = None
    image_uri: Optional[str] = None
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1, le=10)
    name: Optional[str] = None
    startup_timeout: int = Field(600, ge=60, le=3600)   # ContainerStartupHealthCheckTimeoutInSeconds
    poll_seconds: float = Field(15.0, gt=0, le=600)
    max_wait: int = Field(3600, ge=1, le=4 * 3600)      # give up waiting for InService after this


class SageMakerEndpoint:
    platform = "sagemaker"

    def __init__(self, settings: dict[str, str]):
        self.cfg: SageMakerEndpointSettings = _settings(SageMakerEndpointSettings, settings, "sagemaker")
        self.name = _name(self.cfg.name)
        self.created: list[tuple[str, str]] = []   # (kind, name) in creation order
        self.timings: dict[str, float] = {}
        self._session = self._sm = self._store = None
        self._model_key: Optional[str] = None

    @property
    def region(self) -> str:
        return self.cfg.region

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
        from platforms.sagemaker import SageMakerPlatform, checked_session

        c = self.cfg
        session, sm = checked_session(c.region, c.instance_type, "ProductionVariantInstanceType",
                                      "sagemaker endpoint", "endpoint instance type")
        for key, what in (("bucket", "an S3 bucket for model.tar.gz"), ("image_uri", "the platbench image in ECR"),
                          ("role", "an execution role SageMaker can assume")):
            if not getattr(c, key):
                raise UserError(f"sagemaker endpoint: add --set {key}=… ({what})")
        # the launcher's client (retry mode, attempt counting) and its role resolution
        launcher = SageMakerPlatform({"region": c.region, "bucket": c.bucket})
        launcher._parse()
        launcher._session = session
        self._sm = launcher._client(session, "sagemaker")
        self._role_arn = launcher._resolve_role(c.role)
        self._session = session
        from platforms.storage.s3 import S3Store

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
        env = {"PLATBENCH_IMAGE_DIGEST": os.environ.get("PLATBENCH_IMAGE_DIGEST", "")}
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
            self._sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name)
            self.created.append(("endpoint", self.name))
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

    def teardown(self) -> list[str]:
        """Delete what deploy created, newest first; each delete tolerates 'already gone'. Returns what
        was deleted; raises only after trying every delete."""
        from botocore.exceptions import ClientError

        done, failures = [], []
        t0 = time.perf_counter()
        with _sigint_held():
            for kind, name in reversed(self.created):
                try:
                    if kind == "endpoint":
                        self._sm.delete_endpoint(EndpointName=name)
                    elif kind == "endpoint config":
                        self._sm.delete_endpoint_config(EndpointConfigName=name)
                    elif kind == "model":
                        self._sm.delete_model(ModelName=name)
                    elif kind == "s3 object":
                        self._store.delete([name])
                    done.append(f"{kind} {name}")
                except ClientError as exc:
                    message = exc.response["Error"].get("Message", "")
                    if "Could not find" in message or exc.response["Error"].get("Code") in ("NoSuchKey", "404"):
                        done.append(f"{kind} {name} (already gone)")
                    else:
                        failures.append(f"{kind} {name}: {exc.response['Error'].get('Code')}: {message}")
        self.created = []
        self.timings["teardown_s"] = time.perf_counter() - t0
        if failures:
            raise UserError("sagemaker endpoint: could not delete " + "; ".join(failures)
                            + " — delete them by hand to stop the charges")
        return done

    def transport(self, concurrency: int, timeout_s: float):
        return SageMakerTransport(self.name, self.cfg.region, concurrency, timeout_s)


class SageMakerTransport:
    """InvokeEndpoint through boto3's sagemaker-runtime client, `concurrency` calls at a time in threads.
    botocore's own retries are off (max_attempts 1): the load tool retries, and counts it."""

    def __init__(self, endpoint_name: str, region: str, concurrency: int, timeout_s: float):
        from botocore.config import Config

        from platforms.sagemaker import _sdk_session

        self.name = endpoint_name
        config = Config(retries={"mode": "standard", "max_attempts": 1}, max_pool_connections=concurrency,
                        connect_timeout=10, read_timeout=timeout_s)
        self.client = _sdk_session(region).client("sagemaker-runtime", region_name=region, config=config)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sm-invoke")

    def _invoke(self, payload: Payload) -> Reply:
        from botocore.exceptions import (ClientError, ConnectionClosedError, EndpointConnectionError,
                                         ReadTimeoutError, ConnectTimeoutError)

        try:
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
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if err.get("Code") == "ModelError" and exc.response.get("OriginalStatusCode"):
                status = int(exc.response["OriginalStatusCode"])  # the container's own status
            return Reply(int(status), json.dumps({"error": err.get("Message", "")}).encode(), {})
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise TransportError("timeout", str(exc)) from None
        except EndpointConnectionError as exc:
            raise TransportError("refused", str(exc)) from None
        except ConnectionClosedError as exc:
            raise TransportError("reset", str(exc)) from None

    async def send(self, payload: Payload) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._invoke, payload)

    async def ready(self, timeout_s: float) -> bool:
        return True  # InService was waited for by deploy (or the endpoint is the user's)

    async def close(self) -> None:
        self.pool.shutdown(wait=False)


def _attributes(text: str) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


# ------------------------------------------------------------------------------------------ Vertex AI
class VertexEndpointSettings(VertexProject):
    """`--set KEY=VALUE` for `platbench endpoint vertex`."""

    machine_type: str = "n1-standard-4"
    accelerator_type: str = "none"
    accelerator_count: int = Field(0, ge=0, le=8)
    replica_count: int = Field(1, ge=1, le=10)
    name: Optional[str] = None


PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"


class VertexEndpoint:
    platform = "vertex"

    def __init__(self, settings: dict[str, str]):
        self.cfg: VertexEndpointSettings = _settings(VertexEndpointSettings, settings, "vertex")
        self.name = _name(self.cfg.name)
        self.created: list[tuple[str, str]] = []
        self.timings: dict[str, float] = {}
        self.endpoint_name: Optional[str] = None   # projects/…/endpoints/ID
        self.model_name: Optional[str] = None
        self.deployed_id: Optional[str] = None
        self._clients = None
        self._store = None

    @property
    def region(self) -> str:
        return self.cfg.region

    def target(self) -> Target:
        return Target(kind="vertex", name=self.endpoint_name or self.name)

    def cost(self) -> Optional[EndpointCost]:
        c = self.cfg
        items = [(c.machine_type, c.replica_count)]
        if c.accelerator_type != "none" and c.accelerator_count:
            items.append((c.accelerator_type, c.accelerator_count * c.replica_count))
        return endpoint_cost("vertex", c.region, items)

    def plan(self) -> list[str]:
        c = self.cfg
        uri = f"gs://{c.bucket or 'BUCKET'}/{c.prefix}/endpoints/{self.name}/"
        return [
            f"gcloud storage cp model.pt model.json {uri}",
            f"gcloud ai models upload --region={c.region} --display-name={self.name} --artifact-uri={uri} "
            f"--container-image-uri={c.image_uri or 'IMAGE'} --container-predict-route={PREDICT_ROUTE} "
            f"--container-health-route={HEALTH_ROUTE} --container-ports=8080",
            f"gcloud ai endpoints create --region={c.region} --display-name={self.name}",
            f"gcloud ai endpoints deploy-model ENDPOINT_ID --region={c.region} --model=MODEL_ID "
            f"--display-name={self.name} --machine-type={c.machine_type} --min-replica-count={c.replica_count} "
            f"--max-replica-count={c.replica_count} --traffic-split=0=100",
            "gcloud ai endpoints raw-predict ENDPOINT_ID --http-headers=Content-Type=image/png "
            "--request=@image.png   # × N, by the load tool",
            f"gcloud ai endpoints undeploy-model ENDPOINT_ID --deployed-model-id=ID; gcloud ai endpoints delete "
            f"ENDPOINT_ID; gcloud ai models delete MODEL_ID; gcloud storage rm -r {uri}   # always",
        ]

    def _client_kwargs(self) -> dict:
        from google.api_core.client_options import ClientOptions

        from platforms.vertex import VertexSettings

        c = self.cfg
        endpoint = c.api_endpoint or f"{c.region}-aiplatform.googleapis.com"
        kwargs: dict[str, Any] = {"client_options": ClientOptions(api_endpoint=endpoint)}
        # the launcher's rule: a server on 127.0.0.1 is spoken to anonymously over REST
        if VertexSettings(project=c.project, region=c.region, api_endpoint=c.api_endpoint).loopback_endpoint:
            from google.auth.credentials import AnonymousCredentials

            kwargs.update(credentials=AnonymousCredentials(), transport="rest")
        return kwargs

    def check(self) -> None:
        c = self.cfg
        for key, what in (("project", "the Google Cloud project"), ("bucket", "a Cloud Storage bucket for the model"),
                          ("image_uri", "the platbench image in Artifact Registry")):
            if not getattr(c, key):
                raise UserError(f"vertex endpoint: add --set {key}=… ({what})")
        try:
            from google.cloud import aiplatform_v1
        except ImportError:
            raise UserError("the Vertex AI SDK is not installed: pip install 'platbench[vertex]'") from None
        kwargs = self._client_kwargs()
        if "credentials" not in kwargs:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                google.auth.default()
            except DefaultCredentialsError:
                raise UserError("vertex endpoint: no Google Cloud credentials (run `gcloud auth application-default "
                                "login` or set GOOGLE_APPLICATION_CREDENTIALS)") from None
        self._types = aiplatform_v1
        self._clients = (aiplatform_v1.ModelServiceClient(**kwargs), aiplatform_v1.EndpointServiceClient(**kwargs))
        from platforms.storage.gcs import GCSStore

        self._store = GCSStore(c.bucket, project=c.project)
        if not self._store.bucket_exists():
            raise UserError(f"vertex endpoint: bucket {c.bucket!r} does not exist or is not reachable")

    def deploy(self, model_dir: Path, progress=None) -> None:
        from google.api_core import exceptions as gexc

        c = self.cfg
        say = progress or (lambda text: None)
        models, endpoints = self._clients
        t = self._types
        parent = f"projects/{c.project}/locations/{c.region}"
        prefix = f"{c.prefix}/endpoints/{self.name}"
        t0 = time.perf_counter()
        model_tarball(model_dir)  # validates the model directory
        size = 0
        for name in MODEL_FILES:
            self._store.put_file(f"{prefix}/{name}", Path(model_dir) / name)
            self.created.append(("gcs object", f"{prefix}/{name}"))
            size += (Path(model_dir) / name).stat().st_size
        self.timings["upload_s"] = time.perf_counter() - t0
        self.timings["model_mb"] = size / 1e6
        try:
            t0 = time.perf_counter()
            say(f"uploading model {self.name}")
            spec = t.ModelContainerSpec(image_uri=c.image_uri, predict_route=PREDICT_ROUTE, health_route=HEALTH_ROUTE,
                                        ports=[t.Port(container_port=8080)])
            model = t.Model(display_name=self.name, artifact_uri=f"gs://{c.bucket}/{prefix}/", container_spec=spec)
            self.model_name = models.upload_model(parent=parent, model=model).result(timeout=1800).model
            self.created.append(("model", self.model_name))
            say(f"creating endpoint {self.name}")
            self.endpoint_name = endpoints.create_endpoint(
                parent=parent, endpoint=t.Endpoint(display_name=self.name)).result(timeout=1800).name
            self.created.append(("endpoint", self.endpoint_name))
            say(f"deploying {self.name} on {c.replica_count}× {c.machine_type}")
            machine = t.MachineSpec(machine_type=c.machine_type)
            if c.accelerator_type != "none" and c.accelerator_count:
                machine = t.MachineSpec(machine_type=c.machine_type, accelerator_type=c.accelerator_type,
                                        accelerator_count=c.accelerator_count)
            deployed = t.DeployedModel(model=self.model_name, display_name=self.name, dedicated_resources=t.DedicatedResources(
                machine_spec=machine, min_replica_count=c.replica_count, max_replica_count=c.replica_count))
            op = endpoints.deploy_model(endpoint=self.endpoint_name, deployed_model=deployed, traffic_split={"0": 100})
            self.deployed_id = op.result(timeout=3600).deployed_model.id
            self.created.append(("deployed model", self.deployed_id))
        except gexc.GoogleAPICallError as exc:
            raise UserError(f"vertex endpoint: {exc.code}: {exc.message}") from None
        self.timings["create_to_in_service_s"] = time.perf_counter() - t0

    def teardown(self) -> list[str]:
        from google.api_core import exceptions as gexc

        models, endpoints = self._clients if self._clients else (None, None)
        done, failures = [], []
        t0 = time.perf_counter()
        with _sigint_held():
            for kind, name in reversed(self.created):
                try:
                    if kind == "deployed model":
                        endpoints.undeploy_model(endpoint=self.endpoint_name, deployed_model_id=name).result(timeout=1800)
                    elif kind == "endpoint":
                        endpoints.delete_endpoint(name=name).result(timeout=1800)
                    elif kind == "model":
                        models.delete_model(name=name).result(timeout=1800)
                    elif kind == "gcs object":
                        self._store.delete([name])
                    done.append(f"{kind} {name}")
                except gexc.NotFound:
                    done.append(f"{kind} {name} (already gone)")
                except gexc.GoogleAPICallError as exc:
                    failures.append(f"{kind} {name}: {exc.code}: {exc.message}")
        self.created = []
        self.timings["teardown_s"] = time.perf_counter() - t0
        if failures:
            raise UserError("vertex endpoint: could not delete " + "; ".join(failures)
                            + " — delete them by hand to stop the charges")
        return done

    def transport(self, concurrency: int, timeout_s: float):
        return VertexTransport(self.endpoint_name, self.cfg, concurrency, timeout_s, self._client_kwargs())


class VertexTransport:
    """PredictionService.RawPredict through the GAPIC client, `concurrency` calls at a time in threads;
    no client-side retries (the load tool retries, and counts it)."""

    def __init__(self, endpoint: str, cfg: VertexEndpointSettings, concurrency: int, timeout_s: float, kwargs: dict):
        from google.cloud import aiplatform_v1

        self.endpoint, self.timeout_s = endpoint, timeout_s
        self.client = aiplatform_v1.PredictionServiceClient(**kwargs)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vx-predict")

    def _invoke(self, payload: Payload) -> Reply:
        from google.api import httpbody_pb2
        from google.api_core import exceptions as gexc

        try:
            body = httpbody_pb2.HttpBody(content_type=payload.content_type, data=payload.body)
            r = self.client.raw_predict(endpoint=self.endpoint, http_body=body, timeout=self.timeout_s, retry=None)
            return Reply(200, r.data, {"content-type": r.content_type, "server": "vertex endpoint"})
        except gexc.GoogleAPICallError as exc:
            if exc.code is None:
                raise TransportError("other", str(exc)) from None
            return Reply(int(exc.code), json.dumps({"error": exc.message}).encode(), {})
        except gexc.RetryError as exc:
            raise TransportError("timeout", str(exc)) from None
        except (ConnectionError, OSError) as exc:
            raise TransportError("reset" if "reset" in str(exc).lower() else "connect", str(exc)) from None

    async def send(self, payload: Payload) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._invoke, payload)

    async def ready(self, timeout_s: float) -> bool:
        return True

    async def close(self) -> None:
        self.pool.shutdown(wait=False)


# ------------------------------------------------------------------------------------------ entry points
PLATFORMS = {"sagemaker": SageMakerEndpoint, "vertex": VertexEndpoint}


def endpoint_for(platform: str, settings: dict[str, str]):
    if platform not in PLATFORMS:
        raise UserError(f"no endpoints for {platform!r}; choose one of: {', '.join(PLATFORMS)}")
    return PLATFORMS[platform](settings)


def transport(target: Target, concurrency: int, timeout_s: float, settings: dict[str, str]):
    """For `platbench load sagemaker:NAME` / `vertex:ENDPOINT` on an endpoint the user already runs."""
    if target.kind == "sagemaker":
        cfg = _settings(SageMakerEndpointSettings, settings, "sagemaker")
        return SageMakerTransport(target.name, cfg.region, concurrency, timeout_s)
    if target.kind == "vertex":
        ep = VertexEndpoint(settings)
        name = target.name
        if not name.startswith("projects/"):
            if not ep.cfg.project:
                raise UserError("vertex: give the endpoint as projects/P/locations/R/endpoints/ID or add --set project=…")
            name = f"projects/{ep.cfg.project}/locations/{ep.cfg.region}/endpoints/{name}"
        return VertexTransport(name, ep.cfg, concurrency, timeout_s, ep._client_kwargs())
    raise UserError(f"no SDK transport for {target.kind!r}")


@dataclass
class EndpointRun:
    platform: str
    name: str
    cost: Optional[dict]
    timings: dict[str, float]
    deleted: list[str]
    load: Optional[dict] = None
    batch: Optional[dict] = None
    settings: dict = field(default_factory=dict)


def run_endpoint_benchmark(platform: str, model_dir: Path, settings: dict[str, str], load_settings, payloads, fmt: str,
                           batch_dir: Optional[Path] = None, say=None, track: bool = True) -> EndpointRun:
    """Deploy → wait until it serves → load test through the SDK → (batch inference over batch_dir) →
    delete, always. Logged to MLflow as one run (kind `endpoint`)."""
    from platforms import load as load_mod

    ep = endpoint_for(platform, settings)
    ep.check()
    say = say or (lambda text: None)
    cost = ep.cost()
    result = EndpointRun(platform, ep.name, cost.to_dict() if cost else None, ep.timings, [],
                         settings=ep.cfg.model_dump())
    try:
        ep.deploy(model_dir, say)
        say(f"endpoint {ep.name} serves; load test: {load_settings.requests} requests")

        async def go():
            transport = ep.transport(load_settings.concurrency, load_settings.timeout_s)
            try:
                return await load_mod.run_load_async(transport, payloads, load_settings)
            finally:
                await transport.close()

        load_mod.check_settings(load_settings)
        data = asyncio.run(go())
        result.load = load_mod.build_report(ep.target(), data, load_settings, payloads, fmt)
        if batch_dir is not None:
            from platforms.batch_inference import run_endpoint as batch_endpoint

            report, _ = batch_endpoint(batch_dir, None, concurrency=load_settings.concurrency,
                                       transport_factory=lambda c, t: ep.transport(c, t), target=ep.target())
            result.batch = report.to_dict()
    finally:
        say(f"deleting endpoint {ep.name} and everything it needed")
        result.deleted = ep.teardown()
    if track:
        result_id = log_endpoint_run(result)
        result.settings["mlflow_run_id"] = result_id
    return result


def log_endpoint_run(run_: EndpointRun) -> str:
    from platforms import tracking
    from platforms.load import KIND_TAG, MLFLOW_METRICS

    params = {k: v for k, v in run_.settings.items() if k not in ("bucket", "prefix") and v is not None}
    tags = {tracking.Tag.PLATFORM: run_.platform, KIND_TAG: "endpoint", "platbench.endpoint": run_.name}
    with tracking.tracked_run(f"endpoint-{run_.platform}", params, tags) as tr:
        metrics = {f"endpoint_{k}": v for k, v in run_.timings.items()}
        if run_.cost:
            metrics.update({f"endpoint_usd_per_{unit}": v for unit, v in run_.cost["usd_per"].items()})
            tr.tags({tracking.Tag.PRICE_SOURCE: run_.cost["basis"]})
        if run_.load:
            flat = {**run_.load["summary"], **run_.load["summary"]["latency_ms"]}
            metrics.update({name: flat.get(key) for name, key in MLFLOW_METRICS.items()})
        if run_.batch:
            metrics.update({"batch_seconds_per_mb": run_.batch["seconds_per_mb"],
                            "batch_images_per_s": run_.batch["images_per_s"]})
        tr.metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "endpoint.json"
            path.write_text(json.dumps(run_.__dict__, default=str))
            tr.client.log_artifact(tr.run_id, str(path))
        tr.tags({tracking.Tag.STATUS: "finished"})
        tr.end("FINISHED")
        return tr.run_id


def cli_main(platform: str, model_dir: Optional[Path], set_: list[str], requests: int, concurrency: int, warmup: int,
             data: list[Path], fmt: str, batch: int, batch_dir: Optional[Path], dry_run: bool, as_json: bool,
             track: bool, console) -> None:
    from platforms import load as load_mod

    settings = load_mod._pairs(set_, "--set")
    ep = endpoint_for(platform, settings)
    cost = ep.cost()
    if dry_run:
        lines = [f"Plan for a {platform} endpoint {ep.name} — nothing is created:"]
        lines += [f"{i:2d}. {step}" for i, step in enumerate(ep.plan(), 1)]
        lines.append(_cost_line(cost, platform))
        print("\n".join(lines))
        return
    if model_dir is None:
        raise UserError("--model-dir DIR is needed (the trainer's model directory: model.pt + model.json)")
    s = load_mod.LoadSettings(requests=requests, concurrency=concurrency, warmup=warmup)
    load_mod.check_settings(s)
    payloads = load_mod.make_payloads(load_mod.load_images(data), fmt, batch)
    result = run_endpoint_benchmark(platform, model_dir, settings, s, payloads, fmt, batch_dir,
                                    say=lambda text: console.print(f"[dim]{text}[/dim]"), track=track)
    if as_json:
        print(json.dumps(result.__dict__, indent=1, default=str))
        return
    from rich.console import Console

    out = Console(width=max(console.width, 100))
    t = result.timings
    print(f"endpoint {result.name}: model upload {t.get('upload_s', 0):.1f} s, create → serving "
          f"{t.get('create_to_in_service_s', 0):.1f} s, teardown {t.get('teardown_s', 0):.1f} s")
    print(_cost_line(cost, platform))
    if result.load:
        out.print(load_mod.table(result.load))
    if result.batch:
        b = result.batch
        print(f"batch inference: {b['images']} images, {b['mb']:.3f} MB, {b['seconds_per_mb']:.3f} s/MB, "
              f"{b['images_per_s']:.1f} images/s")
    print("deleted: " + "; ".join(result.deleted))
    if result.settings.get("mlflow_run_id"):
        print(f"MLflow run {result.settings['mlflow_run_id']}")


def _cost_line(cost: Optional[EndpointCost], platform: str) -> str:
    if cost is None:
        return (f"cost: no price for this machine in platforms/prices.yaml ({platform}_endpoint or {platform}); "
                f"known: {pricing.known(platform)}")
    per = cost.per()
    line = (f"cost while up: ${per['hour']:.4f}/hour, ${per['day']:.2f}/day, ${per['month']:.2f}/month (730 h), "
            f"${per['year']:.2f}/year — {cost.basis}")
    return line + (f" [{cost.note}]" if cost.note else "")
