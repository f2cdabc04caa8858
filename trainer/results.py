"""The output contract: `results.json` (versioned schema), `metrics.jsonl` (one line per epoch) and the
model files, all written atomically. Torch-free, so the workstation can read results without torch."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
MODEL_WEIGHTS = "model.pt"
MODEL_CARD = "model.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetInfo(_Strict):
    name: str
    format: str
    fingerprint: str
    classes: list[str]
    image_size: int
    train_count: int
    val_count: int
    test_count: int
    per_class: Optional[int] = None


class Hardware(_Strict):
    device: str
    gpu_name: Optional[str] = None
    gpu_count: int = 0
    torch: str
    cuda: Optional[str] = None
    cudnn: Optional[int] = None
    lightning: str
    python: str
    cpu: str
    cpu_count: int
    precision: str


class Seconds(_Strict):
    total: float = Field(description="wall clock of the whole trainer process, data loading included")
    data: float = Field(description="dataset scan, fingerprint and decode (or cache read)")
    train: float = Field(description="training steps only, summed over epochs; evaluation excluded")
    per_epoch: list[float]
    to_target: Optional[float] = Field(None, description="train seconds until test accuracy ≥ target")
    evaluation: float


class Params(_Strict):
    total: int
    trainable: int


class Results(_Strict):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: str = Field(description="finished | preempted")
    platform: str
    job_id: Optional[str] = None
    image_digest: Optional[str] = None
    git_commit: Optional[str] = None
    started_at: str
    finished_at: str
    dataset: DatasetInfo
    model: str
    hyperparameters: dict
    seed: int
    target_accuracy: Optional[float] = None
    epoch_to_target: Optional[int] = None
    epochs_completed: int
    resumed_from_epoch: Optional[int] = None
    hardware: Hardware
    seconds: Seconds
    test_accuracy: float
    test_top5_accuracy: float
    test_loss: float
    val_accuracy: Optional[float] = None
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]
    throughput_images_per_s: float
    latency_ms_per_image: float
    params: Params


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be read by others
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(out_dir: Path, results: Results) -> Path:
    path = Path(out_dir) / RESULTS_FILE
    atomic_write_text(path, results.model_dump_json(indent=2) + "\n")
    return path


def read_results(path: Path) -> Results:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return Results.model_validate_json(path.read_text())


def write_metrics(out_dir: Path, epochs: list[dict]) -> Path:
    """The whole per-epoch history, rewritten atomically each epoch (it is small)."""
    path = Path(out_dir) / METRICS_FILE
    atomic_write_text(path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in epochs))
    return path


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
