"""How a service run measures the deployed model (platforms/core/service_launch.py): every test image once
through it (accuracy, top-5 where the service gives more than one label, per-class accuracy, the confusion
matrix), then the load tool's run with the test images as bodies (the study's figure: 1,000 requests at 10
concurrent, latency distribution, resets and 429s retried with backoff)."""
from __future__ import annotations

import json
from typing import Any

from platforms.core.load_report import build_report, summarize
from platforms.core.load_runner import LoadSettings, answer_each, run_with
from platforms.core.service import LabelledImage, Service, ServiceData
from platforms.core.transport import CONTENT_TYPES, Payload


def image_payloads(images: list[LabelledImage]) -> list[Payload]:
    """One raw image body a request, in the given order."""
    return [Payload(x.path.read_bytes(), CONTENT_TYPES[x.path.suffix.lower()], 1) for x in images]


def evaluate(svc: Service, data: ServiceData, concurrency: int, timeout_s: float, retries: int) -> dict[str, Any]:
    """Every test image once through the deployed model, with the load tool's engine (retries counted).
    Accuracy and top-5 over ALL test images: an image the service failed to answer counts as wrong."""
    run, replies = answer_each(lambda: svc.transport(concurrency, timeout_s), image_payloads(data.test), concurrency,
                               timeout_s, retries)
    return score(data, {i: json.loads(body)["predictions"][0] for i, body in replies.items()},
                 top_k_given=svc.top_k_given) | {"seconds": run.seconds, "errors": summarize(run)["errors"]}


def failures(errors: dict) -> str:
    parts = [f"{n}× HTTP {status}" for status, n in errors["by_status"].items()]
    parts += [f"{n}× {kind}" for kind, n in errors["connection"].items() if n]
    return ", ".join(parts) or "no answers"


def score(data: ServiceData, predictions: dict[int, dict], top_k_given: bool) -> dict[str, Any]:
    """Accuracy, top-5, per-class accuracy and the confusion matrix (rows: true label, columns: predicted;
    a last column for unanswered images) from the predictions by test-image index."""
    classes = data.classes
    index = {c: i for i, c in enumerate(classes)}
    n = len(data.test)
    confusion = [[0] * (len(classes) + 1) for _ in classes]
    correct = top5 = 0
    rows = []
    for i, x in enumerate(data.test):
        pred = predictions.get(i)
        got = pred.get("class") if pred else None
        ranked = [label for label, _ in (pred.get("top") or [])] if pred else []
        confusion[index[x.label]][index.get(got, len(classes))] += 1
        correct += got == x.label
        top5 += x.label in (ranked[:5] or ([got] if got else []))
        rows.append({"path": str(x.path.relative_to(data.root)), "label": x.label, "class": got,
                     "probability": pred.get("probability") if pred else None})
    per_class = {c: confusion[k][k] / sum(confusion[k]) if sum(confusion[k]) else None for k, c in enumerate(classes)}
    # top-5 needs at least 5 labels to rank; a service answering only its best label gives no top-5
    given = top_k_given and len(classes) > 5
    return {"images": n, "answered": len(predictions), "accuracy": correct / n if n else None,
            "top5_accuracy": top5 / n if n and given else None, "per_class_accuracy": per_class,
            "confusion": {"labels": classes, "columns": classes + ["(no answer)"], "matrix": confusion},
            "predictions": rows}


def load_test(svc: Service, data: ServiceData, cfg) -> dict[str, Any]:
    """The load tool against the deployed model, with the test images as bodies (in sorted order, cycled)."""
    payloads = image_payloads(data.test[:256])
    s = LoadSettings(requests=cfg.requests, concurrency=cfg.concurrency, warmup=cfg.warmup, timeout_s=cfg.timeout,
                     retries=cfg.retries)
    run = run_with(lambda: svc.transport(s.concurrency, s.timeout_s), payloads, s)
    return build_report(svc.target(), run, s, payloads, "image")
