"""`platbench load TARGET`: an inference load test of any endpoint that speaks the `serve` contracts.

A warm-up, then N requests either closed-loop at concurrency C (the seed benchmark: 1,000 requests by
10 clients) or open-loop at a fixed rate (requests start on schedule whether or not earlier ones have
answered; latency is then counted from the scheduled start, so a server that falls behind shows its
queueing instead of hiding it — the "coordinated omission" correction).

What is reported: latency percentiles of the successful requests, requests/s, images/s and payload
MB/s (MB = 10^6 bytes of request bodies), errors by HTTP status and by connection failure (resets,
refusals, timeouts), and retries — with exponential backoff and full jitter, on connection failures and
429/502/503/504 — counted apart from the errors, which are the final outcomes. Every request is kept as
a sample (start, latency, status, error, attempts, server batch), so reports can compare distributions.

TARGET is an http(s) URL (a bare host:port means SageMaker's /invocations and /ping) or a platform
endpoint, `sagemaker:NAME` / `vertex:ENDPOINT_ID`, invoked through that platform's SDK
(platforms/bench/endpoint.py)."""
from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import platform as _platform
import random
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from platforms.core.settings import parse_pairs
from platforms.core.tracking import Tag
from platforms.core.transport import Payload, Reply, Target, Transport
from platforms.errors import UserError

SCHEMA = "platbench.load/1"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
CONNECTION_ERRORS = ("reset", "refused", "timeout", "connect", "other")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
PERCENTILES = (50, 90, 95, 99)
KIND_TAG = Tag.KIND  # "platbench.kind": load | batch_inference | endpoint (training runs carry none)

# MLflow metric name → key in the report's "summary" (latency keys under summary["latency_ms"])
MLFLOW_METRICS = {
    "load_requests_per_s": "requests_per_s", "load_images_per_s": "images_per_s", "load_mb_per_s": "mb_per_s",
    "load_error_rate": "error_rate", "load_seconds": "seconds", "load_ok": "ok", "load_failed": "failed",
    "load_retries": "retries",
    "load_latency_p50_ms": "p50", "load_latency_p90_ms": "p90", "load_latency_p95_ms": "p95",
    "load_latency_p99_ms": "p99", "load_latency_mean_ms": "mean", "load_latency_max_ms": "max",
}
# what a run in which every request failed still records (it measured no latency or throughput)
FAILURE_METRICS = ("load_error_rate", "load_seconds", "load_ok", "load_failed", "load_retries")


# ------------------------------------------------------------------------------------------ payloads
def synthetic_images(n: int = 32, size: int = 32, seed: int = 0) -> list[bytes]:
    """Random RGB PNGs of CIFAR-10's size, for when no images are given."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def image_files(paths: list[Path], limit: Optional[int] = None) -> list[Path]:
    """PNG/JPEG files named directly or found (sorted, recursively) under the folders named."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p} does not exist")
    if not files:
        raise UserError(f"no .png/.jpg images in {', '.join(map(str, paths))}")
    return files[:limit] if limit else files


def make_payloads(images: list[tuple[bytes, str]], fmt: str, batch: int) -> list[Payload]:
    """(bytes, content type) images → request bodies: one raw image each (`image`), or Vertex-style
    JSON with `batch` base64 instances each (`json`)."""
    if fmt == "image":
        if batch != 1:
            raise UserError("--batch needs --format json (a raw image body holds one image)")
        return [Payload(body, ctype, 1) for body, ctype in images]
    if fmt != "json":
        raise UserError(f"--format must be image or json, not {fmt!r}")
    if batch < 1:
        raise UserError("--batch must be at least 1")
    payloads = []
    for start in range(0, len(images), batch):
        group = [images[(start + j) % len(images)][0] for j in range(batch)]
        doc = {"instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in group]}
        payloads.append(Payload(json.dumps(doc).encode(), "application/json", batch))
    return payloads


def load_images(paths: list[Path], limit: int = 256) -> list[tuple[bytes, str]]:
    if not paths:
        return [(b, "image/png") for b in synthetic_images()]
    return [(f.read_bytes(), CONTENT_TYPES[f.suffix.lower()]) for f in image_files(paths, limit)]


# ------------------------------------------------------------------------------------------ targets
def parse_target(text: str, health_path: Optional[str] = None) -> Target:
    """`http://host:port[/path]`, `host:port`, or `PLATFORM:ENDPOINT` for a platform with endpoints."""
    text = text.strip()
    from platforms.core import registry

    kind, sep, name = text.partition(":")
    if sep and kind in registry.with_endpoints():
        if not name:
            raise UserError(f"{kind}: needs an endpoint name, e.g. {kind}:my-endpoint")
        return Target(kind=kind, name=name)
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"target {text!r} is not an http(s) URL or PLATFORM:ENDPOINT (platforms with endpoints: "
                        f"{', '.join(registry.with_endpoints())})")
    try:
        parts.port
    except ValueError:
        raise UserError(f"target {text!r} has a bad port") from None
    path = parts.path if parts.path not in ("", "/") else "/invocations"
    predict = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if health_path is None:
        # SageMaker's pair; on a Vertex route the health check is a GET on the same path by default.
        health_path = "/ping" if path == "/invocations" else path
    health = urlunsplit((parts.scheme, parts.netloc, health_path, "", ""))
    return Target(kind="http", url=predict, health_url=health)


# ------------------------------------------------------------------------------------------ transport
class HttpTransport:
    """aiohttp with a pool of `concurrency` keep-alive connections."""

    def __init__(self, target: Target, concurrency: int, timeout_s: float, headers: dict[str, str] | None = None):
        self.target, self.concurrency, self.timeout_s = target, concurrency, timeout_s
        self.headers = {"Accept": "application/json", **(headers or {})}
        self._session = None

    async def _open(self):
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                             ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                                  auto_decompress=False)
        return self._session

    async def send(self, payload: Payload) -> Reply:
        session = await self._open()
        headers = {**self.headers, "Content-Type": payload.content_type}
        async with session.post(self.target.url, data=payload.body, headers=headers) as resp:
            body = await resp.read()
            return Reply(resp.status, body, {k.lower(): v for k, v in resp.headers.items()})

    async def ready(self, timeout_s: float) -> bool:
        """Poll the health URL until it answers 200 (bounded by timeout_s)."""
        import aiohttp

        session = await self._open()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with session.get(self.target.health_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_transport(target: Target, concurrency: int, timeout_s: float, headers: dict[str, str] | None = None,
                   settings: dict[str, str] | None = None) -> Transport:
    if target.kind == "http":
        return HttpTransport(target, concurrency, timeout_s, headers)
    from platforms.core import registry

    return registry.endpoint_class(target.kind).attach(target.name, settings or {}, concurrency, timeout_s)


def classify(exc: BaseException) -> str:
    """A failed attempt's connection-level kind: reset | refused | timeout | connect | other."""
    import errno

    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a core dependency
        aiohttp = None
    if isinstance(exc, asyncio.TimeoutError) or (aiohttp and isinstance(exc, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = getattr(exc, "os_error", None)
            return "refused" if isinstance(err, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED else "connect"
        if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            return "reset"
        if isinstance(exc, aiohttp.ClientOSError):
            if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                return "reset"
            return "connect"
    kind = getattr(exc, "platbench_kind", None)  # SDK transports tag their exceptions
    return kind if kind in CONNECTION_ERRORS else "other"


# ------------------------------------------------------------------------------------------ running
@dataclass
class LoadSettings:
    requests: int = 1000
    concurrency: int = 10
    rate: Optional[float] = None          # requests/s, open loop; None: closed loop at `concurrency`
    warmup: int = 20
    timeout_s: float = 60.0               # SageMaker's limit for one invocation
    retries: int = 2
    backoff_s: float = 0.05               # base of the exponential backoff
    backoff_cap_s: float = 2.0
    verify: bool = True                   # a 2xx must carry {"predictions": [...]} with one per image
    wait_ready_s: float = 0.0             # poll the health route first, at most this long
    probe: bool = False                   # one request first; a target that answers nothing is a UserError


@dataclass
class Sample:
    start_s: float        # when the request was due, from the start of the measured run
    latency_ms: float     # from then until its final answer (retries and backoff included)
    status: Optional[int]  # the final HTTP status; None when no answer came
    error: Optional[str]  # None (ok) | "http" | "bad_response" | reset | refused | timeout | connect | other
    attempts: int
    sent: int             # request body bytes
    images: int
    batch: Optional[int]  # the server's X-Platbench-Batch: images in the forward pass that served it


@dataclass
class RunData:
    samples: list[Sample]
    seconds: float
    retry_reasons: dict[str, int]
    first_headers: dict[str, str]
    warmup: dict[str, Any] = field(default_factory=dict)


def _verify(reply: Reply, images: int) -> bool:
    try:
        doc = json.loads(reply.body)
        preds = doc.get("predictions") if isinstance(doc, dict) else None
        return isinstance(preds, list) and len(preds) == images
    except ValueError:
        return False


class _Runner:
    def __init__(self, transport: Transport, payloads: list[Payload], s: LoadSettings,
                 progress: Optional[Callable[[Sample], None]] = None):
        self.transport, self.payloads, self.s, self.progress = transport, payloads, s, progress
        self.retry_reasons: dict[str, int] = {}
        self.first_headers: dict[str, str] = {}
        self.replies: Optional[dict[int, bytes]] = None  # request index → body of its 2xx, when kept

    async def one(self, i: int, due: float, t0: float, sem: Optional[asyncio.Semaphore] = None) -> Sample:
        payload = self.payloads[i % len(self.payloads)]
        if sem is not None:
            await sem.acquire()
        try:
            attempts, status, error, batch = 0, None, None, None
            while True:
                attempts += 1
                try:
                    reply = await self.transport.send(payload)
                    status = reply.status
                    if 200 <= status < 300:
                        error = None if (not self.s.verify or _verify(reply, payload.images)) else "bad_response"
                        if error is None and not self.first_headers:
                            self.first_headers = reply.headers
                        if error is None and self.replies is not None:
                            self.replies[i] = reply.body
                        b = reply.headers.get("x-platbench-batch")
                        batch = int(b) if b and b.isdigit() else None
                    else:
                        error = "http"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — every failure is data here
                    status, error = None, classify(exc)
                retryable = error in CONNECTION_ERRORS or (error == "http" and status in RETRY_STATUSES)
                if not retryable or attempts > self.s.retries:
                    break
                reason = str(status) if error == "http" else error
                self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
                # exponential backoff with full jitter
                await asyncio.sleep(random.uniform(0, min(self.s.backoff_cap_s, self.s.backoff_s * 2 ** (attempts - 1))))
        finally:
            if sem is not None:
                sem.release()
        sample = Sample(start_s=due - t0, latency_ms=(time.perf_counter() - due) * 1000, status=status, error=error,
                        attempts=attempts, sent=len(payload.body), images=payload.images, batch=batch)
        if self.progress is not None:
            self.progress(sample)
        return sample

    async def closed_loop(self, n: int, concurrency: int, offset: int = 0) -> tuple[list[Sample], float]:
        counter = itertools.count()
        samples: list[Optional[Sample]] = [None] * n
        t0 = time.perf_counter()

        async def worker() -> None:
            while True:
                i = next(counter)
                if i >= n:
                    return
                samples[i] = await self.one(offset + i, time.perf_counter(), t0)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        return [s for s in samples if s is not None], time.perf_counter() - t0

    async def open_loop(self, n: int, rate: float, max_in_flight: int, offset: int = 0) -> tuple[list[Sample], float]:
        sem = asyncio.Semaphore(max_in_flight)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(offset + i, due, t0, sem)))
        samples = await asyncio.gather(*tasks)
        return list(samples), time.perf_counter() - t0


async def run_load_async(transport: Transport, payloads: list[Payload], s: LoadSettings,
                         progress: Optional[Callable[[Sample], None]] = None) -> RunData:
    if not payloads:
        raise UserError("nothing to send: no payloads")
    # a platform's transport carries its documented request limit (max_payload_bytes): a body over it is
    # refused here, before anything is sent, not counted as failed requests
    limit = getattr(transport, "max_payload_bytes", None)
    biggest = max(len(p.body) for p in payloads)
    if limit and biggest > limit:
        raise UserError(f"a request body of {biggest} bytes exceeds this endpoint's limit of {limit} bytes "
                        f"({getattr(transport, 'payload_limit_source', 'the platform')}): use a smaller --batch")
    if s.wait_ready_s > 0 and not await transport.ready(s.wait_ready_s):
        raise UserError(f"the target did not answer its health check with 200 within {s.wait_ready_s:g} s")
    runner = _Runner(transport, payloads, s)
    # one request first: a target that answers nothing (no server, a name that does not resolve) is an
    # error to report, not a run of connection failures to record and compare
    if s.probe:
        probe = await runner.one(0, time.perf_counter(), time.perf_counter())
        if probe.error in CONNECTION_ERRORS:
            raise UserError(f"the target answered nothing ({probe.error}, {probe.attempts} attempts): is it serving?")
    warm: dict[str, Any] = {"requests": 0, "errors": 0}
    if s.warmup > 0:
        warm_samples, warm_s = await runner.closed_loop(s.warmup, s.concurrency)
        warm = {"requests": len(warm_samples), "errors": sum(1 for x in warm_samples if x.error), "seconds": warm_s}
    runner.retry_reasons = {}
    runner.progress = progress
    if s.rate:
        samples, seconds = await runner.open_loop(s.requests, s.rate, s.concurrency, offset=s.warmup)
    else:
        samples, seconds = await runner.closed_loop(s.requests, s.concurrency, offset=s.warmup)
    return RunData(samples, seconds, runner.retry_reasons, runner.first_headers, warm)


def check_settings(s: LoadSettings) -> None:
    if s.requests < 1:
        raise UserError("--requests must be at least 1")
    if s.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    if s.rate is not None and s.rate <= 0:
        raise UserError("--rate must be a positive number of requests per second")
    if s.warmup < 0 or s.retries < 0 or s.timeout_s <= 0:
        raise UserError("--warmup and --retries must be 0 or more, --timeout positive")


def run_load(target: Target, payloads: list[Payload], s: LoadSettings, headers: dict[str, str] | None = None,
             progress: Optional[Callable[[Sample], None]] = None, settings: dict[str, str] | None = None) -> RunData:
    check_settings(s)

    async def main() -> RunData:
        transport = make_transport(target, s.concurrency, s.timeout_s, headers, settings)
        try:
            return await run_load_async(transport, payloads, s, progress)
        finally:
            await transport.close()

    return asyncio.run(main())


# ------------------------------------------------------------------------------------------ report
def latency_summary(values_ms: list[float]) -> dict[str, Optional[float]]:
    if not values_ms:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None, "min": None, "max": None, "stdev": None}
    a = np.asarray(values_ms, dtype=np.float64)
    out = {f"p{p}": float(np.percentile(a, p)) for p in PERCENTILES}
    return out | {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()), "stdev": float(a.std())}


def summarize(data: RunData) -> dict[str, Any]:
    ok = [x for x in data.samples if x.error is None]
    failed = [x for x in data.samples if x.error is not None]
    by_status: dict[str, int] = {}
    connection = {k: 0 for k in CONNECTION_ERRORS}
    bad_response = 0
    for x in failed:
        if x.error == "http":
            by_status[str(x.status)] = by_status.get(str(x.status), 0) + 1
        elif x.error == "bad_response":
            bad_response += 1
        else:
            connection[x.error] += 1
    seconds = max(data.seconds, 1e-9)
    sent_ok = sum(x.sent for x in ok)
    batches = [x.batch for x in ok if x.batch]
    n = len(data.samples)
    return {
        "summary": {
            "requests": n, "ok": len(ok), "failed": len(failed), "error_rate": len(failed) / n if n else 0.0,
            "seconds": data.seconds, "requests_per_s": len(ok) / seconds,
            "images_per_s": sum(x.images for x in ok) / seconds, "mb_per_s": sent_ok / 1e6 / seconds,
            "payload_mb": sent_ok / 1e6, "retries": sum(data.retry_reasons.values()),
            "latency_ms": latency_summary([x.latency_ms for x in ok]),
        },
        "errors": {"by_status": dict(sorted(by_status.items())), "connection": connection,
                   "resets": connection["reset"], "bad_response": bad_response},
        "retries": {"total": sum(data.retry_reasons.values()), "by_reason": dict(sorted(data.retry_reasons.items())),
                    "requests_retried": sum(1 for x in data.samples if x.attempts > 1),
                    "recovered": sum(1 for x in ok if x.attempts > 1)},
        "server_batch": {"mean": float(np.mean(batches)) if batches else None,
                         "max": max(batches) if batches else None},
    }


def platform_block(target: Target, headers: dict[str, str], model: Optional[str] = None,
                   image_digest: Optional[str] = None, settings: dict[str, str] | None = None) -> dict[str, Any]:
    """Who measured what: the client machine, the server software, the model and the image."""
    try:
        import aiohttp
        client_lib = f"aiohttp {aiohttp.__version__}"
    except ImportError:  # pragma: no cover
        client_lib = None
    from platforms.core.tracking import code_commit

    return {
        "client": {"host": socket.gethostname(), "os": _platform.platform(), "python": _platform.python_version(),
                   "cpu_count": os.cpu_count(), "library": client_lib, "platbench_commit": code_commit()},
        "server": {"kind": target.kind, "target": target.describe(), "software": headers.get("server"),
                   **({"settings": settings} if settings else {})},
        "model": model or headers.get("x-platbench-model"),
        "image_digest": image_digest or headers.get("x-platbench-image-digest"),
    }


def build_report(target: Target, data: RunData, s: LoadSettings, payloads: list[Payload], fmt: str,
                 model: Optional[str] = None, image_digest: Optional[str] = None,
                 settings: dict[str, str] | None = None, started_at: Optional[str] = None) -> dict[str, Any]:
    rounded = [round(x.latency_ms, 3) for x in data.samples]
    return {
        "schema": SCHEMA,
        "target": target.describe(),
        "started_at": started_at or datetime.now(timezone.utc).isoformat(),
        "settings": {**asdict(s), "format": fmt, "images_per_request": payloads[0].images,
                     "distinct_payloads": len(payloads), "mean_payload_bytes": float(np.mean([len(p.body) for p in payloads]))},
        **summarize(data),
        "warmup": data.warmup,
        "platform": platform_block(target, data.first_headers, model, image_digest, settings),
        "samples": {
            "start_s": [round(x.start_s, 6) for x in data.samples],
            "latency_ms": rounded,
            "status": [x.status for x in data.samples],
            "error": [x.error for x in data.samples],
            "attempts": [x.attempts for x in data.samples],
            "server_batch": [x.batch for x in data.samples],
        },
    }


def log_to_mlflow(report: dict[str, Any], platform_name: str, run_name: Optional[str] = None) -> str:
    """One MLflow run per load test: settings as params, the summary as metrics, the whole report
    (every sample) as the artifact load.json. Returns the run id."""
    import tempfile

    from platforms.core import tracking

    summary = report["summary"]
    flat = {**{k: v for k, v in summary.items() if not isinstance(v, dict)}, **summary["latency_ms"]}
    st = report["settings"]
    params = {k: st.get(k) for k in ("requests", "concurrency", "rate", "warmup", "timeout_s", "retries", "format",
                                     "images_per_request")}
    params["target"] = report["target"]
    tags = {tracking.Tag.PLATFORM: platform_name, tracking.Tag.MODEL: report["platform"].get("model"),
            tracking.Tag.IMAGE_DIGEST: report["platform"].get("image_digest"), KIND_TAG: "load"}
    every_request_failed = report["summary"]["ok"] == 0
    with tracking.tracked_run(run_name or f"load-{platform_name}", params, tags) as run:
        # a run in which every request failed measured no latency: recorded as failed, with its error
        # counts but no latency or throughput figures, so no comparison can pick it up
        run.metrics({name: flat.get(key) for name, key in MLFLOW_METRICS.items()
                     if not every_request_failed or name in FAILURE_METRICS})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "load.json"
            path.write_text(json.dumps(report))
            run.client.log_artifact(run.run_id, str(path))
        run.tags({tracking.Tag.STATUS: "failed" if every_request_failed else "finished"})
        run.end("FAILED" if every_request_failed else "FINISHED")
        return run.run_id


def table(report: dict[str, Any]):
    """The human summary (rich Table)."""
    from rich.table import Table

    s, e, r = report["summary"], report["errors"], report["retries"]
    lat = s["latency_ms"]
    st = report["settings"]
    mode = f"{st['rate']:g} req/s open loop (≤{st['concurrency']} in flight)" if st["rate"] else f"concurrency {st['concurrency']}"
    t = Table(title=f"load {report['target']} — {s['requests']} requests, {mode}", show_header=False)
    t.add_column(style="bold")
    t.add_column()

    def ms(v):
        return "-" if v is None else f"{v:.2f} ms"

    t.add_row("ok / failed", f"{s['ok']} / {s['failed']}  (error rate {s['error_rate']:.2%})")
    t.add_row("latency p50 / p90", f"{ms(lat['p50'])} / {ms(lat['p90'])}")
    t.add_row("latency p95 / p99", f"{ms(lat['p95'])} / {ms(lat['p99'])}")
    t.add_row("latency mean / max", f"{ms(lat['mean'])} / {ms(lat['max'])}")
    t.add_row("throughput", f"{s['requests_per_s']:.1f} req/s, {s['images_per_s']:.1f} images/s, {s['mb_per_s']:.3f} MB/s")
    t.add_row("errors by status", ", ".join(f"{k}: {v}" for k, v in e["by_status"].items()) or "none")
    conn = {k: v for k, v in e["connection"].items() if v}
    t.add_row("connection errors", ", ".join(f"{k}: {v}" for k, v in conn.items()) or "none")
    if e["bad_response"]:
        t.add_row("bad responses", str(e["bad_response"]))
    t.add_row("retries", f"{r['total']} ({', '.join(f'{k}: {v}' for k, v in r['by_reason'].items()) or 'none'}); "
                         f"{r['recovered']} requests recovered")
    if report["server_batch"]["mean"]:
        t.add_row("server batch", f"mean {report['server_batch']['mean']:.1f}, max {report['server_batch']['max']}")
    p = report["platform"]
    t.add_row("server / model", f"{p['server'].get('software') or '-'} / {p.get('model') or '-'}")
    return t


# ------------------------------------------------------------------------------------------ CLI
def default_platform_name(target: Target) -> str:
    if target.kind != "http":
        return target.kind
    host = urlsplit(target.url or "").hostname or ""
    return "local" if host in ("localhost", "::1") or host.startswith("127.") else "url"


def cli_main(target: str, requests: int, concurrency: int, rate: Optional[float], warmup: int, data: list[Path],
             fmt: str, batch: int, timeout: float, retries: int, max_error_rate: Optional[float], wait_ready: float,
             health_path: Optional[str], header: list[str], set_: list[str], model: Optional[str],
             image_digest: Optional[str], as_json: bool, out: Optional[Path], track: bool,
             platform_name: Optional[str], console) -> int:
    """`platbench load`: returns the exit code (1 when --max-error-rate is exceeded)."""
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise UserError("--max-error-rate is a fraction from 0 to 1, e.g. 0.01")
    tgt = parse_target(target, health_path)
    settings = parse_pairs(set_, "--set")
    if settings and tgt.kind == "http":
        raise UserError("--set applies to PLATFORM:ENDPOINT targets only, not to a URL")
    s = LoadSettings(requests=requests, concurrency=concurrency, rate=rate, warmup=warmup, timeout_s=timeout,
                     retries=retries, wait_ready_s=wait_ready, probe=True)
    check_settings(s)
    payloads = make_payloads(load_images(data), fmt, batch)
    started = datetime.now(timezone.utc).isoformat()
    progress_cm = None
    callback = None
    if not as_json and console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress_cm = Progress(TextColumn("load"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                               console=console, transient=True)
        task = progress_cm.add_task("requests", total=requests)

        def callback(sample: Sample) -> None:
            progress_cm.advance(task)

        progress_cm.start()
    try:
        data_run = run_load(tgt, payloads, s, parse_pairs(header, "--header"), callback, settings)
    except KeyboardInterrupt:
        import sys

        print("platbench: load interrupted (Ctrl-C); nothing recorded", file=sys.stderr)
        return 130
    finally:
        if progress_cm is not None:
            progress_cm.stop()
    report = build_report(tgt, data_run, s, payloads, fmt, model, image_digest, settings or None, started)
    name = platform_name or default_platform_name(tgt)
    report["platform"]["name"] = name
    if track:
        report["mlflow_run_id"] = log_to_mlflow(report, name)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return_code = 0
    if max_error_rate is not None and report["summary"]["error_rate"] > max_error_rate:
        return_code = 1
    every_request_failed = report["summary"]["ok"] == 0
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        from rich.console import Console

        Console(width=max(console.width, 100)).print(table(report))
        if track:
            print(f"MLflow run {report['mlflow_run_id']}")
    if every_request_failed:
        import sys

        print(f"platbench: error: every one of {report['summary']['requests']} requests failed "
              f"({_failure_text(report)}); recorded as a failed run", file=sys.stderr)
        return 1
    if return_code:
        import sys

        print(f"platbench: error rate {report['summary']['error_rate']:.2%} exceeds --max-error-rate "
              f"{max_error_rate:.2%}", file=sys.stderr)
    return return_code


def _failure_text(report: dict[str, Any]) -> str:
    e = report["errors"]
    parts = [f"{n}× HTTP {status}" for status, n in sorted(e.get("by_status", {}).items())]
    parts += [f"{n}× {kind}" for kind, n in e.get("connection", {}).items() if n]
    if e.get("bad_response"):
        parts.append(f"{e['bad_response']}× bad response")
    return ", ".join(parts) or "no answers"
