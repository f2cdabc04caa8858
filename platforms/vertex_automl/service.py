"""Google Vertex AI AutoML image classification through google-cloud-aiplatform's v1 service clients
(platforms/core/service.py drives it).

- Data: single-label classification, training images JPEG/GIF/PNG/BMP/ICO, "The minimum per label is 10",
  prediction images at most 1.5 MB; a CSV import file of `ML_USE,GCS_URI,LABEL` lines against the schema
  gs://google-cloud-aiplatform/schema/dataset/ioformat/image_classification_single_label_io_format_1.0.0.yaml:
  https://cloud.google.com/vertex-ai/docs/image-data/classification/prepare-data
- DatasetService.CreateDataset (metadata schema image_1.0.0.yaml) and ImportData:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.datasets/create
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.datasets/import
- PipelineService.CreateTrainingPipeline with the automl_image_classification_1.0.0.yaml task definition and
  AutoMlImageClassificationInputs {modelType CLOUD, budgetMilliNodeHours 8,000–800,000, multiLabel false};
  our 80/20 as a FilterSplit on the ml_use labels the import file set, and no test set of the service's
  own: the test filter is '-' ("If any of the filters in this message are to match nothing, then they can
  be set as '-'", FilterSplit, aiplatform_v1 training_pipeline.py; a filter naming ml_use=test matched no
  item), since the whole test set is ours, scored through the endpoint. AutoML computes its evaluation
  metrics on its test set (https://cloud.google.com/vertex-ai/docs/general/ml-use), so it reports none here; GetTrainingPipeline: state, startTime/endTime (the service's clock),
  trainingTaskMetadata.costMilliNodeHours (what is billed), modelToUpload:
  https://cloud.google.com/vertex-ai/docs/training/automl-api
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.trainingPipelines
  https://cloud.google.com/python/docs/reference/aiplatform/latest/google.cloud.aiplatform.v1.schema.trainingjob.definition_v1.types.AutoMlImageClassificationInputs
- EndpointService.CreateEndpoint, DeployModel (automaticResources), PredictionService.Predict (instances
  [{content: base64}], parameters {confidenceThreshold, maxPredictions} → {ids, displayNames, confidences}),
  UndeployModel, DeleteEndpoint, ModelService.DeleteModel, DatasetService.DeleteDataset:
  https://cloud.google.com/vertex-ai/docs/image-data/classification/get-predictions
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints
"""
from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any, Iterator, Optional

from pydantic import Field

from platforms.core import pricing
from platforms.core.api import Job, PlanStep
from platforms.core.names import unique_name
from platforms.core.sdk import require
from platforms.core.service import Service, ServiceCost, ServiceData, ServiceSettings, Trained, predictions
from platforms.core.transport import Payload, Reply, Target, ThreadedTransport, TransportError
from platforms.errors import UserError
from platforms.vertex_automl import SPEC

SCHEMA = "gs://google-cloud-aiplatform/schema"
IMAGE_METADATA = f"{SCHEMA}/dataset/metadata/image_1.0.0.yaml"
IMPORT_SCHEMA = f"{SCHEMA}/dataset/ioformat/image_classification_single_label_io_format_1.0.0.yaml"
TASK = f"{SCHEMA}/trainingjob/definition/automl_image_classification_1.0.0.yaml"
ML_USE = "labels.aiplatform.googleapis.com/ml_use"
PREPARE_DATA = "https://cloud.google.com/vertex-ai/docs/image-data/classification/prepare-data"
SKU = "automl-image-classification-node"
DONE = {"PIPELINE_STATE_SUCCEEDED"}
NO_ITEMS = "-"  # FilterSplit's filter for an empty set
FAILED = {"PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


class VertexAutoMLSettings(ServiceSettings):
    project: Optional[str] = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_PROJECT"))
    region: str = "us-central1"
    bucket: Optional[str] = None           # Cloud Storage bucket for the images and the import file
    prefix: str = "platbench"
    name: Optional[str] = None             # display name of everything created (default platbench-<time>-<random>)
    budget_milli_node_hours: int = Field(8000, ge=8000, le=800_000)  # CLOUD models: 8,000–800,000
    replicas: int = Field(1, ge=1, le=100)  # DeployModel automaticResources min = max replica count
    api_endpoint: Optional[str] = None     # default {region}-aiplatform.googleapis.com
    upload_workers: int = Field(16, ge=1, le=128)

    @property
    def loopback(self) -> bool:
        return bool(self.api_endpoint and re.match(r"^http://(127\.\d+\.\d+\.\d+|localhost)(:\d+)?/?$", self.api_endpoint))


class VertexAutoMLService(Service):
    spec = SPEC
    settings_model = VertexAutoMLSettings
    min_labels = 2
    min_per_label = 10
    formats = ("png", "jpeg")
    limits_source = PREPARE_DATA

    def __init__(self, settings=None):
        super().__init__(settings)
        self._clients: dict[str, Any] = {}
        self._store = None
        self.run_name: Optional[str] = None
        self.dataset = self.pipeline = self.model = self.endpoint = self.deployed_id = None
        self.cost_milli_node_hours: Optional[float] = None

    # ------------------------------------------------------------------ clients
    def client(self, kind: str):
        """A v1 service client (Dataset, Pipeline, Endpoint, Model, Prediction), REST against a loopback server."""
        if kind not in self._clients:
            v1 = require("google.cloud.aiplatform_v1", SPEC.extra, "the Vertex AI SDK (google-cloud-aiplatform)")
            from google.api_core.client_options import ClientOptions

            cfg = self.parsed()
            kwargs: dict[str, Any] = {"client_options": ClientOptions(
                api_endpoint=cfg.api_endpoint or f"{cfg.region}-aiplatform.googleapis.com")}
            if cfg.loopback:
                from google.auth.credentials import AnonymousCredentials

                kwargs.update(credentials=AnonymousCredentials(), transport="rest")
            self._clients[kind] = getattr(v1, f"{kind}ServiceClient")(**kwargs)
        return self._clients[kind]

    def store(self):
        if self._store is None:
            from platforms.clouds.gcp.gcs import GCSStore

            self._store = GCSStore(self.parsed().bucket, project=self.parsed().project)
        return self._store

    @property
    def parent(self) -> str:
        return f"projects/{self.parsed().project}/locations/{self.parsed().region}"

    def _name(self) -> str:
        self.run_name = self.run_name or self.parsed().name or unique_name("platbench")
        return self.run_name

    def run_prefix(self) -> str:
        return f"{self.parsed().prefix.strip('/')}/{self._name()}"

    # ------------------------------------------------------------------ before anything is created
    def preflight(self, job: Job) -> list[str]:
        super().preflight(job)
        from platforms.clouds.gcp.credentials import find

        cfg, needs = self.parsed(), []
        if not cfg.project:
            needs.append("a Google Cloud project (--set project=ID or GOOGLE_CLOUD_PROJECT)")
        if not cfg.bucket:
            needs.append(f"a Cloud Storage bucket in {cfg.region} (--set bucket=NAME)")
        found, where = find()
        if not found and not cfg.loopback:
            needs.append(f"Google Cloud credentials ({where})")
        return needs

    def check(self, job: Job, data: ServiceData) -> None:
        super().check(job, data)
        cfg = self.parsed()
        if not cfg.project or not cfg.bucket:
            raise UserError("vertex_automl: --set project=ID and --set bucket=NAME are needed")
        big = [x.path for x in data.test if x.size > 1_500_000]
        if big:
            raise UserError(f"vertex_automl: {big[0]} is over the 1.5 MB a prediction image may have ({PREPARE_DATA})")
        if not cfg.loopback:
            from platforms.clouds.gcp.credentials import find

            found, where = find()
            if not found:
                raise UserError(f"vertex_automl: no Google Cloud credentials ({where})")
        if not self.store().bucket_exists():
            raise UserError(f"vertex_automl: bucket {cfg.bucket!r} does not exist or is not readable")
        self._name()

    def run_tags(self, job: Job) -> dict[str, str]:
        return {"platbench.region": self.parsed().region}

    def plan(self, job: Job) -> list[PlanStep]:
        cfg, name = self.parsed(), self._name()
        where = f"gs://{cfg.bucket or 'BUCKET'}/{self.run_prefix()}"
        api = f"https://{cfg.region}-aiplatform.googleapis.com/v1/projects/{cfg.project or 'PROJECT'}/locations/{cfg.region}"
        auth = '-H "Authorization: Bearer $(gcloud auth print-access-token)"'
        return [
            PlanStep("upload the train/validation images and the CSV import file (ml_use,uri,label)",
                     f"gcloud storage cp -r IMAGES {where}/images/"),
            PlanStep(f"create the image dataset {name} and import the file",
                     f"curl -X POST {auth} {api}/datasets -d '{{\"displayName\": \"{name}\", \"metadataSchemaUri\": "
                     f"\"{IMAGE_METADATA}\"}}'"),
            PlanStep(f"train: AutoML image classification, budget {cfg.budget_milli_node_hours} milli node hours, "
                     f"our 80/20 as the training/validation filter split, test filter '{NO_ITEMS}' (no test set "
                     "of the service's own: the whole test set is scored through the endpoint); wait for "
                     "PIPELINE_STATE_SUCCEEDED",
                     f"curl -X POST {auth} {api}/trainingPipelines -d @pipeline.json"),
            PlanStep(f"create an endpoint and deploy the model on {cfg.replicas} node(s)",
                     f"curl -X POST {auth} {api}/endpoints/ENDPOINT_ID:deployModel -d @deploy.json"),
            PlanStep(f"evaluate the whole test set, then load test: {cfg.requests} predictions at {cfg.concurrency} "
                     "concurrent", f"curl -X POST {auth} {api}/endpoints/ENDPOINT_ID:predict -d @instances.json"),
            PlanStep("undeploy and delete the endpoint, the model, the dataset and the uploaded objects, always",
                     f"gcloud ai endpoints undeploy-model ENDPOINT_ID --deployed-model-id=ID --region={cfg.region} && "
                     f"gcloud ai endpoints delete ENDPOINT_ID --region={cfg.region} && "
                     f"gcloud ai models delete MODEL_ID --region={cfg.region} && gcloud storage rm -r {where}/"),
        ]

    # ------------------------------------------------------------------ the run
    def upload(self, data: ServiceData, say) -> dict[str, Any]:
        store, prefix = self.store(), self.run_prefix()
        splits = {"training": data.train, "validation": data.val}
        keys = self.upload_images(store, prefix, "objects", splits, self.parsed().upload_workers)
        rows = [(use, key, x) for use, items in splits.items() for key, x in zip(keys[use], items)]
        csv = "".join(f"{use},{store.uri(key)},{x.label}\n" for use, key, x in rows)
        store.put_bytes(f"{prefix}/import.csv", csv.encode())
        say(f"uploaded {len(rows)} images and the import file to {store.uri(prefix)}/")
        return {"objects": len(rows) + 1, "upload_retries": store.snapshot()["retries"],
                "import_file": store.uri(f"{prefix}/import.csv")}

    def train(self, data: ServiceData, say) -> Trained:
        v1 = require("google.cloud.aiplatform_v1", SPEC.extra)
        from google.protobuf import json_format, struct_pb2

        cfg, name = self.parsed(), self._name()
        datasets = self.client("Dataset")
        self.created.append(("dataset", name))  # before the call: an interrupted create is found by name
        self.dataset = datasets.create_dataset(parent=self.parent, dataset=v1.Dataset(
            display_name=name, metadata_schema_uri=IMAGE_METADATA)).result().name
        datasets.import_data(name=self.dataset, import_configs=[v1.ImportDataConfig(
            gcs_source=v1.GcsSource(uris=[self.store().uri(f"{self.run_prefix()}/import.csv")]),
            import_schema_uri=IMPORT_SCHEMA)]).result()
        inputs = json_format.ParseDict({"modelType": "CLOUD", "budgetMilliNodeHours": str(cfg.budget_milli_node_hours),
                                        "multiLabel": False}, struct_pb2.Value())
        self.created.append(("model", name))
        self.pipeline = self.client("Pipeline").create_training_pipeline(parent=self.parent, training_pipeline=v1.TrainingPipeline(
            display_name=name, training_task_definition=TASK, training_task_inputs=inputs,
            input_data_config=v1.InputDataConfig(dataset_id=self.dataset.rsplit("/", 1)[1], filter_split=v1.FilterSplit(
                training_filter=f"{ML_USE}=training", validation_filter=f"{ML_USE}=validation",
                test_filter=NO_ITEMS)),
            model_to_upload=v1.Model(display_name=name))).name
        say(f"training {self.pipeline}")
        deadline = time.monotonic() + cfg.max_train_hours * 3600
        while True:
            p = self.client("Pipeline").get_training_pipeline(name=self.pipeline)
            state = p.state.name
            if state in DONE:
                break
            if state in FAILED:
                raise UserError(f"vertex_automl: training ended {state}: {p.error.message or 'no reason given'}")
            if time.monotonic() > deadline:
                raise UserError(f"vertex_automl: training still {state} after {cfg.max_train_hours} h; "
                                "everything is deleted")
            time.sleep(cfg.poll_seconds)
        self.model = p.model_to_upload.name
        meta = json_format.MessageToDict(p._pb.training_task_metadata) if p.training_task_metadata else {}
        self.cost_milli_node_hours = float(meta["costMilliNodeHours"]) if "costMilliNodeHours" in meta else None
        start, end = p.start_time, p.end_time
        return Trained(seconds=(end - start).total_seconds(), started=start.isoformat(), ended=end.isoformat(),
                       billed_seconds=self.cost_milli_node_hours * 3.6 if self.cost_milli_node_hours is not None else None,
                       source="GetTrainingPipeline startTime → endTime",
                       service_metrics={"cost_node_hours": self.cost_milli_node_hours / 1000}
                       if self.cost_milli_node_hours is not None else {})

    def deploy(self, say) -> None:
        v1 = require("google.cloud.aiplatform_v1", SPEC.extra)
        endpoints, name, cfg = self.client("Endpoint"), self._name(), self.parsed()
        self.created.append(("endpoint", name))
        self.endpoint = endpoints.create_endpoint(parent=self.parent, endpoint=v1.Endpoint(display_name=name)).result().name
        deployed = endpoints.deploy_model(endpoint=self.endpoint, deployed_model=v1.DeployedModel(
            model=self.model, display_name=name, automatic_resources=v1.AutomaticResources(
                min_replica_count=cfg.replicas, max_replica_count=cfg.replicas)),
            traffic_split={"0": 100}).result()
        self.deployed_id = deployed.deployed_model.id
        say(f"model deployed on {self.endpoint}")

    def target(self) -> Target:
        return Target(kind=self.name, name=self.endpoint)

    def transport(self, concurrency: int, timeout_s: float) -> "VertexAutoMLTransport":
        return VertexAutoMLTransport(self.client("Prediction"), self.endpoint, concurrency, timeout_s)

    def delete(self, kind: str, ref: str) -> Iterator[str]:
        """Everything of this run's display name, found again by listing (so a resource whose create call was
        interrupted is found too): endpoints undeployed and deleted, models, datasets, then the objects."""
        if kind == "endpoint":
            eps = self.client("Endpoint")
            for ep in eps.list_endpoints(request=self._named(ref)):
                for d in ep.deployed_models:
                    eps.undeploy_model(endpoint=ep.name, deployed_model_id=d.id).result()
                    yield f"deployed model {d.id} on {ep.name}"
                eps.delete_endpoint(name=ep.name).result()
                yield f"endpoint {ep.name}"
        elif kind == "model":
            for pipe in self.client("Pipeline").list_training_pipelines(
                    request=self._named(ref)):
                if pipe.state.name not in DONE | FAILED:  # a running pipeline can be cancelled
                    self.client("Pipeline").cancel_training_pipeline(name=pipe.name)
                    yield f"training pipeline {pipe.name} cancelled"
            for m in self.client("Model").list_models(request=self._named(ref)):
                self.client("Model").delete_model(name=m.name).result()
                yield f"model {m.name}"
        elif kind == "dataset":
            for d in self.client("Dataset").list_datasets(request=self._named(ref)):
                self.client("Dataset").delete_dataset(name=d.name).result()
                yield f"dataset {d.name}"
        elif kind == "objects":
            n = self.store().delete_prefix(ref + "/")
            yield f"objects {self.store().uri(ref)}/ ({n})"

    def _named(self, display_name: str) -> dict:
        """A List* request for the resources of one display name (the filter syntax of the List methods)."""
        return {"parent": self.parent, "filter": f'display_name="{display_name}"'}

    def cost(self, trained: Optional[Trained]) -> Optional[ServiceCost]:
        cfg = self.parsed()
        train = pricing.lookup(self.name, cfg.region, SKU)
        serve = pricing.quote(self.name, cfg.region, [(SKU, cfg.replicas)], section="endpoint")
        if train is None and serve is None:
            return None
        hours = self.cost_milli_node_hours / 1000 if self.cost_milli_node_hours is not None else None
        basis = "; ".join(p for p in (
            f"training {train.usd_per_hour}/node hour × costMilliNodeHours ({train.source}, {train.date}, "
            f"{train.status})" if train else "", f"serving {serve.sources}" if serve else "") if p)
        return ServiceCost(training_usd=train.usd_per_hour * hours if train and hours is not None else None,
                           endpoint_usd_per_hour=serve.usd_per_hour if serve else None, usd_per_request=None,
                           basis=basis)


class VertexAutoMLTransport(ThreadedTransport):
    """PredictionService.Predict through the SDK's client, one image per request, `concurrency` at a time in
    threads; the client's own retries are off (retry=None): the load tool retries and counts."""

    max_payload_bytes = 1_500_000
    payload_limit_source = f"Vertex AI AutoML image prediction, {PREPARE_DATA}"

    def __init__(self, client, endpoint: str, concurrency: int, timeout_s: float):
        super().__init__(concurrency, "vertex-automl-predict")
        self.client, self.endpoint, self.timeout = client, endpoint, timeout_s

    def call(self, payload: Payload) -> Reply:
        from google.api_core import exceptions
        from google.protobuf import json_format, struct_pb2

        instance = json_format.ParseDict({"content": base64.b64encode(payload.body).decode()}, struct_pb2.Value())
        params = json_format.ParseDict({"confidenceThreshold": 0.0, "maxPredictions": 5}, struct_pb2.Value())
        try:
            r = self.client.predict(endpoint=self.endpoint, instances=[instance], parameters=params, retry=None,
                                    timeout=self.timeout)
        except exceptions.GoogleAPICallError as exc:
            return Reply(int(exc.code or 500), json.dumps({"error": str(exc)}).encode(), {})
        except exceptions.RetryError as exc:
            raise TransportError("timeout", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - requests' connection errors under the REST transport
            text = f"{type(exc).__name__}: {exc}"
            kind = "timeout" if "Timeout" in text else "refused" if "refused" in text.lower() else "reset"
            raise TransportError(kind, text) from None
        pred = json_format.MessageToDict(r._pb.predictions[0]) if r.predictions else {}
        return predictions(list(zip(pred.get("displayNames", []), pred.get("confidences", []))), "vertex ai predict")
