"""Vertex AI local mode: the custom-container contract (worker pool args and env, AIP_* variables from
baseOutputDirectory, Cloud Storage FUSE at /gcs moved to a temp dir) around `python -m trainer`, on the
shared LocalRun (platforms/core/emulator.py). Contract:
https://cloud.google.com/vertex-ai/docs/training/code-requirements"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from platforms.core.emulator import LocalRun, _now, preset_epochs, sync_up
from platforms.errors import UserError
from platforms.vertex.phases import PHASES


def local_run(custom_job: dict, job_name: str, store, staged) -> LocalRun:
    """Vertex AI's custom-container contract: the worker pool's args and env, AIP_* variables from
    baseOutputDirectory, and Cloud Storage FUSE at /gcs (moved to a temp dir by PLATBENCH_GCS_ROOT):
    what the job reads is downloaded there first, what it writes is uploaded back after."""
    root = Path(tempfile.mkdtemp(prefix=f"platbench-{job_name}-"))
    gcs = root / "gcs"
    pool = custom_job["jobSpec"]["workerPoolSpecs"][0]
    container = pool["containerSpec"]
    base = custom_job["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"].rstrip("/")
    bucket = store.bucket
    head = f"gs://{bucket}/"
    if not base.startswith(head):
        raise UserError(f"local mode reads and writes bucket {bucket} only, not {base}")
    base_key = base[len(head):]
    env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", [])},
           # set by Vertex when baseOutputDirectory is set (CustomJobSpec.baseOutputDirectory)
           "AIP_MODEL_DIR": f"{base}/model/", "AIP_CHECKPOINT_DIR": f"{base}/checkpoints/",
           "AIP_TENSORBOARD_LOG_DIR": f"{base}/logs/", "CLOUD_ML_JOB_ID": job_name,
           "PLATBENCH_GCS_ROOT": str(gcs), "PLATBENCH_UNPACK_DIR": str(root / "unpacked"),
           "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "trainer", *container.get("args", [])]
    if container.get("command"):
        raise UserError("local mode runs the platbench trainer; containerSpec.command is not supported")

    def prepare(run: LocalRun) -> None:
        run.enter("JOB_STATE_QUEUED")
        run.enter("JOB_STATE_PENDING")
        from platforms.core.staging import download_prefix, download_staged

        run.figures.update(download_staged(staged, store, gcs / bucket / staged.prefix
                                           if staged.mode == "sharded" else gcs / bucket / staged.data_key))
        download_prefix(store, f"{base_key}/checkpoints/", gcs / bucket / base_key / "checkpoints")

    def finalize(run: LocalRun, rc: Optional[int]) -> None:
        t0 = time.perf_counter()
        sent = sync_up(store, gcs / bucket / base_key, base_key + "/", delete=False)
        run.figures["output_upload_seconds"] = time.perf_counter() - t0
        run.figures["output_upload_mb"] = sent / (1024 * 1024)

    def describe(run: LocalRun) -> dict:
        states = [t for t in run.timeline if t[0].startswith("JOB_STATE_")]
        final = run.timeline[-1][0] if run.timeline else "JOB_STATE_QUEUED"
        state = {"Completed": "JOB_STATE_SUCCEEDED", "Failed": "JOB_STATE_FAILED",
                 "Stopped": "JOB_STATE_CANCELLED", "MaxRuntimeExceeded": "JOB_STATE_FAILED"}.get(
            final, states[-1][0] if states else "JOB_STATE_QUEUED")
        running = [t for t in run.timeline if t[0] == "JOB_STATE_RUNNING"]
        d = {"name": job_name, "displayName": custom_job.get("displayName"), "state": state,
             "createTime": run.created, "updateTime": _now(),
             "stateTimeline": [[s, a] for s, a, _ in run.timeline]}
        if running:
            d["startTime"] = running[0][1]
        if state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
            d["endTime"] = run.timeline[-1][1]
        if state in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
            d["error"] = {"code": 1 if state == "JOB_STATE_CANCELLED" else 13,
                          "message": run.failure or ("cancelled" if run.stopped else "the job failed")}
        return d

    args = container.get("args", [])
    epochs = args[args.index("--epochs") + 1] if "--epochs" in args else None
    model = args[args.index("--model") + 1] if "--model" in args else None
    timeout = custom_job["jobSpec"].get("scheduling", {}).get("timeout", "604800s")

    return LocalRun("vertex", job_name, argv, env, root, int(float(str(timeout).rstrip("s"))), prepare, finalize,
               describe, epochs=int(epochs) if epochs else preset_epochs(model), phase_names=PHASES,
               running_status="JOB_STATE_RUNNING")
