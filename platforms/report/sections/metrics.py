"""The metrics the sections read from a run (the names the launchers, the trainer and the load tool log),
and the per-run values computed from them."""
from __future__ import annotations

from typing import Optional, Sequence

from platforms.report.data import Run

# time split by phase: (label, metrics summed). "train" falls back to the trainer's own wall time
# (seconds_total: data + training + evaluation) on platforms that report no phases (local).
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("upload", ("upload_seconds",)),
    ("queue/provisioning", ("phase_seconds_queued", "phase_seconds_provisioning")),
    ("image pull", ("phase_seconds_image_pull",)),
    ("data download", ("phase_seconds_downloading",)),
    ("train", ("phase_seconds_training",)),
    ("collect", ("phase_seconds_uploading", "collect_seconds")),
    ("spot interruption", ("phase_seconds_interrupted", "phase_seconds_restarting")),
]
TRAIN_FALLBACK = "seconds_total"
WALL = "seconds_wall"
OTHER = "other"

# One unit for every s/MiB figure: MiB, 2^20 bytes (staging, downloads and `platbench transfer` count so,
# as the AWS-vs-Azure study did; the metric names say "mb" for history)
TRANSFER = [  # (metric, label, which runs)
    ("upload_s_per_mb", "upload s/MiB (staging the dataset, over bytes sent)", "training"),
    ("download_s_per_mb", "download s/MiB (the job reading it)", "training"),
    ("batch_seconds_per_mib", "batch inference s/MiB", "batch"),
]
UPLOAD = "upload_s_per_mb"
BATCH, BATCH_MB = "batch_seconds_per_mib", "batch_seconds_per_mb"  # the latter: batch runs before MiB, 10^6 bytes
MIB = 1024 * 1024

# Inference speed two ways (trainer results): the plain model, one forward pass per image (what `serve`
# answers), and as evaluated, with the preset's test-time augmentation (what the accuracy is measured
# with). Runs from before the split logged one figure under the old name, timed through the module that
# applies TTA, so the old name is read as "as evaluated".
THROUGHPUT = {"plain": ("plain_throughput_images_per_s",),
              "evaluated": ("evaluated_throughput_images_per_s", "throughput_images_per_s")}
LATENCY = {"plain": ("plain_latency_ms_per_image",),
           "evaluated": ("evaluated_latency_ms_per_image", "latency_ms_per_image")}
SPEED_LABEL = {"plain": "plain model", "evaluated": "as evaluated, with TTA"}


def first(run: Run, names: Sequence[str]) -> Optional[float]:
    """The first of these metrics the run logged (a new name, then the old one it replaces)."""
    for n in names:
        if run.m(n) is not None:
            return run.m(n)
    return None


def upload_cached(run: Run) -> bool:
    """Every shard was already staged: the run sent nothing, so its upload s/MiB is scan time, not a transfer."""
    return run.m("upload_bytes_sent") == 0


def transfer_value(run: Run, metric: str) -> Optional[float]:
    """One s/MiB figure per run. Upload: seconds over the MB actually sent (a partly staged dataset sends
    less than its size); None for a cached run; runs from before `upload_bytes_sent` keep their own figure."""
    if metric == BATCH and run.m(BATCH) is None and run.m(BATCH_MB) is not None:
        return run.m(BATCH_MB) * MIB / 1e6  # seconds per 10^6 bytes → per 2^20 bytes
    if metric != UPLOAD:
        return run.m(metric)
    sent, seconds = run.m("upload_bytes_sent"), run.m("upload_seconds")
    if sent == 0:
        return None
    if sent is not None and seconds is not None:
        return seconds / (sent / MIB)
    return run.m(UPLOAD)


def train_images_per_s(run: Run, images: Optional[float]) -> Optional[float]:
    """Training throughput of the whole run: images trained on (all ranks) over the training clock
    (`seconds_train`: training steps only, every evaluation pass excluded; not the wall time)."""
    seconds = run.m("seconds_train")
    return images / seconds if images is not None and seconds else None


def median(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.median(values))
