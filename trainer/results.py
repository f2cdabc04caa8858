"""The output contract: `results.json` (versioned schema), `metrics.jsonl` (one line per epoch) and the
model files, all written atomically. Torch-free, so the workstation can read results without torch."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 3  # 2: seconds.eval, software, schedule, plain_/evaluated_ throughput and latency;
#                     3: hardware.world_size and hardware.nodes (data-parallel runs); later, optional and
#                        absent from older files: image_id, image_build_id (issue 18), hardware.nvidia_driver
#                        (issue 24), early_stopping (issue 26)
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
    world_size: int = Field(ge=1, description="training processes (one device each) the run spanned, all nodes")
    nodes: int = Field(ge=1, description="machines the run spanned; world_size / nodes processes on each")
    device: str
    gpu_name: Optional[str] = None
    gpu_count: int = 0
    nvidia_driver: Optional[str] = Field(None, description="the NVIDIA driver version of a CUDA run (e.g. "
                                         "'580.65.06'; None on the CPU); absent from files written before it")
    cpu: str
    cpu_count: int
    precision: str


class Software(_Strict):
    """Versions a figure depends on, as plain strings (None where absent, e.g. CUDA and cuDNN on CPU);
    comparisons across runs refuse to mix them."""
    python: str
    torch: str
    torchvision: Optional[str] = None
    lightning: str
    cuda: Optional[str] = Field(None, description="CUDA runtime torch was built with, when the run used a GPU")
    cudnn: Optional[str] = Field(None, description="cuDNN version, e.g. '90100', when the run used a GPU")


class EarlyStopping(_Strict):
    """A run with `early_stopping_patience` > 0 (trainer/early_stopping.py): the test figures, model and
    inference speed are those of the best validation epoch's weights."""
    patience: int = Field(ge=1, description="epochs without a better validation accuracy before training stops")
    best_epoch: Optional[int] = Field(None, description="the epoch (1-based) whose weights were restored")
    best_val_accuracy: Optional[float] = None
    stopped_early: bool = Field(description="stopped before the schedule's last epoch")


class Schedule(_Strict):
    """The optimisation schedule actually run. A run with the step budget whose images are too few for
    `min_steps` optimizer steps in its epochs (every --per-class run; a full-data run on its preset's epochs
    below half the budget: trainer/train.py plan_schedule) makes `passes_per_epoch` > 1 shuffled, augmented
    passes over its images an epoch; epochs (and evaluation after each) stay as set."""
    epochs: int
    passes_per_epoch: int = Field(description="passes over the training images an epoch (1 but for a small dataset)")
    steps_per_epoch: int
    steps: int = Field(description="optimizer steps of the whole schedule (epochs × steps_per_epoch)")
    min_steps: int
    reason: Optional[str] = Field(None, description="why an epoch makes more than one pass; None when it doesn't")


class Seconds(_Strict):
    total: float = Field(description="wall clock of the whole trainer process, data loading included")
    data: float = Field(description="dataset scan, fingerprint and decode (or cache read)")
    train: float = Field(description="training steps only, summed over epochs; every evaluation pass excluded")
    per_epoch: list[float] = Field(description="train seconds of each epoch; they add up to `train`")
    to_target: Optional[float] = Field(None, description="train seconds until test accuracy ≥ target")
    eval: float = Field(description="every evaluation pass during training (validation and test sets, TTA "
                                    "included), summed; the inference-speed measurement is not in it")


class Params(_Strict):
    total: int
    trainable: int


class Results(_Strict):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: str = Field(description="finished | preempted")
    platform: str
    job_id: Optional[str] = None
    image_digest: Optional[str] = Field(None, description="the digest the run was started from: the manifest "
                                        "digest a platform pulled (REPO@sha256:…), else the image ID")
    image_id: Optional[str] = Field(None, description="the image ID (sha256 of its config): the same in `platbench "
                                    "image build`, the registry's manifest (config.digest) and MLflow")
    image_build_id: Optional[str] = Field(None, description="the build id baked into the image the run ran in "
                                          "(PLATBENCH_BUILD_ID); '' an image built without `platbench image "
                                          "build`; None not run in a platbench image")
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
    software: Software
    schedule: Schedule
    seconds: Seconds
    test_accuracy: float
    test_top5_accuracy: float
    test_loss: float
    val_accuracy: Optional[float] = None
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]
    plain_throughput_images_per_s: float = Field(
        description="the plain model, one forward pass per image (what `serve` answers), test set at the eval batch size")
    plain_latency_ms_per_image: float = Field(description="the plain model, median of single-image forward passes")
    evaluated_throughput_images_per_s: float = Field(
        description="the model as evaluated: with the preset's test-time augmentation (equal to plain without TTA)")
    evaluated_latency_ms_per_image: float = Field(description="as evaluated (TTA included), single images, median")
    params: Params
    early_stopping: Optional[EarlyStopping] = Field(None, description="None: no early stopping, the last epoch is "
                                                    "reported; absent from files written before issue 26")


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


class SchemaMismatch(ValueError):
    """A results.json of another schema version (its fields differ; read it with the platbench that wrote it)."""


def upgrade(raw: dict) -> dict:
    """Schema 2 → 3, exactly: every schema-2 run was one process on one machine (3 only adds
    hardware.world_size and hardware.nodes). Other versions are returned as they are."""
    if raw.get("schema_version") == 2 and isinstance(raw.get("hardware"), dict):
        raw = {**raw, "schema_version": SCHEMA_VERSION,
               "hardware": {**raw["hardware"], "world_size": 1, "nodes": 1}}
    return raw


def read_results(path: Path) -> Results:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    text = path.read_text()
    try:
        raw = json.loads(text)
        version = raw.get("schema_version")
    except (ValueError, AttributeError):
        return Results.model_validate_json(text)  # not a JSON object: let the model's validation say what is wrong
    raw = upgrade(raw)
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise SchemaMismatch(f"{path} has results schema_version {version}; this platbench reads "
                             f"{SCHEMA_VERSION} and 2 (use the platbench version that wrote it, or run the job again)")
    return Results.model_validate(raw)


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
