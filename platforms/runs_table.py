"""Terminal renderings of one run's results and of the run list."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from rich.table import Table


def _f(value, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def results_table(res, run_id: str, out: Path) -> Table:
    t = Table(title=f"{res.platform} · {res.model} · {res.dataset.name}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    rows = [
        ("test accuracy", _f(res.test_accuracy)),
        ("test top-5 accuracy", _f(res.test_top5_accuracy)),
        ("validation accuracy", _f(res.val_accuracy)),
        ("epochs", str(res.epochs_completed)),
        ("train seconds", _f(res.seconds.train, "{:.2f}")),
        ("seconds per epoch (mean)", _f(sum(res.seconds.per_epoch) / max(1, len(res.seconds.per_epoch)), "{:.3f}")),
        (f"seconds to target {res.target_accuracy}" if res.target_accuracy else "seconds to target",
         _f(res.seconds.to_target, "{:.2f}") if res.target_accuracy else "- (no --target-accuracy)"),
        ("total seconds (data incl.)", _f(res.seconds.total, "{:.2f}")),
        ("throughput images/s, plain model", _f(res.plain_throughput_images_per_s, "{:.0f}")),
        ("latency ms/image, plain model", _f(res.plain_latency_ms_per_image, "{:.3f}")),
        ("throughput images/s, as evaluated (TTA)", _f(res.evaluated_throughput_images_per_s, "{:.0f}")),
        ("latency ms/image, as evaluated (TTA)", _f(res.evaluated_latency_ms_per_image, "{:.3f}")),
        ("parameters", f"{res.params.total:,}"),
        ("device", res.hardware.gpu_name or res.hardware.device),
        ("dataset", f"{res.dataset.train_count} train / {res.dataset.val_count} val / {res.dataset.test_count} test, "
                    f"fingerprint {res.dataset.fingerprint[:12]}"),
        ("outputs", str(out)),
        ("MLflow run", run_id),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


def results_json(res, run_id: str, out: Path) -> str:
    return json.dumps({"mlflow_run_id": run_id, "output_dir": str(out), "results": res.model_dump()}, indent=2)


def runs_table(rows: list[dict], uri: str) -> Table:
    t = Table(title=f"runs in {uri}", caption="ids are MLflow run id prefixes; --json for everything")
    for col in ("run", "started", "status", "platform", "model", "data", "n/cls", "seed", "test acc",
                "train s", "to tgt s"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for r in rows:
        started = datetime.fromtimestamp(r["start_time"] / 1000).strftime("%m-%d %H:%M") if r["start_time"] else "-"
        if r.get("kind") == "sweep":  # a sweep's parent run: its cells are the rows with figures
            t.add_row(r["run_id"][:6], started, r["status"].lower(), f"sweep {r['name'] or ''}".strip(), *["-"] * 7)
            continue
        t.add_row(r["run_id"][:6], started, r["status"].lower(), r["platform"] or "-", r["model"] or "-",
                  (r["dataset"] or "-")[:10], r["per_class"] or "-", r["seed"] or "-", _f(r["test_accuracy"]),
                  _f(r["seconds_train"], "{:.1f}"), _f(r["seconds_to_target"], "{:.1f}"))
    return t
