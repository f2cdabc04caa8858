"""Vertex AI endpoints: the trained model behind the image's `serve`, invoked through the GAPIC
PredictionService by the load tool, always deleted afterwards (platforms/core/endpoint.py).

Vertex AI (google-cloud-aiplatform, GAPIC clients)
- ModelService.UploadModel: Model {displayName, artifactUri (copied to the container as AIP_STORAGE_URI),
  containerSpec {imageUri, command, args, predictRoute, healthRoute, ports}} → long-running operation:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models/upload
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ModelContainerSpec
  ModelContainerSpec.command overrides the image's ENTRYPOINT and .args its CMD (Kubernetes command/args
  semantics; with args and no command, the image's ENTRYPOINT — none here — runs with args, as
  `docker run IMAGE ARGS` does). The platbench image has no ENTRYPOINT and its CMD is `train`: without
  args the serving container would train and never answer the health route. So args = ["serve"], what
  SageMaker passes (`docker run IMAGE serve`,
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html).
  Custom container requirements (predict/health routes, AIP_HTTP_PORT, AIP_STORAGE_URI):
  https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements
- EndpointService.CreateEndpoint, DeployModel (DeployedModel {model, dedicatedResources {machineSpec,
  minReplicaCount, maxReplicaCount}}, trafficSplit), UndeployModel, DeleteEndpoint; ModelService.DeleteModel:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints
  An endpoint is deleted only once no model is deployed on it (undeploy each, then delete:
  https://cloud.google.com/vertex-ai/docs/predictions/undeploy-model): the teardown lists the endpoint's
  deployedModels and undeploys each, so a deploy interrupted before its id came back leaves nothing billing.
- PredictionService.RawPredict: the HTTP body goes to the container's predict route unchanged (here:
  PNG/JPEG bytes or {"instances": [...]}):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints/rawPredict
- Prediction prices: https://cloud.google.com/vertex-ai/pricing ("Prediction and explanation")
- The model's bucket: Vertex AI is regional (https://cloud.google.com/vertex-ai/docs/general/locations) and
  a regional model upload is refused (400) for a multi-region bucket — as reported in issue 12, not
  confirmed against the live service here — so `check` requires a bucket in the endpoint's own region.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from pydantic import Field, model_validator

from platforms.core.endpoint import MODEL_FILES, Endpoint, EndpointCost, endpoint_cost, model_tarball
from platforms.core.transport import Payload, Reply, Target, ThreadedTransport, TransportError
from platforms.core.sdk import require
from platforms.errors import UserError
from platforms.vertex.train import VertexProject

class VertexEndpointSettings(VertexProject):
    """`--set KEY=VALUE` for `platbench endpoint vertex`."""

    machine_type: str = "n1-standard-4"
    accelerator_type: str = "none"
    accelerator_count: int = Field(0, ge=0, le=8)
    replica_count: int = Field(1, ge=1, le=10)
    name: Optional[str] = None

    @model_validator(mode="after")
    def _usable_accelerator(self):
        from platforms.vertex.train import ACCELERATOR_FAMILIES, unusable_accelerator

        if self.accelerator_type != "none" and self.accelerator_count:
            if self.accelerator_type not in ACCELERATOR_FAMILIES:
                raise ValueError(f"unknown accelerator type {self.accelerator_type!r}")
            if unusable_accelerator(self.accelerator_type):
                raise ValueError(unusable_accelerator(self.accelerator_type))
        return self


PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
# the container's args (they replace the image's CMD `train`; ModelContainerSpec.args, see above)
SERVE_ARGS = ["serve"]


class VertexEndpoint(Endpoint):
    platform = "vertex"
    settings_model = VertexEndpointSettings

    def __init__(self, settings: dict[str, str]):
        super().__init__(settings)
        self.endpoint_name: Optional[str] = None   # projects/…/endpoints/ID
        self.model_name: Optional[str] = None
        self.deployed_id: Optional[str] = None
        self._clients = None
        self._store = None

    @classmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float) -> "VertexTransport":
        ep = cls(settings)
        if not name.startswith("projects/"):
            if not ep.cfg.project:
                raise UserError("vertex: give the endpoint as projects/P/locations/R/endpoints/ID or add --set project=…")
            name = f"projects/{ep.cfg.project}/locations/{ep.cfg.region}/endpoints/{name}"
        return VertexTransport(name, ep.cfg, concurrency, timeout_s, ep._client_kwargs())

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
            f"--container-health-route={HEALTH_ROUTE} --container-ports=8080 "
            f"--container-args={','.join(SERVE_ARGS)}",
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
        from platforms.vertex.train import client_kwargs

        return client_kwargs(self.cfg)

    def check(self) -> None:
        c = self.cfg
        for key, what in (("project", "the Google Cloud project"), ("bucket", "a Cloud Storage bucket for the model"),
                          ("image_uri", "the platbench image in Artifact Registry")):
            if not getattr(c, key):
                raise UserError(f"vertex endpoint: add --set {key}=… ({what})")
        from platforms.image import pinning

        # the model serves REPO@sha256:…: a tag resolved from the push record / the registry (issue 18)
        self.cfg = c = pinning.pinned_settings(c, "image_uri", "vertex endpoint")
        aiplatform_v1 = require("google.cloud.aiplatform_v1", "vertex", "the Vertex AI SDK (google-cloud-aiplatform)")
        kwargs = self._client_kwargs()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            google.auth.default()
        except DefaultCredentialsError:
            raise UserError("vertex endpoint: no Google Cloud credentials (run `gcloud auth application-default "
                            "login` or set GOOGLE_APPLICATION_CREDENTIALS)") from None
        self._types = aiplatform_v1
        self._clients = (aiplatform_v1.ModelServiceClient(**kwargs), aiplatform_v1.EndpointServiceClient(**kwargs))
        from platforms.clouds.gcp.gcs import GCSStore

        self._store = GCSStore(c.bucket, project=c.project)
        if not self._store.bucket_exists():
            raise UserError(f"vertex endpoint: bucket {c.bucket!r} does not exist or is not reachable")
        where, _ = self._store.bucket_location()
        if where != c.region:
            raise UserError(f"vertex endpoint: bucket {c.bucket!r} is in {where or '?'}, not in {c.region}: a regional "
                            f"model upload needs its artifacts in a bucket in {c.region} (not a multi-region one)")

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
            from platforms.image import pinning

            env = [t.EnvVar(name=k, value=v) for k, v in pinning.image_env(c.image_uri).items()]  # serve reports it
            spec = t.ModelContainerSpec(image_uri=c.image_uri, args=SERVE_ARGS, predict_route=PREDICT_ROUTE,
                                        health_route=HEALTH_ROUTE, ports=[t.Port(container_port=8080)], env=env)
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
            # recorded before the call: a deploy interrupted anywhere in it (budget, Ctrl-C, error) may have placed
            # a model on nodes that bill; its teardown undeploys whatever the endpoint lists
            self.created.append(("deployed models", self.endpoint_name))
            op = endpoints.deploy_model(endpoint=self.endpoint_name, deployed_model=deployed, traffic_split={"0": 100})
            self.deployed_id = op.result(timeout=3600).deployed_model.id
        except gexc.GoogleAPICallError as exc:
            raise UserError(f"vertex endpoint: {exc.code}: {exc.message}") from None
        self.timings["create_to_in_service_s"] = time.perf_counter() - t0

    def delete(self, kind: str, name: str) -> None:
        models, endpoints = self._clients
        if kind == "deployed models":  # every model the endpoint lists: Vertex deletes no endpoint that has one
            return self._undeploy_all(name)
        elif kind == "endpoint":
            endpoints.delete_endpoint(name=name).result(timeout=1800)
        elif kind == "model":
            models.delete_model(name=name).result(timeout=1800)
        elif kind == "gcs object":
            self._store.delete([name])

    def _undeploy_all(self, endpoint: str):
        _, endpoints = self._clients
        for dm in endpoints.get_endpoint(name=endpoint).deployed_models:
            endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=dm.id).result(timeout=1800)
            yield f"deployed model {dm.id}"

    def already_gone(self, exc: Exception) -> bool:
        from google.api_core import exceptions as gexc

        return isinstance(exc, gexc.NotFound)

    def failure(self, exc: Exception) -> str:
        from google.api_core import exceptions as gexc

        return f"{exc.code}: {exc.message}" if isinstance(exc, gexc.GoogleAPICallError) else super().failure(exc)

    def transport(self, concurrency: int, timeout_s: float):
        return VertexTransport(self.endpoint_name, self.cfg, concurrency, timeout_s, self._client_kwargs())


class VertexTransport(ThreadedTransport):
    """PredictionService.RawPredict through the GAPIC client, `concurrency` calls at a time in threads;
    no client-side retries (the load tool retries, and counts it)."""

    # a public endpoint takes "the payload limit size (currently, 1.5MB)" per request (the serving
    # container's default too, trainer/serve.py); the load tool refuses bigger bodies before sending
    max_payload_bytes = 1_500_000
    payload_limit_source = "Vertex AI public endpoint, https://cloud.google.com/sdk/gcloud/reference/ai/endpoints/predict"

    def __init__(self, endpoint: str, cfg: VertexEndpointSettings, concurrency: int, timeout_s: float, kwargs: dict):
        self.endpoint, self.timeout_s, self.kwargs = endpoint, timeout_s, kwargs
        self.client = None  # made with the first request: a body refused before sending needs no credentials
        super().__init__(concurrency, "vx-predict")

    def _client(self):
        if self.client is None:
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import aiplatform_v1

            try:
                self.client = aiplatform_v1.PredictionServiceClient(**self.kwargs)
            except DefaultCredentialsError:  # no request can go out: the load tool's probe reports it
                raise TransportError("other", "no Google Cloud credentials (run `gcloud auth application-default "
                                     "login` or set GOOGLE_APPLICATION_CREDENTIALS)") from None
        return self.client

    def call(self, payload: Payload) -> Reply:
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
        self._client()  # on the event loop's thread: made once, before any call needs it
        return await super().send(payload)
