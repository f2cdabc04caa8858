"""A load run's statistics and record: latency percentiles of the successful requests, requests/s, images/s
and payload MB/s (MB = 10^6 bytes of request bodies), errors by HTTP status and by connection failure, retries
by reason; and the report document (schema platbench.load/1) that keeps every sample, so reports can compare
distributions."""
from __future__ import annotations

import os
import platform as _platform
import socket
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from platforms.core.load_runner import CONNECTION_ERRORS, LoadSettings, RunData
from platforms.core.transport import Payload, Target

SCHEMA = "platbench.load/1"
PERCENTILES = (50, 90, 95, 99)

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
