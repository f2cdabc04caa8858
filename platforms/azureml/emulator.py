"""Azure ML local mode: the command-job contract around `python -m trainer`, on the shared LocalRun
(platforms/core/emulator.py). What a command job sees (official pages):
- the command runs in a working folder; `${{inputs.data}}` in it is replaced by the input's local path
  (ro_mount or download), and files the script writes to ./outputs (and ./logs) are uploaded as the job's
  outputs: https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2 and
  https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
- environment_variables are set in the container; the run's id is in AZUREML_RUN_ID (what the trainer
  reads as its job id, trainer/environment.py)
Here the input is downloaded from Blob Storage into a temporary folder (download mode; a mount reads the
same blobs), and ./outputs is uploaded back under `<prefix>/jobs/<name>/outputs/` in the container."""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from platforms.azureml.phases import PHASES
from platforms.core.emulator import LocalRun, _now, preset_epochs, sync_up
from platforms.errors import UserError

INPUT = "${{inputs.data}}"


def local_run(spec: dict, store, staged, outputs_key: str) -> LocalRun:
    name = spec["name"]
    root = Path(tempfile.mkdtemp(prefix=f"platbench-{name}-"))
    # the working folder is the run's root (removed on cleanup); the input lands beside ./outputs
    work, inputs = root, root / ".azureml-inputs" / "data"
    argv = shlex.split(spec["command"].replace(INPUT, str(inputs)))
    if not argv or argv[0] != "train":
        raise UserError("local mode runs the platbench trainer: the job's command must start with `train`")
    if INPUT in " ".join(argv):
        raise UserError("local mode: an input reference was left in the command")
    argv = [sys.executable, "-m", "trainer", *argv]
    env = {**os.environ, **spec.get("environment_variables", {}), "AZUREML_RUN_ID": name,
           "PLATBENCH_UNPACK_DIR": str(root / ".unpacked"), "PYTHONUNBUFFERED": "1"}
    prefix = staged.prefix.strip("/") + "/"

    def prepare(run: LocalRun) -> None:
        run.enter("Queued")
        run.enter("Preparing")
        from platforms.core.staging import download_prefix, download_staged

        # the input: the staging root (sharded: manifest + shards, keys relative to it) or the naive prefix
        run.figures.update(download_staged(staged, store, inputs))
        # a run again under the same name resumes from the checkpoints its ./outputs left
        download_prefix(store, outputs_key + "checkpoints/", work / "outputs" / "checkpoints")

    def finalize(run: LocalRun, rc: Optional[int]) -> None:
        t0 = time.perf_counter()
        sent = sync_up(store, work / "outputs", outputs_key, delete=False)
        run.figures["output_upload_seconds"] = time.perf_counter() - t0
        run.figures["output_upload_mb"] = sent / (1024 * 1024)

    def describe(run: LocalRun) -> dict:
        final = run.timeline[-1][0] if run.timeline else "Queued"
        status = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Canceled",
                  "MaxRuntimeExceeded": "Failed", "Uploading": "Finalizing", "Stopping": "CancelRequested"}.get(
            final, final)
        d = {"name": name, "status": status, "created_at": run.created.isoformat(),
             "status_timeline": [[s, a.isoformat()] for s, a, _ in run.timeline
                                 if s not in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded")],
             "updated_at": _now().isoformat()}
        if status in ("Completed", "Failed", "Canceled"):
            d["end_time"] = run.timeline[-1][1].isoformat()
        if status in ("Failed", "Canceled"):
            d["error"] = run.failure or ("canceled" if run.stopped else "the job failed")
        return d

    # Azure ML's phase while ./outputs is uploaded is Finalizing
    phase_names = {**PHASES, "Uploading": "uploading"}
    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    epochs = argv[argv.index("--epochs") + 1] if "--epochs" in argv else None
    return LocalRun("azureml", name, argv, env, work, int(spec["limits"]["timeout"]), prepare, finalize, describe,
                    epochs=int(epochs) if epochs else preset_epochs(model), phase_names=phase_names,
                    running_status="Running")
