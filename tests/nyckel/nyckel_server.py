"""A loopback Nyckel API for the tests: the routes the `nyckel` package and platforms/nyckel call, with the
request shapes of https://www.nyckel.com/docs (the package ships no schema to validate against, so the
documented fields are checked here: unknown or missing ones are a 400, as are samples whose data is not a
decodable image data URI or whose label does not exist).

It listens on port 5000 of a random 127.x.y.z address: the package's paginated GETs split URLs on ".com" or
":5000" (nyckel/request_utils.py, SequentialGetter: ":5000" is its "running locally" case), so no other
port can serve them; a random loopback address keeps parallel test runs apart.

What it trains is nothing of substance and says so: after samples change it is "training" for
`train_seconds`, then serves a nearest-class-mean classifier on 16×16 RGB pixels, confidence a softmax of
negative distances. It needs at least 2 labels with 2 samples each (https://www.nyckel.com/docs/concepts/
samples/: "as few as 2 samples per label"); before that an invoke is refused (409, the loopback's choice: the
docs do not say which status). Faults: `fail(route, status_or_reset, times)` on invoke for the load tool, queued in order; "skip" lets
calls through untouched."""
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
FUNCTION_FIELDS = {"input", "output", "name", "description"}
LABEL_FIELDS = {"name", "description", "metadata"}
SAMPLE_FIELDS = {"data", "externalId", "annotation", "sampleSets"}


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
        self.calls: list[tuple[str, str]] = []
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
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:5000"

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, p in self.calls if m == method and p.endswith(suffix))

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

    def _json(self, allowed: set, required: set, raw: bytes | None = None) -> dict:
        try:
            doc = json.loads((self._body() if raw is None else raw) or b"{}")
        except ValueError:
            raise Refused(400, "body is not JSON")
        if not isinstance(doc, dict) or set(doc) - allowed or required - set(doc):
            raise Refused(400, f"fields must be {sorted(required)} plus optional {sorted(allowed - required)}")
        return doc

    def _function(self, fid: str) -> dict:
        f = self.server.functions.get(fid.split("_")[-1])
        if f is None:
            raise Refused(404, f"no function {fid}")
        return f

    def _route(self, method: str):
        srv: NyckelServer = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0].rstrip("/")
        srv.calls.append((method, path))
        if method == "POST" and path == "/connect/token":
            form = parse_qs(self._body().decode())
            if form.get("grant_type") != ["client_credentials"] or form.get("client_id") != [CLIENT_ID] \
                    or form.get("client_secret") != [CLIENT_SECRET]:
                return self._send(400, {"error": "invalid_client"})
            token = secrets.token_hex(16)
            srv.tokens.add(token)
            return self._send(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in srv.tokens:
            return self._send(401, {"error": "unauthorized"})
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
                label = (doc.get("annotation") or {}).get("labelName")
                if label is not None and label not in f["labels"].values():
                    raise Refused(400, f"no label named {label!r}: create it first")
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
                return self._send(int(fault), {"error": "rate limited" if fault == "429" else "server error"})
            doc = self._json({"data"}, {"data"}, raw)
            if f["model"] is None:
                raise Refused(409, "the function has no trained model yet")
            label, confidence = srv.predict(f, _pixels(doc["data"]))
            lid = next(k for k, v in f["labels"].items() if v == label)
            return self._send(200, {"labelName": label, "labelId": lid, "confidence": confidence})
        raise Refused(404, f"no route {method} {path}")

    def _describe(self, f: dict) -> dict:
        return {"id": f["id"], "name": f["name"], "input": "Image", "output": "Classification"}

    def _handle(self, method: str):
        try:
            self._route(method)
        except Refused as exc:
            self._send(exc.status, {"error": str(exc)})

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")
