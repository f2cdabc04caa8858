"""Azure ML managed online endpoints: the trained model behind the platbench image's `serve`, as a custom
container, driven by the load tool over the scoring URI with key auth, always deleted afterwards
(platforms/core/endpoint.py).

Platform contracts relied on (official pages):
- Custom container deployments: an Environment with the image and an inference_config naming the port and
  the liveness, readiness and scoring routes; the registered model is mounted read-only at
  /var/azureml-app/azureml-models/MODEL/VERSION, which AZUREML_MODEL_DIR names (a folder model keeps its
  folder name below it): https://learn.microsoft.com/azure/machine-learning/how-to-deploy-custom-container
  and https://learn.microsoft.com/azure/machine-learning/reference-yaml-environment (inference_config)
- The image's CMD is `train` and an online deployment has no command or args field
  (https://learn.microsoft.com/azure/machine-learning/reference-yaml-deployment-managed-online), so the
  environment is built from a one-line Docker context, `FROM IMAGE` + `CMD ["serve"]` (the same image,
  serving): build.path is the context's Blob URL (EnvironmentVersion.build.contextUri, "Supports blob
  URIs on environment creation", https://learn.microsoft.com/rest/api/azureml/environment-versions/create-or-update);
  the workspace's identity must be able to read that container. Azure ML builds the image on the first
  deployment (minutes, in the create → serving time).
- Endpoint with key auth (auth_mode: key), keys from listKeys, requests to the scoring URI with
  `Authorization: Bearer KEY`; `azureml-model-deployment: NAME` sends them to one deployment whatever the
  traffic split: https://learn.microsoft.com/azure/machine-learning/how-to-authenticate-online-endpoint
  and https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints
- Deleting: deployment, endpoint (begin_delete), the model version (REST Model Versions - Delete; the SDK
  v2 only archives, so the generated client's delete is called), the model blobs and build context
  (https://learn.microsoft.com/rest/api/azureml/model-versions/delete). The environment version stays: it
  is named after the image digest, reused by every later endpoint and costs nothing; so is the datastore
  registration (shared with training). A registered environment version cannot change ("… is already
  registered and cannot be changed", Azure/azure-cli-extensions#5440), so its build context lives at one
  path per digest (PREFIX/environments/platbench-serve/VERSION/) that teardown keeps: every endpoint from
  the same image registers the same definition again.
- Request settings: without them a deployment takes max_concurrent_requests_per_instance 1 and a 5 s
  request timeout (azure-ai-ml deployment_settings.py OnlineRequestSettings) and answers 429 beyond
  (https://learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints, HTTP status
  codes), so the load test would measure retries. They follow the load plan: its concurrency spread over
  the instances, its timeout up to the 180,000 ms the service allows
  (https://learn.microsoft.com/azure/machine-learning/reference-yaml-deployment-managed-online).
- Prices: a managed online deployment is billed as its VMs (https://azure.microsoft.com/pricing/details/machine-learning/),
  the `endpoint` section of prices.yaml.
"""
from __future__ import annotations

import hashlib
import io
import math
import time
from pathlib import Path
from typing import Optional

from pydantic import Field

from platforms.azureml.train import AzureMLWorkspace, ControlPlane, open_container, require_settings
from platforms.core.endpoint import MODEL_FILES, Endpoint, EndpointCost, endpoint_cost, model_tarball
from platforms.core.names import NameRule
from platforms.core.transport import Target

PORT = 8080
LIVENESS = READINESS = "/ping"        # serve answers 200 once the model is loaded
SCORING = "/invocations"
DEPLOYMENT = "platbench"
MAX_REQUEST_TIMEOUT_MS = 180_000  # request_settings.request_timeout_ms, reference-yaml-deployment-managed-online
# "The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and
# alphanumeric characters", 3-32 long: https://learn.microsoft.com/azure/machine-learning/how-to-manage-quotas
NAME = NameRule(32, letter_first=True, min_len=3)


class AzureMLEndpointSettings(AzureMLWorkspace):
    """`--set KEY=VALUE` for `platbench endpoint azureml`."""

    instance_type: str = "Standard_DS3_v2"
    instance_count: int = Field(1, ge=1, le=20)
    name: Optional[str] = None


ENVIRONMENT = "platbench-serve"


def environment_version(image: str) -> str:
    """The image's digest (or a hash of its name), 16 hex digits."""
    return image.split("@sha256:", 1)[1][:16] if "@sha256:" in image else hashlib.sha256(image.encode()).hexdigest()[:16]


def context_prefix(prefix: str, image: str) -> str:
    """Where the image's serving build context lives: one path per digest, never deleted (see above)."""
    return f"{prefix.strip('/')}/environments/{ENVIRONMENT}/{environment_version(image)}/"


def environment_doc(image: str, context_url: str) -> dict:
    """The serving environment in `az ml environment create --file`'s shape: a build from the one-line
    context and the inference_config routes; its version is environment_version(image)."""
    route = lambda path: {"port": PORT, "path": path}  # noqa: E731
    return {"name": ENVIRONMENT, "version": environment_version(image), "build": {"path": context_url},
            "inference_config": {"liveness_route": route(LIVENESS), "readiness_route": route(READINESS),
                                 "scoring_route": route(SCORING)}}


def dockerfile(image: str) -> bytes:
    return f'FROM {image}\nCMD ["serve"]\n'.encode()


class AzureMLEndpoint(Endpoint):
    platform = "azureml"
    settings_model = AzureMLEndpointSettings
    name_rule = NAME
    name_refusal = ("azureml endpoint: name {name!r}: 3-32 letters, digits and '-', starting with a letter (managed "
                    "online endpoint limits, how-to-manage-quotas)")

    def __init__(self, settings: dict[str, str]):
        super().__init__(settings)
        self._ws: Optional[ControlPlane] = None
        self._store = None
        self._region = self.cfg.region
        self.scoring_uri: Optional[str] = None
        self._key: Optional[str] = None

    @property
    def region(self) -> str:
        return self._region

    @property
    def model_prefix(self) -> str:
        return f"{self.cfg.prefix.strip('/')}/endpoints/{self.name}/"

    def target(self) -> Target:
        return Target(kind="azureml", name=self.name, url=self.scoring_uri)

    def request_settings(self) -> tuple[int, int]:
        """(max_concurrent_requests_per_instance, request_timeout_ms) for the load plan (LoadSettings'
        defaults, the study's 10 concurrent at 60 s, where none is given)."""
        from platforms.core.load_runner import LoadSettings

        plan = self.load_plan or LoadSettings()
        return (math.ceil(plan.concurrency / self.cfg.instance_count),
                min(round(plan.timeout_s * 1000), MAX_REQUEST_TIMEOUT_MS))

    def tags(self) -> dict[str, str]:
        """The deployment's request settings, for the run's tags."""
        per_instance, timeout_ms = self.request_settings()
        return {"platbench.azureml.max_concurrent_requests_per_instance": str(per_instance),
                "platbench.azureml.request_timeout_ms": str(timeout_ms)}

    def cost(self) -> Optional[EndpointCost]:
        return endpoint_cost("azureml", self._region, [(self.cfg.instance_type, self.cfg.instance_count)])

    def plan(self) -> list[str]:
        c = self.cfg
        ws = (f"--subscription {c.subscription_id or 'SUBSCRIPTION'} --resource-group {c.resource_group or 'RG'} "
              f"--workspace-name {c.workspace or 'WORKSPACE'}")
        blob = f"--account-name {c.storage_account or 'ACCOUNT'} --container-name {c.container} --auth-mode login"
        return [
            f"az ml workspace show --name {c.workspace or 'WORKSPACE'} --resource-group {c.resource_group or 'RG'} "
            f"&& az ml compute list-sizes --location {c.region} {ws} && az ml datastore show --name {c.datastore} {ws}",
            f"az storage blob upload-batch {blob} --source MODEL_DIR --destination-path {self.model_prefix}model "
            f"&& az storage blob upload {blob} --name {context_prefix(c.prefix, c.image or 'IMAGE')}Dockerfile   "
            f"# FROM {c.image or 'IMAGE'} / CMD [\"serve\"]",
            f"az ml model create --name {self.name} --version 1 --type custom_model --path "
            f"azureml://datastores/{c.datastore}/paths/{self.model_prefix}model {ws}",
            f"az ml environment create --file env.yml {ws}   # build: the context above; inference_config: port "
            f"{PORT}, liveness/readiness {LIVENESS}, scoring {SCORING}",
            f"az ml online-endpoint create --name {self.name} --auth-mode key {ws}",
            f"az ml online-deployment create --name {DEPLOYMENT} --endpoint-name {self.name} --file deployment.yml "
            f"{ws}   # model {self.name}:1, environment, {c.instance_count}x {c.instance_type}, request_settings: "
            f"max_concurrent_requests_per_instance {self.request_settings()[0]}, request_timeout_ms "
            f"{self.request_settings()[1]} (from the load test)",
            f"az ml online-endpoint get-credentials --name {self.name} {ws}; curl -H 'Authorization: Bearer KEY' "
            f"-H 'azureml-model-deployment: {DEPLOYMENT}' --data-binary @image.png SCORING_URI   # x N, by the load tool",
            f"az ml online-endpoint delete --name {self.name} --yes {ws}; az rest --method delete --url "
            f".../models/{self.name}/versions/1; az storage blob delete-batch {blob.replace('--container-name', '--source')} "
            f"--pattern '{self.model_prefix}*'   # always",
        ]

    def check(self) -> None:
        c = self.cfg
        require_settings(c, "azureml endpoint")
        from platforms.image import pinning

        # the deployment serves REGISTRY/IMAGE@sha256:…: a tag resolved from the push record / the registry
        self.cfg = c = pinning.pinned_settings(c, "image", "azureml endpoint")
        self._store = open_container(c, "azureml endpoint")
        self._ws = ControlPlane(c)
        self._region = self._ws.workspace_location()
        self._ws.offered(c.instance_type, self._region)
        self._ws.check_datastore(c.datastore, self._store.account, c.container)

    def deploy(self, model_dir: Path, progress=None) -> None:
        from azure.ai.ml import load_environment
        from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model, OnlineRequestSettings

        c, ws, say = self.cfg, self._ws, progress or (lambda text: None)
        model_tarball(model_dir)  # validates the model directory
        t0 = time.perf_counter()
        ws.ensure_datastore(c.datastore, self._store.account, c.container)
        size = 0
        for name in MODEL_FILES:
            self._store.put_file(f"{self.model_prefix}model/{name}", Path(model_dir) / name)
            self.created.append(("blob", f"{self.model_prefix}model/{name}"))
            size += (Path(model_dir) / name).stat().st_size
        context = context_prefix(c.prefix, c.image)
        self._store.put_bytes(f"{context}Dockerfile", dockerfile(c.image))  # the same bytes each time; kept
        self.timings["upload_s"] = time.perf_counter() - t0
        self.timings["model_mb"] = size / 1e6
        t0 = time.perf_counter()
        client = ws.client
        say(f"registering model {self.name}")
        model = ws.call(f"register model {self.name!r}", client.models.create_or_update, Model(
            name=self.name, version="1", type="custom_model",
            path=f"azureml://datastores/{c.datastore}/paths/{self.model_prefix}model"))
        self.created.append(("model", f"{model.name}:{model.version}"))
        import yaml

        env = load_environment(source=io.StringIO(yaml.safe_dump(
            environment_doc(c.image, f"{self._store.https_url}/{context}"))))
        say(f"creating endpoint {self.name}")
        self.created.append(("endpoint", self.name))  # before the call: a create that fails half-way is deleted too
        ws.call(f"create endpoint {self.name!r}", lambda: client.online_endpoints.begin_create_or_update(
            ManagedOnlineEndpoint(name=self.name, auth_mode="key")).result())
        per_instance, timeout_ms = self.request_settings()
        say(f"deploying {self.name} on {c.instance_count}x {c.instance_type}, {per_instance} concurrent requests "
            f"per instance, {timeout_ms} ms timeout")
        self.created.append(("deployment", DEPLOYMENT))
        ws.call(f"create deployment {DEPLOYMENT!r}", lambda: client.online_deployments.begin_create_or_update(
            ManagedOnlineDeployment(name=DEPLOYMENT, endpoint_name=self.name, model=f"{model.name}:{model.version}",
                                    environment=env, instance_type=c.instance_type, instance_count=c.instance_count,
                                    request_settings=OnlineRequestSettings(
                                        max_concurrent_requests_per_instance=per_instance,
                                        request_timeout_ms=timeout_ms))).result())
        self.scoring_uri = ws.call("endpoint", client.online_endpoints.get, self.name).scoring_uri
        self._key = ws.call("endpoint keys", client.online_endpoints.get_keys, self.name).primary_key
        self.timings["create_to_in_service_s"] = time.perf_counter() - t0

    def delete(self, kind: str, name: str) -> None:
        client = self._ws.client
        if kind == "deployment":
            client.online_deployments.begin_delete(name=name, endpoint_name=self.name).result()
        elif kind == "endpoint":
            client.online_endpoints.begin_delete(name=name).result()
        elif kind == "model":
            model, version = name.split(":")
            client.models._model_versions_operation.delete(
                resource_group_name=self.cfg.resource_group, workspace_name=self.cfg.workspace,
                name=model, version=version)
        elif kind == "blob":
            self._store.delete([name])

    def already_gone(self, exc: Exception) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        return isinstance(exc, ResourceNotFoundError)

    def transport(self, concurrency: int, timeout_s: float):
        return scoring_transport(self.scoring_uri, self._key, concurrency, timeout_s)

    @classmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float):
        ep = cls({**settings, "name": name})
        require_settings(ep.cfg, "azureml endpoint")
        ws = ControlPlane(ep.cfg)
        uri = ws.call(f"endpoint {name!r}", ws.client.online_endpoints.get, name).scoring_uri
        key = ws.call(f"endpoint {name!r} keys", ws.client.online_endpoints.get_keys, name).primary_key
        return scoring_transport(uri, key, concurrency, timeout_s, deployment=None)


def scoring_transport(uri: str, key: str, concurrency: int, timeout_s: float, deployment: Optional[str] = DEPLOYMENT):
    """The load tool's HTTP transport on the scoring URI with the endpoint key (Azure ML's data plane has
    no SDK client of its own; online_endpoints.invoke reads a request file)."""
    from platforms.core.http_transport import ReadyHttpTransport

    headers = {"Authorization": f"Bearer {key}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    # the scoring URI has no health route; a deployment that finished creating is ready
    return ReadyHttpTransport(Target(kind="http", url=uri, health_url=uri), concurrency, timeout_s, headers)
