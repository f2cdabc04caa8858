"""A loopback Amazon Rekognition Custom Labels server for the tests (moto does not implement these calls).

It speaks the service's JSON protocol (POST /, X-Amz-Target: RekognitionService.<Operation>) and checks every
request body against botocore's own service model for rekognition: botocore's validator (types, required
members, minimums), then the patterns, maximum lengths and enums botocore leaves to the service
(rekognition_constraints.py), each refused with the service's ValidationException, so a request boto3 would
not send, or the real API would reject on shape, is refused here too. Images and Ground Truth
manifests are read from S3 (moto) with boto3, and the service's documented rules are applied: PNG/JPEG only,
at least 2 labels per classification dataset, at least 1 image per label, images of 64×64 to 4096×4096 px
for training, testing and detection (a smaller or larger one fails its dataset, or the DetectCustomLabels
call; the error code there is this server's choice, the page gives the sizes only)
(https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/limits.html); no DeleteProject while the
project still has models or datasets, no DeleteProjectVersion while the model runs, DetectCustomLabels only
on a RUNNING model.

What it trains is nothing of substance and says so: a nearest-class-mean classifier on 16×16 RGB pixels,
confidences a softmax of negative distances. Its timestamps are its own clock, as the real service's are
(a test may set how long that clock says a training took: `clock_train_seconds`).
Faults for the load tool: `fail(operation, code_or_reset, times)` answers the next calls with that error
(ThrottlingException …) or closes the connection without an answer; faults queue up in order, and "skip"
lets calls through untouched."""
from __future__ import annotations

import functools
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
from _services import Faults
from rekognition_constraints import report, violations

REGION, ACCOUNT = "us-east-1", "123456789012"
PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
MIN_SIDE, MAX_SIDE = 64, 4096   # pixels, width and height: training, testing and detection (limits.html)


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


@functools.cache
def _model():
    """botocore's Rekognition model, read once per process (a large JSON file; every server reads it alike)."""
    from botocore.session import get_session

    return get_session().get_service_model("rekognition")


def _features(data: bytes) -> np.ndarray:
    from PIL import Image

    if not (data.startswith(PNG) or data.startswith(JPEG)):
        raise ServiceError("InvalidImageFormatException", "Request has unsupported image format")
    img = Image.open(io.BytesIO(data))
    if not (MIN_SIDE <= min(img.size) and max(img.size) <= MAX_SIDE):
        raise ServiceError("InvalidParameterException", f"the image is {img.size[0]}×{img.size[1]} px; images must be "
                                                        f"{MIN_SIDE}×{MIN_SIDE} to {MAX_SIDE}×{MAX_SIDE} px")
    img = img.convert("RGB").resize((16, 16))
    return np.asarray(img, dtype=np.float64).ravel() / 255.0


class RekognitionServer(Faults, ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, train_seconds: float = 0.2):
        self.service_model = _model()
        from botocore.validate import ParamValidator

        self.validator = ParamValidator()
        self.projects: dict[str, dict] = {}      # arn → {name, datasets: {TYPE: arn}, versions: {name: arn}}
        self.datasets: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.faults: list[list] = []
        self.lock = threading.Lock()
        self.train_seconds = train_seconds       # the least a training takes (so it is seen in progress)
        # how long the service's clock says a training took (None: as long as it took here); its
        # CreationTimestamp → TrainingEndTimestamp, kept in `trainings` after the model is deleted
        self.clock_train_seconds: float | None = None
        self.trainings: list[tuple[float, float]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        # close() waits for the loop to look: every 0.05 s, not socketserver's 0.5 s, at each test's teardown
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def ops(self, name: str) -> list[dict]:
        return [body for op, body in self.calls if op == name]

    # ------------------------------------------------------------------ S3 through boto3 (moto)
    def _s3(self):
        import boto3

        return boto3.client("s3", region_name=REGION)

    def _read_s3(self, bucket: str, key: str) -> bytes:
        try:
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:  # noqa: BLE001 - what the service says for any unreadable object
            raise ServiceError("InvalidS3ObjectException", f"Unable to get object metadata from S3 s3://{bucket}/{key}")

    def _load_manifest(self, bucket: str, key: str) -> tuple[list, str]:
        """(entries [(label, features)], error or "") from a Ground Truth classification manifest."""
        entries = []
        for n, line in enumerate(self._read_s3(bucket, key).decode().splitlines(), 1):
            if not line.strip():
                continue
            doc = json.loads(line)
            meta_keys = [k for k in doc if k.endswith("-metadata")]
            if "source-ref" not in doc or len(meta_keys) != 1 or doc[meta_keys[0]].get("type") != \
                    "groundtruth/image-classification" or "class-name" not in doc[meta_keys[0]] \
                    or meta_keys[0][: -len("-metadata")] not in doc:
                return [], f"line {n}: not a Ground Truth image-classification entry"
            ref = urlsplit(doc["source-ref"])
            data = self._read_s3(ref.netloc, ref.path.lstrip("/"))
            if not (data.startswith(PNG) or data.startswith(JPEG)):
                return [], f"line {n}: {doc['source-ref']} is not a PNG or JPEG image"
            try:
                entries.append((doc[meta_keys[0]]["class-name"], _features(data)))
            except ServiceError as exc:
                return [], f"line {n}: {doc['source-ref']}: {exc}"
        return entries, ""

    # ------------------------------------------------------------------ operations
    def handle_op(self, op: str, p: dict) -> dict:
        now = time.time()
        if op == "CreateProject":
            arn = f"arn:aws:rekognition:{REGION}:{ACCOUNT}:project/{p['ProjectName']}/{int(now * 1000)}"
            if any(x["name"] == p["ProjectName"] for x in self.projects.values()):
                raise ServiceError("ResourceInUseException", f"project {p['ProjectName']} exists")
            self.projects[arn] = {"name": p["ProjectName"], "created": now, "datasets": {}, "versions": {}}
            return {"ProjectArn": arn}
        if op == "DescribeProjects":
            names = p.get("ProjectNames")
            return {"ProjectDescriptions": [
                {"ProjectArn": a, "CreationTimestamp": x["created"], "Status": "CREATED",
                 "Datasets": [{"DatasetArn": d, "DatasetType": t, "Status": self.datasets[d]["status"],
                               "CreationTimestamp": self.datasets[d]["created"]} for t, d in x["datasets"].items()]}
                for a, x in self.projects.items() if not names or x["name"] in names]}
        if op == "CreateDataset":
            project = self._project(p["ProjectArn"])
            if p["DatasetType"] in project["datasets"]:
                raise ServiceError("ResourceAlreadyExistsException", f"a {p['DatasetType']} dataset exists")
            obj = p.get("DatasetSource", {}).get("GroundTruthManifest", {}).get("S3Object")
            if not obj:
                raise ServiceError("InvalidParameterException", "DatasetSource needs a GroundTruthManifest here")
            entries, error = self._load_manifest(obj["Bucket"], obj["Name"])
            labels = sorted({label for label, _ in entries})
            if not error and len(labels) < 2:
                error = f"the dataset has {len(labels)} label(s); a classification dataset needs at least 2"
            arn = f"{p['ProjectArn'].rsplit('/', 1)[0]}/dataset/{p['DatasetType'].lower()}/{int(now * 1000)}"
            self.datasets[arn] = {"project": p["ProjectArn"], "type": p["DatasetType"], "entries": entries,
                                  "status": "CREATE_FAILED" if error else "CREATE_COMPLETE", "message": error,
                                  "created": now, "labels": labels}
            project["datasets"][p["DatasetType"]] = arn
            return {"DatasetArn": arn}
        if op == "DescribeDataset":
            d = self._dataset(p["DatasetArn"])
            return {"DatasetDescription": {
                "CreationTimestamp": d["created"], "LastUpdatedTimestamp": d["created"], "Status": d["status"],
                "StatusMessage": d["message"] or "The dataset was successfully created.",
                "DatasetStats": {"LabeledEntries": len(d["entries"]), "TotalEntries": len(d["entries"]),
                                 "TotalLabels": len(d["labels"]), "ErrorEntries": 0}}}
        if op == "CreateProjectVersion":
            project = self._project(p["ProjectArn"])
            if p["VersionName"] in project["versions"]:
                raise ServiceError("ResourceInUseException", f"version {p['VersionName']} exists")
            if "TRAIN" not in project["datasets"] or "TEST" not in project["datasets"]:
                raise ServiceError("InvalidParameterException", "the project needs a TRAIN and a TEST dataset")
            arn = f"{p['ProjectArn'].rsplit('/', 1)[0]}/version/{p['VersionName']}/{int(now * 1000)}"
            v = {"project": p["ProjectArn"], "name": p["VersionName"], "created": now, "status": "TRAINING_IN_PROGRESS",
                 "message": "", "output": p["OutputConfig"], "units": None}
            self.versions[arn] = v
            project["versions"][p["VersionName"]] = arn
            threading.Thread(target=self._train, args=(v, project), daemon=True).start()
            return {"ProjectVersionArn": arn}
        if op == "DescribeProjectVersions":
            project = self._project(p["ProjectArn"])
            names = p.get("VersionNames") or list(project["versions"])
            out = []
            for name in names:
                arn = project["versions"].get(name)
                if arn is None:
                    continue
                v = self.versions[arn]
                d = {"ProjectVersionArn": arn, "CreationTimestamp": v["created"], "Status": v["status"],
                     "StatusMessage": v["message"] or v["status"], "OutputConfig": v["output"]}
                if "ended" in v:
                    d.update(TrainingEndTimestamp=v["ended"], BillableTrainingTimeInSeconds=v["billed"],
                             EvaluationResult={"F1Score": v["f1"]})
                if v["units"]:
                    d["MinInferenceUnits"] = v["units"]
                out.append(d)
            return {"ProjectVersionDescriptions": out}
        if op == "StartProjectVersion":
            v = self._version(p["ProjectVersionArn"])
            if v["status"] not in ("TRAINING_COMPLETED", "STOPPED"):
                raise ServiceError("ResourceInUseException", f"the model is {v['status']}")
            v.update(status="STARTING", units=p["MinInferenceUnits"], starting=now)
            return {"Status": "STARTING"}
        if op == "DetectCustomLabels":
            v = self._version(p["ProjectVersionArn"])
            if v["status"] != "RUNNING":
                raise ServiceError("ResourceNotReadyException", f"the model is {v['status']}, not RUNNING")
            import base64

            x = _features(base64.b64decode(p["Image"]["Bytes"]))
            d = np.sqrt(((v["means"] - x) ** 2).sum(axis=1))
            z = np.exp(-(d - d.min()) / max(d.std(), 1e-6))
            conf = 100 * z / z.sum()
            labels = [{"Name": name, "Confidence": float(c)} for name, c in zip(v["labels"], conf)
                      if c >= p.get("MinConfidence", 50)]  # default threshold stands in for the assumed one
            labels.sort(key=lambda label: -label["Confidence"])
            return {"CustomLabels": labels[: p.get("MaxResults", len(labels))]}
        if op == "StopProjectVersion":
            v = self._version(p["ProjectVersionArn"])
            if v["status"] not in ("RUNNING", "STARTING"):
                raise ServiceError("ResourceInUseException", f"the model is {v['status']}")
            v["status"] = "STOPPING"
            return {"Status": "STOPPING"}
        if op == "DeleteProjectVersion":
            v = self._version(p["ProjectVersionArn"])
            if v["status"] in ("RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS"):
                raise ServiceError("ResourceInUseException", f"cannot delete a model that is {v['status']}")
            del self.versions[p["ProjectVersionArn"]]
            del self.projects[v["project"]]["versions"][v["name"]]
            return {"Status": "DELETING"}
        if op == "DeleteDataset":
            d = self._dataset(p["DatasetArn"])
            del self.datasets[p["DatasetArn"]]
            del self.projects[d["project"]]["datasets"][d["type"]]
            return {}
        if op == "DeleteProject":
            project = self._project(p["ProjectArn"])
            if project["versions"] or project["datasets"]:
                raise ServiceError("ResourceInUseException", "delete the project's models and datasets first")
            del self.projects[p["ProjectArn"]]
            return {"Status": "DELETING"}
        raise ServiceError("InvalidParameterException", f"{op} is not served by this loopback server")

    def _train(self, v: dict, project: dict) -> None:
        """Nearest class mean of the TRAIN dataset; F1 (macro) on the TEST dataset."""
        t0 = time.time()
        train = self.datasets[project["datasets"]["TRAIN"]]
        test = self.datasets[project["datasets"]["TEST"]]
        if train["status"] != "CREATE_COMPLETE":
            v.update(status="TRAINING_FAILED", message=f"the TRAIN dataset failed: {train['message']}")
            return
        labels = train["labels"]
        means = np.stack([np.mean([f for lab, f in train["entries"] if lab == name], axis=0) for name in labels])
        pred = [labels[int(np.argmin(((means - f) ** 2).sum(axis=1)))] for _, f in test["entries"]]
        truth = [lab for lab, _ in test["entries"]]
        f1s = []
        for name in labels:
            tp = sum(1 for t, q in zip(truth, pred) if t == q == name)
            fp = sum(1 for t, q in zip(truth, pred) if q == name and t != name)
            fn = sum(1 for t, q in zip(truth, pred) if t == name and q != name)
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        time.sleep(max(0.0, self.train_seconds - (time.time() - t0)))
        ended = time.time() if self.clock_train_seconds is None else v["created"] + self.clock_train_seconds
        self.trainings.append((v["created"], ended))
        v.update(means=means, labels=labels, f1=float(np.mean(f1s)), ended=ended,
                 billed=int(np.ceil(ended - v["created"])), status="TRAINING_COMPLETED")

    def advance(self, v: dict) -> None:
        """STARTING and STOPPING last until the model is next described, as a real start takes minutes."""
        if v["status"] == "STARTING":
            v["status"] = "RUNNING"
        elif v["status"] == "STOPPING":
            v["status"] = "STOPPED"

    def _project(self, arn):
        if arn not in self.projects:
            raise ServiceError("ResourceNotFoundException", f"no project {arn}")
        return self.projects[arn]

    def _dataset(self, arn):
        if arn not in self.datasets:
            raise ServiceError("ResourceNotFoundException", f"no dataset {arn}")
        return self.datasets[arn]

    def _version(self, arn):
        if arn not in self.versions:
            raise ServiceError("ResourceNotFoundException", f"no model version {arn}")
        return self.versions[arn]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc: dict, error: str | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "loopback")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        srv: RekognitionServer = self.server  # type: ignore[assignment]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        prefix = srv.service_model.metadata["targetPrefix"] + "."
        op = target[len(prefix):] if target.startswith(prefix) else ""
        if not op or op not in srv.service_model.operation_names:
            return self._send(400, {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"})
        params = json.loads(raw or b"{}")
        shape = srv.service_model.operation_model(op).input_shape
        checked = srv.validator.validate(params, shape)
        if checked.has_errors():
            return self._send(400, {"__type": "ValidationException", "message": checked.generate_report()})
        problems = violations(params, shape)
        if problems:
            return self._send(400, {"__type": "ValidationException", "message": report(problems)})
        with srv.lock:
            srv.calls.append((op, params))
        fault = srv.take_fault(op)
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault and fault != "skip":  # "skip": let this many calls through before the next fault
            return self._send(400, {"__type": fault, "message": "Rate exceeded"})
        try:
            with srv.lock:
                if op == "DescribeProjectVersions":
                    for arn in list(srv.projects.get(params["ProjectArn"], {}).get("versions", {}).values()):
                        srv.advance(srv.versions[arn])
                out = srv.handle_op(op, params) if op != "DetectCustomLabels" else None
            if op == "DetectCustomLabels":  # outside the lock: requests in flight at once, as on the service
                out = srv.handle_op(op, params)
        except ServiceError as exc:
            return self._send(exc.status, {"__type": exc.code, "message": str(exc)})
        self._send(200, out)
