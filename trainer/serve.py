"""`python -m trainer serve` — the image's `serve`: one HTTP server for the trained model that speaks
both platforms' inference-container contracts at once, from the same model artifact.

Built on Starlette + uvicorn (uvloop and httptools when installed), one process: requests are parsed on
the event loop and queued; one inference thread takes whatever is queued (up to --max-batch images;
while it holds fewer than the previous batch did, it waits up to --batch-wait-ms for more), decodes and
predicts them as one batch, and answers each request. Under concurrent load that turns many one-image
requests into a few batched forward passes; a lone client never waits for company.

SageMaker AI, bring-your-own inference container
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html
  - started as `docker run IMAGE serve`; the model.tar.gz is unpacked into /opt/ml/model first;
  - a web server on port 8080 answering `GET /ping` (200, empty body is enough; SageMaker times a ping
    out after 2 s) and `POST /invocations` (answer within 60 s);
  - endpoint updates and scale-in send SIGTERM, then SIGKILL 30 s later → uvicorn stops accepting,
    finishes the requests in flight, and the process exits 0.
  https://docs.aws.amazon.com/sagemaker/latest/dg/inference-pipeline-real-time.html
  - SAGEMAKER_BIND_TO_PORT moves the port (inference pipelines, multi-container endpoints); the image
    needs LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true for SageMaker to set it.
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
  - InvokeEndpoint's Body is at most 6 MB (6291456 bytes): the default --max-bytes.
  - CustomAttributes arrive as the X-Amzn-SageMaker-Custom-Attributes header (`top_k=N` there is honoured),
    and the same response header is the one InvokeEndpoint returns to the caller: it carries model=,
    classes=, image_digest= and batch= (images in the forward pass that served the request).

Vertex AI, custom prediction container
  https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements
  - listen on 0.0.0.0 at AIP_HTTP_PORT (default 8080); answer health checks on AIP_HEALTH_ROUTE and
    predictions on AIP_PREDICT_ROUTE (both default to /v1/endpoints/ENDPOINT/deployedModels/MODEL:predict,
    the same path: GET is the health check, POST the prediction);
  - AIP_STORAGE_URI names the model artifacts (a gs:// URI, copied here on start; a local path is read in place).
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints/predict
  - the body is {"instances": [...], "parameters": {...}} and the answer {"predictions": [...]}.
    A binary instance is {"b64": "<base64>"} by Vertex's convention.
  - a public endpoint accepts requests up to 1.5 MB ("the payload limit size (currently, 1.5MB)",
    https://cloud.google.com/sdk/gcloud/reference/ai/endpoints/predict): the default --max-bytes when
    AIP_PREDICT_ROUTE says the container runs on Vertex (custom-container-requirements page above).

Azure Machine Learning, managed online endpoint with a custom container
  https://learn.microsoft.com/azure/machine-learning/how-to-deploy-custom-container
  - the deployment's environment names the port and routes (inference_config): platbench's are port 8080,
    liveness and readiness GET /ping (200 once the model is loaded), scoring POST /invocations — the
    SageMaker pair, so no Azure-specific route is needed; the endpoint forwards the scoring request's body;
  - the registered model is mounted read-only at AZUREML_MODEL_DIR (a folder model one level below it).

Requests (every predict route, every contract):
  - Content-Type image/png | image/jpeg | application/x-image | application/octet-stream: one PNG/JPEG image;
  - Content-Type application/json: {"instances": [{"b64": ...} | "<base64>" | [[[r, g, b], ...]] | {"pixels": ...}],
    "parameters": {"top_k": N}}.
Answer: {"predictions": [{"class", "index", "probability", "top_k": [{"class", "index", "probability"}, ...]}]}.
Errors: a JSON {"error": "<what was wrong and what is accepted>"} with 400 (not an image, bad JSON),
406 (Accept), 413 (body or image too large, too many instances), 415 (Content-Type), 503 (model still
loading); the server keeps serving.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Optional

from trainer import environment
from trainer.errors import ConfigError
from trainer.inference import (DEFAULT_TOP_K, MAX_PIXELS, ImageError, ImageTooLarge, ModelError, decode_image,
                               decode_instance, default_threads, read_card)

log = logging.getLogger("platbench.serve")

DEFAULT_PORT = 8080                     # SageMaker's fixed port; Vertex's default containerPort
SAGEMAKER_MAX_BODY = 6 * 1024 * 1024    # InvokeEndpoint Body: "Maximum length of 6291456"
VERTEX_MAX_BODY = 1_500_000             # Vertex AI public endpoints: 1.5 MB per request (module docstring)
SAGEMAKER_PING = "/ping"
SAGEMAKER_INVOCATIONS = "/invocations"
GRACEFUL_SHUTDOWN_S = 25                # SageMaker sends SIGKILL 30 s after SIGTERM
DRAIN_FACTOR = 4                        # an oversize body up to 4× the limit is read (and dropped) so the
                                        # client gets the 413 instead of a reset connection
JSON_PARSE_IN_THREAD = 256 * 1024       # parse larger JSON bodies off the event loop

IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "application/x-image", "application/octet-stream"}
JSON_TYPES = {"application/json"}
ACCEPTED_TYPES_TEXT = "image/png, image/jpeg, application/x-image (one image) or application/json ({\"instances\": [...]})"


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ------------------------------------------------------------------------------------------ settings
@dataclass
class ServeSettings:
    model_dir: Path
    host: str = "127.0.0.1"  # this machine only; a container entry (docker/serve) opens it with --host 0.0.0.0
    port: int = DEFAULT_PORT
    health_routes: list[str] = field(default_factory=lambda: [SAGEMAKER_PING])
    predict_routes: list[str] = field(default_factory=lambda: [SAGEMAKER_INVOCATIONS])
    max_batch: int = 64
    batch_wait_ms: float = 2.0
    max_bytes: int = SAGEMAKER_MAX_BODY
    max_instances: int = 1024
    max_pixels: int = MAX_PIXELS
    device: str = "auto"
    runtime: str = "torch"  # or "onnx": the model exported to ONNX, run by onnxruntime on the CPU (trainer/onnx_export.py)
    threads: Optional[int] = None
    image_digest: Optional[str] = None
    access_log: bool = False
    cleanup_dir: Optional[Path] = None  # a temporary copy of gs:// artifacts, removed on exit


def _env_num(env: Mapping[str, str], name: str, kind=int):
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer serve",
                                description="Serve a trained platbench model over HTTP (SageMaker and Vertex AI contracts).")
    p.add_argument("--model-dir", type=Path,
                   help="model.pt + model.json (default: PLATBENCH_MODEL_DIR, AIP_STORAGE_URI, AZUREML_MODEL_DIR, "
                        "/opt/ml/model)")
    p.add_argument("--host", help="bind address (default 127.0.0.1, or PLATBENCH_SERVE_HOST; the image's "
                   "`serve` passes 0.0.0.0, which the platforms need)")
    p.add_argument("--port", type=int, help="default AIP_HTTP_PORT, SAGEMAKER_BIND_TO_PORT, else 8080")
    p.add_argument("--max-batch", type=int, help="most images per forward pass (default 64; PLATBENCH_SERVE_MAX_BATCH)")
    p.add_argument("--batch-wait-ms", type=float,
                   help="how long a batch waits for more requests after the first (default 2; PLATBENCH_SERVE_BATCH_WAIT_MS)")
    p.add_argument("--max-bytes", type=int, help="largest request body (default 6 MB, SageMaker's limit; PLATBENCH_SERVE_MAX_BYTES)")
    p.add_argument("--max-instances", type=int, help="most instances in one JSON request (default 1024)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto (PLATBENCH_SERVE_DEVICE)")
    p.add_argument("--runtime", choices=["torch", "onnx"],
                   help="torch (default) or onnx: the model exported to ONNX and run by onnxruntime on the CPU, same "
                        "routes and answers (needs the onnx extra; PLATBENCH_SERVE_RUNTIME)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: half the CPUs; PLATBENCH_SERVE_THREADS)")
    p.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs throughput)")
    return p


def resolve_model_dir(flag: Optional[Path], env: Mapping[str, str]) -> tuple[Path, Optional[Path]]:
    """(model dir, temporary dir to remove on exit). Order: flag, PLATBENCH_MODEL_DIR, AIP_STORAGE_URI,
    AZUREML_MODEL_DIR, SageMaker's /opt/ml/model (under PLATBENCH_OPT_ML when set)."""
    if flag is not None:
        return flag, None
    if env.get("PLATBENCH_MODEL_DIR"):
        return Path(env["PLATBENCH_MODEL_DIR"]), None
    uri = env.get("AIP_STORAGE_URI")
    if uri:
        if uri.startswith("gs://"):
            tmp = _download_gcs(uri)
            return tmp, tmp
        return Path(uri), None
    if env.get("AZUREML_MODEL_DIR"):
        return azureml_model_dir(Path(env["AZUREML_MODEL_DIR"])), None
    sagemaker_model = environment.sagemaker_root(env) / "model"
    if (sagemaker_model / "model.json").is_file():
        return sagemaker_model, None
    raise ConfigError(f"no model: pass --model-dir DIR, or set PLATBENCH_MODEL_DIR, AIP_STORAGE_URI or AZUREML_MODEL_DIR, "
                      f"or unpack the model into {sagemaker_model}")


def azureml_model_dir(root: Path) -> Path:
    """Azure ML mounts the registered model at AZUREML_MODEL_DIR (/var/azureml-app/azureml-models/NAME/VERSION);
    a model registered from a folder keeps that folder's name below it. The model card is at the root or in
    its one subfolder."""
    if (root / "model.json").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/model.json"))
    if len(found) != 1:
        raise ConfigError(f"AZUREML_MODEL_DIR {root} holds {'no' if not found else len(found)} model.json "
                          "(expected one, at its root or in the registered folder below it)")
    return found[0]


def _inside(dest: Path, rel: str, name: str) -> Path:
    """Where object `rel` goes under `dest`; object names are any text (`a/../../x`, `/etc/x` after the
    prefix), so refuse any that would land outside the folder."""
    parts = PurePosixPath(rel).parts
    target = dest.joinpath(*parts) if parts else dest
    if (PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel
            or not target.resolve().is_relative_to(dest.resolve()) or target.resolve() == dest.resolve()):
        raise ConfigError(f"{name}: object name would be written outside the model folder; refusing it")
    return target


def _download_gcs(uri: str) -> Path:
    """Vertex AI hands the container a gs:// URI in AIP_STORAGE_URI and does not mount it: copy the
    model files down (needs google-cloud-storage, the `vertex` extra, in the image)."""
    import tempfile

    try:
        from google.cloud import storage
    except ImportError:
        raise ConfigError(f"AIP_STORAGE_URI is {uri}, and reading gs:// needs google-cloud-storage "
                          f"(pip install 'platbench[vertex]')") from None
    bucket_name, _, prefix = uri[len("gs://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    dest = Path(tempfile.mkdtemp(prefix="platbench-model-"))
    client = storage.Client()
    count = 0
    try:
        for blob in client.list_blobs(bucket_name, prefix=prefix):
            rel = blob.name[len(prefix):]
            if not rel or rel.endswith("/"):
                continue
            target = _inside(dest, rel, f"gs://{bucket_name}/{blob.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            count += 1
        if count == 0:
            raise ConfigError(f"AIP_STORAGE_URI {uri} holds no files")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    print(f"copied {count} model files from {uri} to {dest}", file=sys.stderr)
    return dest


def platform_max_body(env: Mapping[str, str]) -> int:
    """The request limit of the platform this container serves on: Vertex AI (AIP_PREDICT_ROUTE is set) or
    SageMaker's, the larger, elsewhere."""
    return VERTEX_MAX_BODY if env.get("AIP_PREDICT_ROUTE") else SAGEMAKER_MAX_BODY


def settings_from(argv: list[str], env: Mapping[str, str] | None = None) -> ServeSettings:
    env = os.environ if env is None else env
    ns = parser().parse_args(argv)
    model_dir, cleanup = resolve_model_dir(ns.model_dir, env)
    port = ns.port or _env_num(env, "AIP_HTTP_PORT") or _env_num(env, "SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT
    health = [SAGEMAKER_PING]
    predict = [SAGEMAKER_INVOCATIONS]
    for name, routes in (("AIP_HEALTH_ROUTE", health), ("AIP_PREDICT_ROUTE", predict)):
        route = env.get(name)
        if route:
            if not route.startswith("/"):
                raise ConfigError(f"{name}={route!r} must be a path starting with /")
            if route not in routes:
                routes.append(route)
    s = ServeSettings(
        model_dir=model_dir, cleanup_dir=cleanup,
        host=ns.host or env.get("PLATBENCH_SERVE_HOST") or ServeSettings.host, port=port,
        health_routes=health, predict_routes=predict,
        max_batch=ns.max_batch or _env_num(env, "PLATBENCH_SERVE_MAX_BATCH") or 64,
        batch_wait_ms=ns.batch_wait_ms if ns.batch_wait_ms is not None else (
            _env_num(env, "PLATBENCH_SERVE_BATCH_WAIT_MS", float) if env.get("PLATBENCH_SERVE_BATCH_WAIT_MS") else 2.0),
        max_bytes=ns.max_bytes or _env_num(env, "PLATBENCH_SERVE_MAX_BYTES") or platform_max_body(env),
        max_instances=ns.max_instances or 1024,
        device=ns.device or env.get("PLATBENCH_SERVE_DEVICE") or "auto",
        runtime=ns.runtime or env.get("PLATBENCH_SERVE_RUNTIME") or "torch",
        threads=ns.threads or _env_num(env, "PLATBENCH_SERVE_THREADS"),
        image_digest=env.get("PLATBENCH_IMAGE_DIGEST") or None,
        access_log=ns.access_log,
    )
    if s.runtime not in ("torch", "onnx"):
        raise ConfigError(f"PLATBENCH_SERVE_RUNTIME={s.runtime!r}: the runtime is torch or onnx")
    if s.runtime == "onnx":
        from trainer.onnx_export import require

        require()  # the extra missing: refused before the port opens
        if s.device == "cuda":
            raise ConfigError("--runtime onnx serves on the CPU (onnxruntime's CPU provider); drop --device cuda")
    if not 1 <= s.port <= 65535:
        raise ConfigError(f"port {s.port} is not in 1–65535")
    if s.max_batch < 1 or s.batch_wait_ms < 0 or s.max_bytes < 1 or s.max_instances < 1:
        raise ConfigError("--max-batch, --max-bytes and --max-instances must be at least 1, --batch-wait-ms at least 0")
    return s


# ------------------------------------------------------------------------------------------ batching
class _Item:
    __slots__ = ("source", "top_k", "future")

    def __init__(self, source: Any, top_k: int, future: asyncio.Future):
        self.source, self.top_k, self.future = source, top_k, future


class Batcher:
    """Requests → queue → one inference thread that decodes and predicts whatever has queued up."""

    def __init__(self, model, max_batch: int, wait_s: float, max_pixels: int):
        self.model, self.max_batch, self.wait_s, self.max_pixels = model, max_batch, wait_s, max_pixels
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="platbench-infer")
        self.images = 0
        self.batches = 0
        self.largest = 0
        self._last_size = 1
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="platbench-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, sources: list, top_k: int, instances: bool = False) -> tuple[list[dict], int]:
        """Predict each source (PNG/JPEG bytes or a JSON instance); returns (predictions, the largest
        batch they were part of). Raises the first failing source's ImageError, naming its index when
        the sources are a JSON request's instances."""
        loop = asyncio.get_running_loop()
        items = [_Item(src, top_k, loop.create_future()) for src in sources]
        for item in items:
            self.queue.put_nowait(item)
        results = await asyncio.gather(*(i.future for i in items), return_exceptions=True)
        for index, res in enumerate(results):
            if isinstance(res, BaseException):
                if isinstance(res, ImageError) and instances:
                    raise type(res)(f"instance {index}: {res}")
                raise res
        return [r[0] for r in results], max(r[1] for r in results)

    async def _collect(self) -> list[_Item]:
        """The next batch: whatever has queued up (at most max_batch). It waits for more — at most the
        batch window — only while it is smaller than the previous batch: a lone client (previous batch
        of 1) never waits, and once as many requests as last time have arrived the batch goes at once."""
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        expected = min(self.max_batch, self._last_size)
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if len(batch) >= expected or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        self._last_size = len(batch)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            try:
                outcomes = await loop.run_in_executor(self.executor, self._infer, batch)
            except Exception as exc:  # a model failure fails this batch's requests (500), not the server
                log.exception("inference failed for a batch of %d", len(batch))
                outcomes = [exc] * len(batch)
            for item, outcome in zip(batch, outcomes):
                if item.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result((outcome, len(batch)))

    def _infer(self, batch: list[_Item]) -> list:
        """In the inference thread: decode each source, predict the decodable ones as one batch."""
        import numpy as np

        size = self.model.image_size
        outcomes: list = [None] * len(batch)
        arrays, where = [], []
        for i, item in enumerate(batch):
            try:
                if isinstance(item.source, (bytes, bytearray)):
                    arrays.append(decode_image(bytes(item.source), size, self.max_pixels))
                else:
                    arrays.append(decode_instance(item.source, size, self.max_pixels))
                where.append(i)
            except ImageError as exc:
                outcomes[i] = exc
        if arrays:
            probs = self.model.probabilities(np.stack(arrays))
            for row, i in zip(probs, where):
                outcomes[i] = self.model.describe(row[None, :], batch[i].top_k)[0]
        self.images += len(arrays)
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        return outcomes


# ------------------------------------------------------------------------------------------ requests
def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _check_accept(accept: Optional[str]) -> None:
    if not accept:
        return
    types = {_media_type(part) for part in accept.split(",")}
    if types & {"*/*", "application/*", "application/json", ""}:
        return
    raise HTTPError(406, f"this server answers application/json only; the request's Accept is {accept!r}")


async def read_body(request, limit: int) -> bytes:
    """The body, at most `limit` bytes: 413 beyond it. A declared or streamed oversize body up to
    DRAIN_FACTOR × limit is read and dropped first, so the client reads the 413 rather than a reset."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_n = int(declared)
        except ValueError:
            raise HTTPError(400, f"Content-Length {declared!r} is not a number") from None
        if declared_n > limit:
            if declared_n <= DRAIN_FACTOR * limit:
                async for _ in request.stream():
                    pass
            why = {SAGEMAKER_MAX_BODY: " (SageMaker's InvokeEndpoint limit)",
                   VERTEX_MAX_BODY: " (Vertex AI's limit for a public endpoint)"}.get(limit, "")
            raise HTTPError(413, f"request body is {declared_n} bytes; this endpoint accepts at most {limit} bytes"
                                 f"{why}; send fewer or smaller images per request")
    chunks, total, over = [], 0, False
    async for chunk in request.stream():  # one pass: a stream can be iterated only once
        total += len(chunk)
        if over:
            if total > DRAIN_FACTOR * limit:
                break
            continue
        if total > limit:
            over, chunks = True, []
            continue
        chunks.append(chunk)
    if over:
        raise HTTPError(413, f"request body exceeds {limit} bytes; send fewer or smaller images per request")
    return b"".join(chunks)


def _top_k(value: Any, num_classes: int, where: str) -> int:
    if value is None or value == "":
        return min(DEFAULT_TOP_K, num_classes)
    try:
        k = int(value)
        if isinstance(value, float) and value != k:
            raise ValueError
    except (TypeError, ValueError):
        raise HTTPError(400, f"{where} top_k must be a whole number, got {value!r}") from None
    if not 1 <= k <= num_classes:
        raise HTTPError(400, f"{where} top_k must be between 1 and {num_classes} (the model's classes), got {k}")
    return k


def _custom_attribute(headers, key: str) -> Optional[str]:
    """SageMaker's CustomAttributes header: `k=v` pairs separated by , or ;."""
    raw = headers.get("x-amzn-sagemaker-custom-attributes", "")
    for part in raw.replace(";", ",").split(","):
        k, sep, v = part.partition("=")
        if sep and k.strip() == key:
            return v.strip()
    return None


def _instances(doc: Any, max_instances: int) -> tuple[list, Any]:
    if not isinstance(doc, dict) or "instances" not in doc:
        raise HTTPError(400, 'a JSON body must be an object {"instances": [...]} (Vertex AI\'s predict format), '
                             'each instance {"b64": "<base64 PNG/JPEG>"}, a base64 string or an H×W×3 pixel array')
    instances = doc["instances"]
    if not isinstance(instances, list) or not instances:
        raise HTTPError(400, '"instances" must be a non-empty list')
    if len(instances) > max_instances:
        raise HTTPError(413, f"{len(instances)} instances in one request; at most {max_instances} are accepted")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise HTTPError(400, '"parameters" must be an object, e.g. {"top_k": 3}')
    return instances, params.get("top_k")


# ------------------------------------------------------------------------------------------ the app
class ServerState:
    def __init__(self, settings: ServeSettings, card: dict):
        self.settings, self.card = settings, card
        self.batcher: Optional[Batcher] = None
        self.failure: Optional[str] = None
        self.server = None  # the uvicorn.Server, so a failed model load can stop it
        self.started = time.monotonic()
        self.headers = {"x-platbench-model": f"{card['preset']}; classes={card['num_classes']}; "
                                             f"image_size={card['image_size']}; "
                                             f"dataset={str(card.get('dataset_fingerprint', ''))[:16]}"}
        if settings.image_digest:
            self.headers["x-platbench-image-digest"] = settings.image_digest
        if settings.runtime != "torch":
            self.headers["x-platbench-runtime"] = settings.runtime
        self.custom_attributes = f"model={card['preset']},classes={card['num_classes']}" + (
            f",image_digest={settings.image_digest}" if settings.image_digest else "")


def _load_in_background(state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    """Load and warm the model in a thread: the port answers at once (SageMaker wants connections
    accepted within 250 ms; Vertex's liveness probe is a TCP connect) and /ping says 503 until ready."""
    s = state.settings

    def work() -> None:
        try:
            import torch

            from trainer.inference import load_model, warm_up

            torch.set_num_threads(s.threads or default_threads())
            t0 = time.perf_counter()
            if s.runtime == "onnx":
                from trainer.onnx_export import load_onnx_model

                model = load_onnx_model(s.model_dir, s.threads or default_threads())
            else:
                model = load_model(s.model_dir, s.device)
            warm_up(model, (1, s.max_batch))
            seconds = time.perf_counter() - t0
            loop.call_soon_threadsafe(ready, model, seconds)
        except Exception as exc:  # noqa: BLE001 — any failure here means the server cannot serve
            loop.call_soon_threadsafe(failed, f"{type(exc).__name__}: {exc}" if not isinstance(exc, ModelError) else str(exc))

    def ready(model, seconds: float) -> None:
        batcher = Batcher(model, s.max_batch, s.batch_wait_ms / 1000.0, s.max_pixels)
        batcher.start()
        state.batcher = batcher
        log.info("model %s ready on %s in %.2f s (torch threads %s); health %s, predict %s", model.name,
                 model.device, seconds, _torch_threads(), ", ".join(s.health_routes), ", ".join(s.predict_routes))

    def failed(message: str) -> None:
        state.failure = message
        log.error("cannot load the model from %s: %s", s.model_dir, message)
        if state.server is not None:
            state.server.should_exit = True

    threading.Thread(target=work, name="platbench-load-model", daemon=True).start()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def build_app(state: ServerState):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    s = state.settings
    num_classes = int(state.card["num_classes"])

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=state.headers)

    async def health(request: Request) -> Response:
        if state.batcher is None:
            return error(503, state.failure or "model is loading")
        return Response(status_code=200, headers=state.headers)

    async def predict(request: Request) -> Response:
        if state.batcher is None:
            return error(503, state.failure or "model is loading; retry when the health route answers 200")
        try:
            _check_accept(request.headers.get("accept"))
            ctype = _media_type(request.headers.get("content-type", ""))
            if ctype not in IMAGE_TYPES and ctype not in JSON_TYPES:
                shown = f"Content-Type {ctype!r}" if ctype else "no Content-Type"
                raise HTTPError(415, f"unsupported {shown}; send {ACCEPTED_TYPES_TEXT}")
            body = await read_body(request, s.max_bytes)
            if not body:
                raise HTTPError(400, "empty request body; send one PNG/JPEG image or a JSON {\"instances\": [...]}")
            if ctype in JSON_TYPES:
                try:
                    doc = (await asyncio.to_thread(json.loads, body)) if len(body) > JSON_PARSE_IN_THREAD else json.loads(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise HTTPError(400, f"body is not valid JSON ({exc})") from None
                sources, k = _instances(doc, s.max_instances)
                top_k = _top_k(k, num_classes, '"parameters"')
            else:
                sources = [body]
                k = request.query_params.get("top_k") or _custom_attribute(request.headers, "top_k")
                top_k = _top_k(k, num_classes, "query/custom-attribute")
            predictions, batch = await state.batcher.submit(sources, top_k, instances=ctype in JSON_TYPES)
        except HTTPError as exc:
            return error(exc.status, exc.message)
        except ClientDisconnect:  # the client went away mid-body: nobody reads an answer
            return Response(status_code=400)
        except ImageTooLarge as exc:
            return error(413, str(exc))
        except ImageError as exc:
            prefix = "" if str(exc).startswith("instance ") else "request body: "
            return error(400, f"{prefix}{exc}; send a PNG or JPEG image")
        # SageMaker hands only this header of the container's back to InvokeEndpoint's caller (as CustomAttributes)
        return JSONResponse({"predictions": predictions},
                            headers={**state.headers, "x-platbench-batch": str(batch),
                                     "x-amzn-sagemaker-custom-attributes": f"{state.custom_attributes},batch={batch}"})

    routes = [Route(p, health, methods=["GET"]) for p in s.health_routes]
    routes += [Route(p, predict, methods=["POST"]) for p in s.predict_routes]
    known = ", ".join([f"GET {p}" for p in s.health_routes] + [f"POST {p}" for p in s.predict_routes])

    async def http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error(404, f"no route {request.method} {request.url.path}; this server answers {known}")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}; this server answers {known}")
        return error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @asynccontextmanager
    async def lifespan(app):
        _load_in_background(state, asyncio.get_running_loop())
        try:
            yield
        finally:
            if state.batcher is not None:
                b = state.batcher
                await b.stop()
                if b.batches:
                    log.info("served %d images in %d batches (mean %.1f, largest %d)", b.images, b.batches,
                             b.images / b.batches, b.largest)

    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={StarletteHTTPException: http_exception, Exception: server_error})


# ------------------------------------------------------------------------------------------ entry
def _stopped(signum, frame) -> None:
    """Runs when uvicorn re-raises SIGTERM after its graceful shutdown: the process then exits 0."""


def serve_main(argv: list[str]) -> int:
    import shutil

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        settings = settings_from(argv)
        card = read_card(settings.model_dir)
    except ConfigError as exc:  # ModelError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    state = ServerState(settings, card)
    app = build_app(state)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, access_log=settings.access_log,
                            log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                            lifespan="on", server_header=True, date_header=False)
    server = uvicorn.Server(config)
    state.server = server
    # uvicorn finishes the requests in flight on SIGTERM/SIGINT and then re-raises the signal under the
    # handler that was installed before it: a no-op here, so a stop by the platform is a clean exit 0.
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, _stopped)
    log.info("serving %s (%s classes) from %s on %s:%d", card["preset"], card["num_classes"], settings.model_dir,
             settings.host, settings.port)
    try:
        server.run()
    finally:
        if settings.cleanup_dir is not None:
            shutil.rmtree(settings.cleanup_dir, ignore_errors=True)
    if state.failure:
        print(f"error: cannot serve the model in {settings.model_dir}: {state.failure}", file=sys.stderr)
        return 1
    if not server.started:
        print(f"error: could not listen on {settings.host}:{settings.port}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0
