"""Databricks Model Serving: the trained model registered as a Unity Catalog model version (the MLflow pyfunc
model of trainer/mlflow_model.py) and served by a Model Serving endpoint, load-tested through its REST route
with the workspace token, always deleted afterwards — the endpoint, the model version the run created and the
registered model if the run created it (platforms/core/endpoint.py).

Platform contracts relied on (official pages):
- Registering into Unity Catalog with MLflow (registry URI `databricks-uc`; a model needs a signature there):
  https://docs.databricks.com/en/machine-learning/manage-model-lifecycle/index.html. MLflow's UC registry
  client creates the version, uploads its files and finalizes it (its REST routes
  /api/2.0/mlflow/unity-catalog/{registered-models,model-versions}/…, mlflow/protos/databricks_uc_registry_*).
- Serving endpoints: POST /api/2.0/serving-endpoints (config.served_entities[{entity_name, entity_version,
  workload_size, workload_type, scale_to_zero_enabled}]), GET /api/2.0/serving-endpoints/{name}
  (state.ready READY / NOT_READY, state.config_update), DELETE …/{name}:
  https://docs.databricks.com/api/workspace/servingendpoints
- Scoring: POST {workspace}/serving-endpoints/{name}/invocations with a token, JSON with one of
  dataframe_split, dataframe_records, instances or inputs (no raw image bodies):
  https://docs.databricks.com/en/machine-learning/model-serving/score-custom-model-endpoints.html
- Model versions and registered models deleted through the Unity Catalog API (DELETE
  /api/2.1/unity-catalog/models/{full_name}/versions/{version}, DELETE …/models/{full_name}):
  https://docs.databricks.com/api/workspace/modelversions/delete, …/registeredmodels/delete
- Prices: Model Serving is billed in DBUs per hour of the served entity's size; no rate per workload size was
  found on a stored official page, so prices.yaml has no endpoint entry and the cost is reported unknown.

Raw image bodies (the load tool's `--format image`) are sent as the documented JSON,
{"dataframe_records": [{"b64": …}]}: the endpoint takes JSON only."""
from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platforms.core.endpoint import Endpoint, EndpointCost, endpoint_cost
from platforms.core.http_transport import ReadyHttpTransport
from platforms.core.transport import Payload, Reply, Target
from platforms.errors import UserError

NAME_PART = r"^[A-Za-z0-9_-]{1,255}$"


class DatabricksEndpointSettings(BaseModel):
    """`--set KEY=VALUE` for `platbench endpoint databricks`."""

    model_config = ConfigDict(extra="forbid")

    host: Optional[str] = Field(default_factory=lambda: os.environ.get("DATABRICKS_HOST"))
    profile: Optional[str] = Field(default_factory=lambda: os.environ.get("DATABRICKS_CONFIG_PROFILE"))
    catalog: str = "main"
    schema_name: str = Field("default", alias="schema")
    model: str = "platbench"
    workload_size: Literal["Small", "Medium", "Large"] = "Small"
    workload_type: Literal["CPU", "GPU_SMALL", "GPU_MEDIUM", "GPU_LARGE", "MULTIGPU_MEDIUM"] = "CPU"
    scale_to_zero: bool = False
    region: str = "us-east-1"
    name: Optional[str] = None
    ready_timeout: float = Field(1800.0, gt=0, le=7200)
    poll_seconds: float = Field(10.0, gt=0, le=300)

    @field_validator("catalog", "schema_name", "model")
    @classmethod
    def _part(cls, value):
        import re

        if not re.match(NAME_PART, value):
            raise ValueError(f"{value!r}: letters, digits, '_' and '-' only")
        return value

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema_name}.{self.model}"


class DatabricksEndpoint(Endpoint):
    platform = "databricks"
    settings_model = DatabricksEndpointSettings

    def __init__(self, settings: dict[str, str]):
        super().__init__(settings)
        self.w = None
        self.version: Optional[str] = None

    def target(self) -> Target:
        return Target(kind="databricks", name=self.name)

    def cost(self) -> Optional[EndpointCost]:
        c = self.cfg
        return endpoint_cost("databricks", c.region, [(f"serving {c.workload_type} {c.workload_size}", 1)])

    def plan(self) -> list[str]:
        c = self.cfg
        who = f" --profile {c.profile}" if c.profile else ""
        entity = {"entity_name": c.full_name, "entity_version": "VERSION", "workload_size": c.workload_size,
                  "workload_type": c.workload_type, "scale_to_zero_enabled": c.scale_to_zero}
        return [
            f"check credentials and the schema: databricks schemas get {c.catalog}.{c.schema_name}{who}",
            "save the model as an MLflow pyfunc model (trainer/mlflow_model.py) and register it in Unity Catalog as "
            f"{c.full_name} (a new version): python -c \"import mlflow; mlflow.set_registry_uri('databricks-uc'); "
            f"mlflow.register_model('MODEL_DIR', '{c.full_name}')\"",
            f"create endpoint {self.name}: databricks serving-endpoints create --json "
            + json.dumps({"name": self.name, "config": {"served_entities": [entity]}}) + who,
            f"wait until state.ready is READY: databricks serving-endpoints get {self.name}{who}",
            f"load test: POST $DATABRICKS_HOST/serving-endpoints/{self.name}/invocations (Authorization: Bearer token)",
            f"delete, always: databricks serving-endpoints delete {self.name}{who} && databricks model-versions delete "
            f"{c.full_name} VERSION{who} (&& databricks registered-models delete {c.full_name} when this run created it)",
        ]

    # ------------------------------------------------------------------ check / deploy
    def _client(self):
        if self.w is None:
            from platforms.databricks.storage import workspace_client

            self.w = workspace_client(self.cfg.host, self.cfg.profile)
        return self.w

    def check(self) -> None:
        from databricks.sdk.errors import DatabricksError

        from platforms.databricks import credentials

        found, where = credentials.find(self.cfg.profile)
        if not found:
            raise UserError(f"databricks: no Databricks credentials found: {where}")
        w = self._client()
        try:
            w.schemas.get(f"{self.cfg.catalog}.{self.cfg.schema_name}")
        except DatabricksError as exc:
            raise UserError(f"databricks: schema {self.cfg.catalog}.{self.cfg.schema_name}: "
                            f"{str(exc).splitlines()[0]}") from None

    def deploy(self, model_dir: Path, progress=None) -> None:
        from databricks.sdk.errors import NotFound
        from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput, ServingModelWorkloadType

        from trainer.errors import ConfigError
        from trainer.mlflow_model import save

        say = progress or (lambda text: None)
        w, c = self._client(), self.cfg
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in the CLI's output
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp, _mlflow_quiet():
            try:
                local = save(Path(model_dir), Path(tmp) / "model")
            except ConfigError as exc:
                raise UserError(str(exc)) from None
            client = self._registry()
            try:
                w.registered_models.get(c.full_name)
            except NotFound:
                client.create_registered_model(c.full_name)
                self.created.append(("registered model", c.full_name))
            mv = client.create_model_version(c.full_name, str(local))
            self.version = str(mv.version)
            self.created.append(("model version", f"{c.full_name}/{self.version}"))
        self.timings["upload_s"] = time.perf_counter() - t0
        say(f"registered {c.full_name} version {self.version}; creating endpoint {self.name}")
        t1 = time.perf_counter()
        entity = ServedEntityInput(entity_name=c.full_name, entity_version=self.version, workload_size=c.workload_size,
                                   workload_type=ServingModelWorkloadType(c.workload_type),
                                   scale_to_zero_enabled=c.scale_to_zero)
        self._call(f"create serving endpoint {self.name}", w.serving_endpoints.create, name=self.name,
                   config=EndpointCoreConfigInput(name=self.name, served_entities=[entity]))
        self.created.append(("serving endpoint", self.name))
        deadline = time.monotonic() + c.ready_timeout
        while True:
            ep = self._call(f"serving endpoint {self.name}", w.serving_endpoints.get, self.name)
            state = ep.state
            ready = state.ready.value if state and state.ready else "NOT_READY"
            update = state.config_update.value if state and state.config_update else ""
            if ready == "READY" and update != "IN_PROGRESS":
                break
            if update == "UPDATE_FAILED":
                raise UserError(f"databricks: serving endpoint {self.name} failed to deploy (config_update "
                                "UPDATE_FAILED; the endpoint's build and server logs say why)")
            if time.monotonic() > deadline:
                raise UserError(f"databricks: serving endpoint {self.name} not READY after {c.ready_timeout:g} s")
            time.sleep(c.poll_seconds)
        self.timings["create_to_in_service_s"] = time.perf_counter() - t1

    def _registry(self):
        """MLflow's Unity Catalog registry client, authenticated as the SDK resolves it (the same profile/env)."""
        from mlflow.tracking import MlflowClient

        uri = f"databricks-uc://{self.cfg.profile}" if self.cfg.profile else "databricks-uc"
        return MlflowClient(tracking_uri="databricks" if not self.cfg.profile else f"databricks://{self.cfg.profile}",
                            registry_uri=uri)

    def _call(self, what: str, fn, *args, **kwargs):
        from databricks.sdk.errors import DatabricksError

        try:
            return fn(*args, **kwargs)
        except DatabricksError as exc:
            raise UserError(f"databricks: {what}: {str(exc).splitlines()[0]}") from None

    # ------------------------------------------------------------------ teardown
    def delete(self, kind: str, name: str) -> None:
        """Newest first: the endpoint, the model version, the registered model this run created."""
        if kind == "serving endpoint":
            self.w.serving_endpoints.delete(name)
        elif kind == "model version":
            full, _, version = name.rpartition("/")
            self.w.model_versions.delete(full, int(version))
        elif kind == "registered model":
            self.w.registered_models.delete(name)

    def already_gone(self, exc: Exception) -> bool:
        from databricks.sdk.errors import NotFound

        return isinstance(exc, NotFound)

    # ------------------------------------------------------------------ transport
    def transport(self, concurrency: int, timeout_s: float) -> "ServingTransport":
        return ServingTransport(self._client(), self.name, concurrency, timeout_s)

    @classmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float) -> "ServingTransport":
        ep = cls(settings)
        return ServingTransport(ep._client(), name, concurrency, timeout_s)


@contextmanager
def _mlflow_quiet():
    """MLflow's UC client warns that a version registered from a local folder has no source run: true and
    expected here (platbench registers the model file it was given)."""
    import logging

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class ServingTransport(ReadyHttpTransport):
    """The endpoint's REST route with the workspace's auth headers (`Config.authenticate()`: a token, or an
    OAuth token the SDK refreshes, read once per load test), over the load tool's HTTP client; ready once
    deploy saw READY."""

    # "the maximum payload size is 16 MB" per request:
    # https://docs.databricks.com/en/machine-learning/model-serving/model-serving-limits.html
    max_payload_bytes = 16 * 1024 * 1024
    payload_limit_source = "Databricks Model Serving, model-serving-limits"

    def __init__(self, w, name: str, concurrency: int, timeout_s: float):
        url = f"{w.config.host.rstrip('/')}/serving-endpoints/{name}/invocations"
        super().__init__(Target(kind="http", url=url, health_url=url), concurrency, timeout_s,
                         dict(w.config.authenticate()))

    async def send(self, payload: Payload) -> Reply:
        if payload.content_type != "application/json":  # a raw PNG/JPEG: the endpoint takes JSON only
            doc = {"dataframe_records": [{"b64": base64.b64encode(payload.body).decode("ascii")}]}
            payload = Payload(json.dumps(doc).encode(), "application/json", payload.images)
        return await super().send(payload)
