"""Batch inference over a folder of images, measured in seconds per MiB (2^20 bytes) of image files (the
figure the AWS-vs-Azure study reported, in the unit of every transfer figure), either in-process from a model directory (`--model-dir`) or through an
endpoint (`--endpoint URL | sagemaker:NAME | vertex:ENDPOINT`) with the load tool's client.

Every PNG/JPEG under the folder is predicted once, in sorted order. When a file's parent folder is named
after a class (the dataset layout train/<class>/, test/<class>/), that is its label and accuracy is
reported: in-process, parent folders named like one of the model's classes; through an endpoint, where
the class list is not known, the parent folders when every image sits in one of two or more subfolders.
Model loading is timed apart: seconds per MiB covers reading, decoding and predicting."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from platforms.core import registry
from platforms.errors import UserError
from platforms.bench.load_payloads import image_files, make_payloads
from platforms.bench.loadtest import KIND_TAG, parse_target
from platforms.core.transport import CONTENT_TYPES

SCHEMA = "platbench.batch_inference/1"
MIB = 2 ** 20
# MLflow name → report field. The report's fields keep their names (mb: MiB); the MLflow names say MiB, so a
# run from before, whose batch_seconds_per_mb counted 10^6 bytes, is never read as MiB
MLFLOW_METRICS = {"batch_seconds_per_mib": "seconds_per_mb", "batch_images_per_s": "images_per_s",
                  "batch_mib_per_s": "mb_per_s", "batch_seconds": "seconds", "batch_images": "images",
                  "batch_mib": "mb", "batch_errors": "errors", "batch_accuracy": "accuracy",
                  "batch_model_load_seconds": "model_load_seconds"}


@dataclass
class BatchReport:
    mode: str                     # local | endpoint
    source: str                   # the folder
    target: str                   # model dir or endpoint
    images: int
    mb: float                     # MiB (2^20 bytes) of image files
    seconds: float
    seconds_per_mb: Optional[float]
    images_per_s: float
    mb_per_s: float
    errors: int
    labelled: int
    accuracy: Optional[float]
    model_load_seconds: Optional[float] = None
    phases: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    model: Optional[str] = None
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        return asdict(self)


def _report(mode: str, folder: Path, target: str, files: list[Path], sizes: list[int], seconds: float,
            rows: list[dict], **extra) -> BatchReport:
    mb = sum(sizes) / MIB
    labelled = [r for r in rows if r.get("label") is not None and "class" in r]
    correct = sum(1 for r in labelled if r["class"] == r["label"])
    errors = sum(1 for r in rows if "error" in r)
    return BatchReport(mode=mode, source=str(folder), target=target, images=len(files), mb=mb, seconds=seconds,
                       seconds_per_mb=seconds / mb if mb else None, images_per_s=len(files) / max(seconds, 1e-9),
                       mb_per_s=mb / max(seconds, 1e-9), errors=errors, labelled=len(labelled),
                       accuracy=correct / len(labelled) if labelled else None, **extra)


def _label(path: Path, classes: set[str]) -> Optional[str]:
    return path.parent.name if path.parent.name in classes else None


def _layout_classes(files: list[Path], folder: Path) -> set[str]:
    """Through an endpoint the model's class list is unknown: when every image sits in a subfolder and
    there are at least two of them (the class-folder layout), the subfolder names are the labels."""
    parents = {f.parent for f in files}
    if folder in parents or len({p.name for p in parents}) < 2:
        return set()
    return {p.name for p in parents}


def run_local(folder: Path, model_dir: Path, batch_size: int = 256, device: str = "cpu",
              limit: Optional[int] = None, workers: int = 4, threads: Optional[int] = None) -> tuple[BatchReport, list[dict]]:
    """In-process: read and decode in threads (Pillow releases the GIL), predict in batches. The model
    is loaded and warmed up (first forward passes at both batch shapes) before the clock starts."""
    import numpy as np
    import torch

    from trainer.errors import ConfigError
    from trainer.inference import ImageError, decode_image, default_threads, load_model, warm_up

    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    files = image_files([folder], limit)
    t0 = time.perf_counter()
    torch.set_num_threads(threads or default_threads())
    try:
        model = load_model(model_dir, device)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    warm_up(model, {min(batch_size, len(files)), len(files) % batch_size or batch_size})
    load_s = time.perf_counter() - t0
    classes = set(model.classes)
    size = model.image_size
    rows: list[dict] = []
    sizes: list[int] = []
    phases = {"read_decode": 0.0, "predict": 0.0}

    def read_decode(path: Path):
        data = path.read_bytes()
        try:
            return len(data), decode_image(data, size), None
        except ImageError as exc:
            return len(data), None, str(exc)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i in range(0, len(files), batch_size):
            chunk = files[i:i + batch_size]
            t = time.perf_counter()
            decoded = list(pool.map(read_decode, chunk))
            phases["read_decode"] += time.perf_counter() - t
            good = [(p, arr) for p, (_, arr, _) in zip(chunk, decoded) if arr is not None]
            t = time.perf_counter()
            preds = model.predict(np.stack([a for _, a in good]), top_k=1) if good else []
            phases["predict"] += time.perf_counter() - t
            by_path = {p: pred for (p, _), pred in zip(good, preds)}
            for path, (n, _, err) in zip(chunk, decoded):
                sizes.append(n)
                row = {"path": str(path.relative_to(folder)), "label": _label(path, classes)}
                if err is not None:
                    row["error"] = err
                else:
                    row["class"], row["probability"] = by_path[path]["class"], by_path[path]["probability"]
                rows.append(row)
    seconds = time.perf_counter() - start
    report = _report(registry.this_machine(), folder, str(model_dir), files, sizes, seconds, rows,
                     model_load_seconds=load_s, phases=phases,
                     settings={"batch_size": batch_size, "device": str(model.device), "workers": workers,
                               "torch_threads": torch.get_num_threads()},
                     model=model.name)
    return report, rows


def run_endpoint(folder: Path, endpoint: Optional[str], concurrency: int = 4, fmt: str = "image", batch: int = 1,
                 timeout_s: float = 60.0, retries: int = 2, limit: Optional[int] = None,
                 settings: dict[str, str] | None = None, target=None,
                 transport_factory=None) -> tuple[BatchReport, list[dict]]:
    """Through an endpoint: every file sent once (or `batch` per JSON request) by `concurrency` clients.
    `endpoint` is parsed like `platbench load`'s TARGET; `target` + `transport_factory(concurrency,
    timeout_s)` instead let a deployment (platforms/bench/endpoint.py) hand in its own SDK transport."""
    from platforms.bench.loadtest import make_transport
    from platforms.core.load_runner import answer_each

    target = target or parse_target(endpoint)
    files = image_files([folder], limit)
    start = time.perf_counter()
    images = [(f.read_bytes(), CONTENT_TYPES[f.suffix.lower()]) for f in files]
    read_s = time.perf_counter() - start
    sizes = [len(b) for b, _ in images]
    payloads = make_payloads(images, fmt, batch)
    run, replies = answer_each(lambda: (transport_factory(concurrency, timeout_s) if transport_factory
                                        else make_transport(target, concurrency, timeout_s, None, settings)),
                               payloads, concurrency, timeout_s, retries)
    samples, headers = run.samples, run.first_headers
    seconds = time.perf_counter() - start
    preds: list[Optional[dict]] = [None] * len(files)
    errors: dict[int, str] = {}
    for i, sample in enumerate(samples):
        if i in replies:
            for j, pred in enumerate(json.loads(replies[i])["predictions"]):
                if i * batch + j < len(files):
                    preds[i * batch + j] = pred
        else:
            why = f"HTTP {sample.status}" if sample.error == "http" else sample.error
            for j in range(batch):
                errors[i * batch + j] = why
    classes = _layout_classes(files, folder)
    rows = []
    for k, path in enumerate(files):
        row = {"path": str(path.relative_to(folder)), "label": _label(path, classes)}
        if preds[k] is not None:
            row["class"], row["probability"] = preds[k]["class"], preds[k]["probability"]
        else:
            row["error"] = errors.get(k, "no prediction")
        rows.append(row)
    report = _report("endpoint", folder, target.describe(), files, sizes, seconds, rows,
                     # in_flight: first request sent → last answer (the transport's set-up left out)
                     phases={"read": read_s, "requests": seconds - read_s, "in_flight": run.seconds},
                     settings={"concurrency": concurrency, "format": fmt, "batch": batch, "retries": retries},
                     model=headers.get("x-platbench-model"))
    return report, rows


def log_to_mlflow(report: BatchReport, platform_name: str) -> str:
    from platforms.core import tracking

    d = report.to_dict()
    params = {"mode": report.mode, "source": report.source, "target": report.target, **report.settings}
    tags = {tracking.Tag.PLATFORM: platform_name, tracking.Tag.MODEL: report.model, KIND_TAG: "batch_inference"}
    with tracking.tracked_run(f"batch-{platform_name}", params, tags) as run:
        run.metrics({name: d.get(key) for name, key in MLFLOW_METRICS.items()})
        run.tags({tracking.Tag.STATUS: "finished"})
        run.end("FINISHED")
        return run.run_id


def cli_main(folder: Path, model_dir: Optional[Path], endpoint: Optional[str], batch_size: int, concurrency: int,
             fmt: str, batch: int, limit: Optional[int], device: str, out: Optional[Path], as_json: bool,
             track: bool, set_: list[str]) -> None:
    from platforms.bench.loadtest import default_platform_name
    from platforms.core.settings import parse_pairs

    if (model_dir is None) == (endpoint is None):
        raise UserError("give exactly one of --model-dir DIR (in-process) or --endpoint TARGET")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    if concurrency < 1 or batch < 1:
        raise UserError("--concurrency and --batch must be at least 1")
    if model_dir is not None:
        report, rows = run_local(folder, model_dir, batch_size, device, limit)
        platform_name = registry.this_machine()
    else:
        target = parse_target(endpoint)
        report, rows = run_endpoint(folder, endpoint, concurrency, fmt, batch, limit=limit,
                                    settings=parse_pairs(set_, "--set"))
        platform_name = default_platform_name(target)
    run_id = log_to_mlflow(report, platform_name) if track else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if as_json:
        print(json.dumps({**report.to_dict(), "mlflow_run_id": run_id}, indent=1))
        return
    acc = f", accuracy {report.accuracy:.4f} on {report.labelled} labelled" if report.accuracy is not None else ""
    spm = f"{report.seconds_per_mb:.3f} s/MiB" if report.seconds_per_mb is not None else "-"
    print(f"{report.images} images, {report.mb:.3f} MiB in {report.seconds:.2f} s: {spm}, "
          f"{report.images_per_s:.1f} images/s, {report.errors} errors{acc}")
    if report.model_load_seconds is not None:
        print(f"model load {report.model_load_seconds:.2f} s (not counted); "
              + ", ".join(f"{k} {v:.2f} s" for k, v in report.phases.items()))
    if run_id:
        print(f"MLflow run {run_id}")
