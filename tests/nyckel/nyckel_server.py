"""A loopback Nyckel API for the tests: the routes the `nyckel` package and platforms/nyckel call, with the
request shapes of https://www.nyckel.com/docs/api/ (the package ships no schema to validate against, so the
documented fields are checked here, each with its JSON type: unknown, missing or mistyped ones are a 400).

What it refuses, as Nyckel does:
- a JSON body not sent as application/json: image data travels "as a data URI inside an application/json
  request" (https://www.nyckel.com/docs/api/overview/data-types/), so another media type is a 415;
- a sample or invoke whose data is not a decodable PNG/JPEG image data URI (same page);
- a function other than Image → Classification (the only kind served here);
- a label without a non-empty string name (WritableLabel, https://www.nyckel.com/docs/api/operations/
  post-label/), or one that exists (409);
- a sample annotation that is not an Annotation object of labelId and/or labelName
  (https://www.nyckel.com/docs/api/operations/put-annotation/), or that names a label that does not exist.
Every error answers `{"message": ...}`: "All error responses have the same response schema"
(https://www.nyckel.com/docs, "Error responses"); the token endpoint answers OAuth's `{"error": ...}`.

It listens on port 5000 of a random 127.x.y.z address: the package's paginated GETs split URLs on ".com" or
":5000" (nyckel/request_utils.py, SequentialGetter: ":5000" is its "running locally" case), so no other
port can serve them; a random loopback address keeps parallel test runs apart.

What it trains is nothing of substance and says so: after samples change it is "training" for
`train_seconds`, then serves a nearest-class-mean classifier on 16×16 RGB pixels, confidence a softmax of
negative distances. It needs at least 2 labels with 2 samples each (https://www.nyckel.com/docs/concepts/
samples/: "as few as 2 samples per label"); before that an invoke is refused (409, the loopback's choice: the
docs do not say which status). Faults: `fail(route, status_or_reset, times)` on invoke for the load tool,
queued in order; "skip" lets calls through untouched. `calls` keeps (method, path, time received) and
`trained_at` the times models became servable, so a test can order platbench's clock against the server's."""
from __future__ import annotations

import base64
import io
import json
import random
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
from _services import Faults
PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"


def _text(v) -> bool:
    return isinstance(v, str)


def _text_or_null(v) -> bool:
    return v is None or isinstance(v, str)


def _annotation(v) -> bool:
    """An Annotation: labelId and/or labelName, nothing else (null: no annotation)."""
    return v is None or (isinstance(v, dict) and v.keys() <= {"labelId", "labelName"}
                         and all(_text_or_null(x) for x in v.values()) and any(x for x in v.values()))


# each body's fields: (JSON type check, what it must be); the first set of each pair is required
STRING, OPTIONAL = (_text, "a string"), (_text_or_null, "a string or null")
FUNCTION_FIELDS = {"input": STRING, "output": STRING, "name": OPTIONAL, "description": OPTIONAL}
LABEL_FIELDS = {"name": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
                "description": OPTIONAL,
                "metadata": (lambda v: v is None or isinstance(v, dict) and all(map(_text, v.values())),
                             "an object of strings or null")}
SAMPLE_FIELDS = {"data": STRING, "externalId": OPTIONAL,
                 "annotation": (_annotation, "an Annotation object of labelId and/or labelName, or null"),
                 "sampleSets": (lambda v: v is None or isinstance(v, list) and all(map(_text, v)),
                                "a list of strings or null")}
INVOKE_FIELDS = {"data": STRING}


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _pixels(data_uri: str) -> np.ndarray:
    from PIL import Image

    if not isinstance(data_uri, str) or not data_uri.startswith("data:image") or ";base64," not in data_uri:
        raise Refused(400, "data must be an image data URI or URL")
    raw = base64.b64decode(data_uri.split(";base64,", 1)[1])
    if not (raw.startswith(PNG) or raw.startswith(JPEG)):
        raise Refused(400, "unsupported image format")
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB").resize((16, 16)), dtype=np.float64).ravel() / 255


class NyckelServer(Faults, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, train_seconds: float = 0.1):
        self.functions: dict[str, dict] = {}
        self.tokens: set[str] = set()
        self.calls: list[tuple[str, str, float]] = []
        self.trained_at: list[float] = []
        self.faults: list[list] = []
        self.lock = threading.Lock()
        self.train_seconds = train_seconds
        for _ in range(20):
            host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
            try:
                super().__init__((host, 5000), _Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free 127.x.y.z:5000 for the loopback Nyckel server")
        # close() waits for the loop to look: every 0.05 s, not socketserver's 0.5 s, at each test's teardown
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:5000"

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, p, _ in self.calls if m == method and p.endswith(suffix))

    def first(self, method: str, suffix: str, after: float = 0.0) -> float:
        """When the first such call after `after` came (time.time())."""
        return min(t for m, p, t in self.calls if m == method and p.endswith(suffix) and t > after)

    # ------------------------------------------------------------------ training
    def changed(self, f: dict) -> None:
        f["version"] += 1
        f["training"] = True
        threading.Thread(target=self._train, args=(f, f["version"]), daemon=True).start()

    def _train(self, f: dict, version: int) -> None:
        time.sleep(self.train_seconds)
        with self.lock:
            if f["version"] != version:
                return  # newer samples arrived: that training supersedes this one
            by_label: dict[str, list] = {}
            for s in f["samples"].values():
                by_label.setdefault(s["label"], []).append(s["x"])
            ready = {k: v for k, v in by_label.items() if len(v) >= 2}
            if len(ready) >= 2:
                f["model"] = (sorted(ready), np.stack([np.mean(ready[k], axis=0) for k in sorted(ready)]))
                f["predicted"] = len(f["samples"])
                self.trained_at.append(time.time())
            f["training"] = False

    def predict(self, f: dict, x: np.ndarray) -> tuple[str, float]:
        labels, means = f["model"]
        d = np.sqrt(((means - x) ** 2).sum(axis=1))
        z = np.exp(-(d - d.min()) / max(d.std(), 1e-6))
        k = int(np.argmax(z))
        return labels[k], float(z[k] / z.sum())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, fields: dict, required: set, raw: bytes | None = None) -> dict:
        raw = self._body() if raw is None else raw
        media = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise Refused(415, f"a JSON body is sent as application/json, not {media or 'no Content-Type'}")
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            raise Refused(400, "body is not JSON")
        if not isinstance(doc, dict) or set(doc) - set(fields) or required - set(doc):
            raise Refused(400, f"fields must be {sorted(required)} plus optional {sorted(set(fields) - required)}")
        for name, value in doc.items():
            valid, what = fields[name]
            if not valid(value):
                raise Refused(400, f"{name} must be {what}")
        return doc

    def _function(self, fid: str) -> dict:
        f = self.server.functions.get(fid.split("_")[-1])
        if f is None:
            raise Refused(404, f"no function {fid}")
        return f

    def _route(self, method: str):
        srv: NyckelServer = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0].rstrip("/")
        srv.calls.append((method, path, time.time()))
        if method == "POST" and path == "/connect/token":
            form = parse_qs(self._body().decode())
            if form.get("grant_type") != ["client_credentials"] or form.get("client_id") != [CLIENT_ID] \
                    or form.get("client_secret") != [CLIENT_SECRET]:
                return self._send(400, {"error": "invalid_client"})
            token = secrets.token_hex(16)
            srv.tokens.add(token)
            return self._send(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in srv.tokens:
            return self._send(401, {"message": "unauthorized"})
        parts = path.strip("/").split("/")  # v1|v0.9, functions, [id, [sub, [id]]]
        if parts[:2] not in (["v1", "functions"], ["v0.9", "functions"]):
            raise Refused(404, f"no route {path}")
        with srv.lock:
            if len(parts) == 2:
                if method == "POST":
                    doc = self._json(FUNCTION_FIELDS, {"input", "output"})
                    if doc["input"] != "Image" or doc["output"] != "Classification":
                        raise Refused(400, "this server serves Image → Classification functions")
                    fid = secrets.token_hex(6)
                    srv.functions[fid] = {"id": f"function_{fid}", "name": doc.get("name", "NewFunction"),
                                          "labels": {}, "samples": {}, "version": 0, "training": False,
                                          "model": None, "predicted": 0}
                    return self._send(200, self._describe(srv.functions[fid]))
                return self._send(200, [self._describe(f) for f in srv.functions.values()])
            f = self._function(parts[2])
            sub = parts[3] if len(parts) > 3 else None
            if parts[0] == "v0.9":
                if sub == "metrics":
                    counts: dict[str, int] = {}
                    for s in f["samples"].values():
                        counts[s["label"]] = counts.get(s["label"], 0) + 1
                    return self._send(200, {"sampleCount": len(f["samples"]), "predictionCount": f["predicted"],
                                            "annotatedLabelCounts": counts, "isTraining": f["training"]})
                return self._send(200, {"state": "Browsing" if f["model"] is not None else "Annotating"})
            if sub is None:
                if method == "DELETE":
                    del srv.functions[f["id"].split("_")[-1]]
                    return self._send(200, {})
                return self._send(200, self._describe(f))
            if sub == "labels" and method == "POST":
                doc = self._json(LABEL_FIELDS, {"name"})
                if doc["name"] in f["labels"].values():
                    raise Refused(409, f"label {doc['name']} exists")
                lid = f"label_{secrets.token_hex(6)}"
                f["labels"][lid] = doc["name"]
                return self._send(200, {"id": lid, "name": doc["name"]})
            if sub == "labels":
                return self._send(200, [{"id": k, "name": v} for k, v in f["labels"].items()])
            if sub == "samples" and method == "POST":
                doc = self._json(SAMPLE_FIELDS, {"data"})
                label = self._label(f, doc.get("annotation") or {})
                sid = f"sample_{secrets.token_hex(6)}"
                f["samples"][sid] = {"label": label, "x": _pixels(doc["data"])}
                srv.changed(f)
                return self._send(200, {"id": sid})
        if sub == "invoke" and method == "POST":
            raw = self._body()  # read before any fault: an unread body would corrupt the kept-alive connection
            fault = srv.take_fault("invoke")
            if fault == "reset":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            if fault and fault != "skip":  # "skip": let this many calls through before the next fault
                return self._send(int(fault), {"message": "rate limited" if fault == "429" else "server error"})
            doc = self._json(INVOKE_FIELDS, {"data"}, raw)
            if f["model"] is None:
                raise Refused(409, "the function has no trained model yet")
            label, confidence = srv.predict(f, _pixels(doc["data"]))
            lid = next(k for k, v in f["labels"].items() if v == label)
            return self._send(200, {"labelName": label, "labelId": lid, "confidence": confidence})
        raise Refused(404, f"no route {method} {path}")

    @staticmethod
    def _label(f: dict, annotation: dict) -> str | None:
        """The label an annotation names (by id, by name, or both alike); None when there is none."""
        lid = annotation.get("labelId")
        by_id = f["labels"].get(f"label_{lid.split('_')[-1]}") if lid else None  # the prefix is optional
        name = annotation.get("labelName")
        if lid and by_id is None:
            raise Refused(400, f"no label with id {annotation['labelId']!r}")
        if name is not None and name not in f["labels"].values():
            raise Refused(400, f"no label named {name!r}: create it first")
        if by_id is not None and name is not None and by_id != name:
            raise Refused(400, f"label {annotation['labelId']!r} is {by_id!r}, not {name!r}")
        return by_id or name

    def _describe(self, f: dict) -> dict:
        return {"id": f["id"], "name": f["name"], "input": "Image", "output": "Classification"}

    def _handle(self, method: str):
        try:
            self._route(method)
        except Refused as exc:
            self._send(exc.status, {"message": str(exc)})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")
