"""A loopback Vertex AI v1 REST server for AutoML image classification (datasets, import, training pipelines,
models, endpoints, predict), for the tests of platforms/vertex_automl. Every request body is parsed into the
SDK's own request message with protobuf's json_format (unknown fields refused), the pipeline's
trainingTaskInputs into the SDK's AutoMlImageClassificationInputs, and predict's instances and parameters
into its ImageClassificationPredictionInstance/Params schema types. It refuses what the service documents:
fewer than 10 images per label or fewer than 2 labels (the pipeline fails, as the service's would), images
that are not JPEG/GIF/PNG/BMP/ICO, a budget outside 8,000–800,000 milli node hours, prediction images over
1.5 MB (https://cloud.google.com/vertex-ai/docs/image-data/classification/prepare-data). Images and the
import file are read from the Cloud Storage emulator with google-cloud-storage.

What it trains is nothing of substance and says so: a nearest-class-mean classifier on 16×16 RGB pixels of
the training items; the pipeline runs for `train_seconds`, and its costMilliNodeHours is its elapsed time on
the 8 nodes the budget documentation assumes. Every long-running operation is returned already done."""
from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

TYPES = "type.googleapis.com/google.cloud.aiplatform.v1."
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"\x00\x00\x01\x00")
MIN_PER_LABEL = 10



ML_USE_FILTER = re.compile(r"labels\.aiplatform\.googleapis\.com/ml_use=(\w+)")


def _filter_split(split, items: list[dict]) -> list[dict]:
    """FilterSplit as the API documents it (aiplatform_v1 FilterSplit; https://cloud.google.com/vertex-ai/docs/
    reference/rest/v1/projects.locations.trainingPipelines#FilterSplit): all three filters required; an item
    matched by several goes to the first set in training, validation, test order; a set meant to be empty is
    the filter '-' ("If any of the filters in this message are to match nothing, then they can be set as
    '-'"), so a filter that matches no item is refused. This server reads ml_use label filters only. Returns
    the items with ml_use set to the set each was assigned to (unmatched items dropped)."""
    out, left = [], list(items)
    for use in ("training", "validation", "test"):
        text = getattr(split, f"{use}_filter")
        if not text:
            raise Refused(400, "INVALID_ARGUMENT", f"filterSplit.{use}Filter is required ('-' for none)")
        if text == "-":
            continue
        m = ML_USE_FILTER.fullmatch(text)
        if not m:
            raise Refused(400, "INVALID_ARGUMENT", "this server understands ml_use label filters and '-' only")
        matched = [x for x in left if x["ml_use"] == m.group(1)]
        if not matched:
            raise Refused(400, "INVALID_ARGUMENT", f"filterSplit.{use}Filter {text!r} matches no data item "
                                                   "(use '-' for an empty set)")
        out += [{**x, "ml_use": use} for x in matched]
        left = [x for x in left if x["ml_use"] != m.group(1)]
    return out

class Refused(Exception):
    def __init__(self, code: int, status: str, message: str):
        super().__init__(message)
        self.code, self.status = code, status


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(raw: bytes, message_type):
    """The body as the SDK's message: unknown fields and wrong types are a 400, as on the service."""
    from google.protobuf import json_format

    try:
        return json_format.Parse(raw or b"{}", message_type.pb()(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise Refused(400, "INVALID_ARGUMENT", f"invalid JSON payload: {exc}") from None


def _pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    if not data.startswith(IMAGE_MAGIC):
        raise Refused(400, "INVALID_ARGUMENT", "unsupported image format")
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((16, 16)), dtype=np.float64).ravel() / 255


class VertexAutoMLServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, train_seconds: float = 0.2):
        self.datasets: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.train_seconds = train_seconds
        self.counter = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        # close() waits for the loop to look: every 0.05 s, not socketserver's 0.5 s, at each test's teardown
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def next_id(self) -> str:
        self.counter += 1
        return str(1000 + self.counter)

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, p in self.log if m == method and p.endswith(suffix))

    def read_gcs(self, uri: str) -> bytes:
        from google.cloud import storage

        bucket, _, key = uri[len("gs://"):].partition("/")
        try:
            return storage.Client(project="test").bucket(bucket).blob(key).download_as_bytes()
        except Exception:  # noqa: BLE001 - what the service reports for an unreadable object
            raise Refused(400, "INVALID_ARGUMENT", f"cannot read {uri}") from None

    def train(self, pipe: dict, items: list[dict]) -> None:
        t0 = time.time()
        train = [x for x in items if x["ml_use"] == "training"]
        labels = sorted({x["label"] for x in train})
        counts = {label: sum(1 for x in items if x["label"] == label) for label in labels}
        few = {k: n for k, n in counts.items() if n < MIN_PER_LABEL}
        time.sleep(self.train_seconds)
        with self.lock:
            if pipe["state"] == "PIPELINE_STATE_CANCELLING":
                pipe.update(state="PIPELINE_STATE_CANCELLED", end=time.time())
                return
            if len(labels) < 2 or few:
                pipe.update(state="PIPELINE_STATE_FAILED", end=time.time(), error={"code": 3, "message": (
                    f"label {next(iter(few))!r} has {next(iter(few.values()))} images; the minimum per label is "
                    f"{MIN_PER_LABEL}" if few else "at least 2 labels are needed")})
                return
            means = np.stack([np.mean([x["x"] for x in train if x["label"] == k], axis=0) for k in labels])
            name = f"{pipe['parent']}/models/{self.next_id()}"
            self.models[name] = {"name": name, "displayName": pipe["model_display_name"], "labels": labels,
                                 "means": means}
            end = time.time()
            pipe.update(state="PIPELINE_STATE_SUCCEEDED", end=end, model=name,
                        cost=str(int(np.ceil((end - t0) / 3600 * 8 * 1000))))

    def describe_pipeline(self, p: dict) -> dict:
        out = {"name": p["name"], "displayName": p["displayName"], "state": p["state"], "createTime": _ts(p["created"]),
               "startTime": _ts(p["start"]), "trainingTaskDefinition": p["task"],
               "modelToUpload": {"displayName": p["model_display_name"], **({"name": p["model"]} if "model" in p else {})}}
        if "end" in p:
            out["endTime"] = _ts(p["end"])
        if "cost" in p:
            out["trainingTaskMetadata"] = {"costMilliNodeHours": p["cost"], "successfulStopReason": "model-converged"}
        if "error" in p:
            out["error"] = p["error"]
        return out


def _op(name: str, response: dict, type_name: str) -> dict:
    return {"name": f"{name}/operations/1", "done": True,
            "response": {"@type": (TYPES + type_name) if "." not in type_name else f"type.googleapis.com/{type_name}",
                         **response}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        srv: VertexAutoMLServer = self.server  # type: ignore[assignment]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/v1/")
        query = parse_qs(parts.query)
        srv.log.append((method, path))
        try:
            if path.endswith(":predict"):  # outside the lock: predictions in flight at once
                return self._send(200, self._predict(srv, path[: -len(":predict")], raw))
            with srv.lock:
                return self._send(200, self._route(srv, method, path, query, raw))
        except Refused as exc:
            self._send(exc.code, {"error": {"code": exc.code, "status": exc.status, "message": str(exc)}})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _route(self, srv: VertexAutoMLServer, method: str, path: str, query: dict, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        wanted = re.fullmatch(r'display_name="(.*)"', (query.get("filter") or [""])[0])
        wanted = wanted.group(1) if wanted else None
        m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/(datasets|trainingPipelines|endpoints|models)", path)
        if m and method == "POST":
            parent, kind = m.groups()
            name = f"{parent}/{kind}/{srv.next_id()}"
            if kind == "datasets":
                ds = _parse(raw, v1.Dataset)
                if "image_1.0.0.yaml" not in ds.metadata_schema_uri:
                    raise Refused(400, "INVALID_ARGUMENT", "this server serves image datasets")
                srv.datasets[name] = {"name": name, "displayName": ds.display_name, "items": []}
                return _op(name, {"name": name, "displayName": ds.display_name,
                                  "metadataSchemaUri": ds.metadata_schema_uri}, "Dataset")
            if kind == "endpoints":
                ep = _parse(raw, v1.Endpoint)
                srv.endpoints[name] = {"name": name, "displayName": ep.display_name, "deployed": {}}
                return _op(name, {"name": name, "displayName": ep.display_name}, "Endpoint")
            if kind == "trainingPipelines":
                return self._create_pipeline(srv, parent, name, raw)
        if m and method == "GET":
            table = {"datasets": srv.datasets, "trainingPipelines": srv.pipelines, "endpoints": srv.endpoints,
                     "models": srv.models}[m.group(2)]
            rows = [self._describe(srv, m.group(2), x) for x in table.values()
                    if wanted is None or x["displayName"] == wanted]
            return {m.group(2): rows}
        if path.endswith(":import"):
            return self._import(srv, path[: -len(":import")], raw)
        if path.endswith(":deployModel"):
            req = _parse(raw, v1.DeployModelRequest)
            ep = self._get(srv.endpoints, path[: -len(":deployModel")])
            if req.deployed_model.model not in srv.models:
                raise Refused(404, "NOT_FOUND", f"no model {req.deployed_model.model}")
            if not req.deployed_model.automatic_resources.min_replica_count:
                raise Refused(400, "INVALID_ARGUMENT", "an AutoML image model deploys on automaticResources")
            dep_id = srv.next_id()
            ep["deployed"][dep_id] = req.deployed_model.model
            return _op(ep["name"], {"deployedModel": {"id": dep_id, "model": req.deployed_model.model}},
                       "DeployModelResponse")
        if path.endswith(":undeployModel"):
            req = _parse(raw, v1.UndeployModelRequest)
            ep = self._get(srv.endpoints, path[: -len(":undeployModel")])
            if ep["deployed"].pop(req.deployed_model_id, None) is None:
                raise Refused(404, "NOT_FOUND", f"no deployed model {req.deployed_model_id}")
            return _op(ep["name"], {}, "UndeployModelResponse")
        if path.endswith(":cancel"):
            pipe = self._get(srv.pipelines, path[: -len(":cancel")])
            pipe["state"] = "PIPELINE_STATE_CANCELLING"
            return {}
        for kind, table in (("datasets", srv.datasets), ("trainingPipelines", srv.pipelines),
                            ("endpoints", srv.endpoints), ("models", srv.models)):
            if f"/{kind}/" in path:
                x = self._get(table, path)
                if method == "GET":
                    return self._describe(srv, kind, x)
                if kind == "endpoints" and x["deployed"]:
                    raise Refused(400, "FAILED_PRECONDITION", "undeploy the endpoint's models first")
                if kind == "models" and any(x["name"] in e["deployed"].values() for e in srv.endpoints.values()):
                    raise Refused(400, "FAILED_PRECONDITION", "the model is deployed")
                del table[path]
                return _op(path, {}, "google.protobuf.Empty")
        raise Refused(404, "NOT_FOUND", f"no route {method} {path}")

    def _get(self, table: dict, name: str) -> dict:
        if name not in table:
            raise Refused(404, "NOT_FOUND", f"{name} not found")
        return table[name]

    def _describe(self, srv, kind: str, x: dict) -> dict:
        if kind == "trainingPipelines":
            return srv.describe_pipeline(x)
        if kind == "endpoints":
            return {"name": x["name"], "displayName": x["displayName"],
                    "deployedModels": [{"id": k, "model": v} for k, v in x["deployed"].items()]}
        return {"name": x["name"], "displayName": x["displayName"]}

    def _import(self, srv: VertexAutoMLServer, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1

        req = _parse(raw, v1.ImportDataRequest)
        ds = self._get(srv.datasets, name)
        for config in req.import_configs:
            if not config.import_schema_uri.endswith("image_classification_single_label_io_format_1.0.0.yaml"):
                raise Refused(400, "INVALID_ARGUMENT", "unsupported import schema")
            for uri in config.gcs_source.uris:
                for n, line in enumerate(srv.read_gcs(uri).decode().splitlines(), 1):
                    cells = line.split(",")
                    if len(cells) == 2:
                        cells = ["", *cells]
                    if len(cells) != 3 or cells[0] not in ("", "training", "validation", "test") \
                            or not cells[1].startswith("gs://"):
                        raise Refused(400, "INVALID_ARGUMENT", f"{uri} line {n}: not [ML_USE,]GCS_URI,LABEL")
                    ds["items"].append({"ml_use": cells[0] or "training", "label": cells[2],
                                        "x": _pixels(srv.read_gcs(cells[1]))})
        return _op(name, {}, "ImportDataResponse")

    def _create_pipeline(self, srv: VertexAutoMLServer, parent: str, name: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1
        from google.cloud.aiplatform.v1.schema.trainingjob import definition
        from google.protobuf import json_format

        pipe = _parse(raw, v1.TrainingPipeline)
        if not pipe.training_task_definition.endswith("automl_image_classification_1.0.0.yaml"):
            raise Refused(400, "INVALID_ARGUMENT", "this server trains AutoML image classification only")
        inputs = json_format.MessageToDict(pipe.training_task_inputs)
        try:
            parsed = json_format.ParseDict(inputs, definition.AutoMlImageClassificationInputs.pb()(),
                                           ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise Refused(400, "INVALID_ARGUMENT", f"trainingTaskInputs: {exc}") from None
        if not 8000 <= parsed.budget_milli_node_hours <= 800_000:
            raise Refused(400, "INVALID_ARGUMENT", "budgetMilliNodeHours must be within 8,000 and 800,000")
        dataset = f"{parent}/datasets/{pipe.input_data_config.dataset_id}"
        items = self._get(srv.datasets, dataset)["items"]
        split = pipe.input_data_config.filter_split
        items = _filter_split(split, items)
        now = time.time()
        p = {"name": name, "parent": parent, "displayName": pipe.display_name, "state": "PIPELINE_STATE_RUNNING",
             "created": now, "start": now, "task": pipe.training_task_definition,
             "model_display_name": pipe.model_to_upload.display_name,
             "split": {use: (getattr(split, f"{use}_filter"), sum(1 for x in items if x["ml_use"] == use))
                       for use in ("training", "validation", "test")}}
        srv.pipelines[name] = p
        threading.Thread(target=srv.train, args=(p, list(items)), daemon=True).start()
        return srv.describe_pipeline(p)

    def _predict(self, srv: VertexAutoMLServer, endpoint: str, raw: bytes) -> dict:
        from google.cloud import aiplatform_v1 as v1
        from google.cloud.aiplatform.v1.schema.predict import instance, params
        from google.protobuf import json_format

        req = _parse(raw, v1.PredictRequest)
        ep = srv.endpoints.get(endpoint)
        if ep is None or not ep["deployed"]:
            raise Refused(400, "FAILED_PRECONDITION", "no model deployed")
        model = srv.models[next(iter(ep["deployed"].values()))]
        try:
            p = json_format.ParseDict(json_format.MessageToDict(req.parameters),
                                      params.ImageClassificationPredictionParams.pb()(), ignore_unknown_fields=False)
            instances = [json_format.ParseDict(json_format.MessageToDict(i),
                                               instance.ImageClassificationPredictionInstance.pb()(),
                                               ignore_unknown_fields=False) for i in req.instances]
        except json_format.ParseError as exc:
            raise Refused(400, "INVALID_ARGUMENT", str(exc)) from None
        out = []
        for inst in instances:
            data = base64.b64decode(inst.content)
            if len(data) > 1_500_000:
                raise Refused(400, "INVALID_ARGUMENT", "prediction images are at most 1.5 MB")
            d = np.sqrt(((model["means"] - _pixels(data)) ** 2).sum(axis=1))
            z = np.exp(-(d - d.min()) / max(d.std(), 1e-6))
            conf = z / z.sum()
            order = [k for k in np.argsort(-conf) if conf[k] >= p.confidence_threshold][: p.max_predictions or 10]
            out.append({"ids": [str(k) for k in order], "displayNames": [model["labels"][k] for k in order],
                        "confidences": [float(conf[k]) for k in order]})
        return {"predictions": out, "deployedModelId": next(iter(ep["deployed"]))}
