"""Azure ML's command-job contract around the platbench image's `train`, natively, on the shared LocalRun
(platforms/core/emulator.py). Local mode runs a job with it. The tests' loopback control plane does not: it
runs submitted jobs from Azure ML's documentation alone (tests/azureml/azureml_jobs.py), so this reading of
the contract is checked against an independent one. What a command job sees (official pages):
- the command runs in a working folder; `${{inputs.NAME}}` and `${{outputs.NAME}}` in it are replaced by
  local paths (an input ro_mount'ed or downloaded, an output rw_mount'ed: what is already at the output's
  datastore path is visible, and what the script writes there is uploaded):
  https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2 and
  https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
- data paths are `azureml://datastores/NAME/paths/PATH` (a Blob container registered as a datastore):
  https://learn.microsoft.com/azure/machine-learning/how-to-datastore
- environment_variables are set in the container; the run's id is in AZUREML_RUN_ID (what the trainer
  reads as its job id, trainer/environment.py)
- the image has no ENTRYPOINT; `train` and `serve` are its commands (docker/train: `python -m trainer train`)
Here a mount is emulated by a download into a temporary folder before the command starts, and an output
by an upload when it ends (outputs are visible to the launcher once the job is Finalizing/Completed)."""
from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from platforms.azureml.phases import PHASES
from platforms.core.emulator import LocalRun, _now, preset_epochs, sync_up
from platforms.errors import UserError

# the short form, and the long form the SDK expands it to (subscriptions/…/workspaces/…/datastores/…)
DATASTORE_URI = re.compile(r"^azureml://(subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
                           r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
REFERENCE = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}")
IMAGE_COMMANDS = ("train", "serve")  # docker/train, docker/serve: `python -m trainer <command>`
# the LocalRun's states → Azure ML's JobStatus (https://learn.microsoft.com/rest/api/azureml/jobs/get#jobstatus)
STATUS = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Canceled", "MaxRuntimeExceeded": "Failed",
          "Uploading": "Finalizing", "Stopping": "CancelRequested"}


def datastore_path(uri: str) -> tuple[str, str]:
    """(datastore, path) of `azureml://datastores/NAME/paths/PATH`."""
    m = DATASTORE_URI.match(uri)
    if not m:
        raise UserError(f"{uri!r} is not an azureml://datastores/NAME/paths/PATH URI")
    return m.group("datastore"), m.group("path")


def command_run(name: str, command: str, environment_variables: dict, inputs: dict[str, Callable[[Path], dict]],
                outputs: dict[str, tuple[object, str]], timeout: int) -> LocalRun:
    """A command job as a LocalRun: `inputs` fill a folder each (returning download figures), `outputs` are
    (store, key prefix) pairs shown as folders and uploaded at the end."""
    root = Path(tempfile.mkdtemp(prefix=f"platbench-{name}-"))
    folders = {("inputs", k): root / ".azureml-inputs" / k for k in inputs}
    folders.update({("outputs", k): root / ".azureml-outputs" / k for k in outputs})

    def path_of(m: re.Match) -> str:
        if (m.group(1), m.group(2)) not in folders:
            raise UserError(f"the job's command refers to {m.group(0)}, which the job does not define")
        return str(folders[(m.group(1), m.group(2))])

    argv = shlex.split(REFERENCE.sub(path_of, command))
    if not argv or argv[0] not in IMAGE_COMMANDS:
        raise UserError(f"the job's command must start with one of the image's commands {IMAGE_COMMANDS}")
    argv = [sys.executable, "-m", "trainer", *argv]
    env = {**os.environ, **environment_variables, "AZUREML_RUN_ID": name,
           "PLATBENCH_UNPACK_DIR": str(root / ".unpacked"), "PYTHONUNBUFFERED": "1"}

    def prepare(run: LocalRun) -> None:
        from platforms.core.staging import download_prefix

        run.enter("Queued")
        run.enter("Preparing")
        for k, fill in inputs.items():
            run.figures.update(fill(folders[("inputs", k)]) or {})
        for k, (store, key) in outputs.items():  # rw_mount: what the path already holds (checkpoints) is there
            download_prefix(store, key, folders[("outputs", k)])

    def finalize(run: LocalRun, rc: Optional[int]) -> None:
        t0, sent = time.perf_counter(), 0
        for k, (store, key) in outputs.items():
            sent += sync_up(store, folders[("outputs", k)], key, delete=False)
        run.figures["output_upload_seconds"] = time.perf_counter() - t0
        run.figures["output_upload_mb"] = sent / (1024 * 1024)

    def describe(run: LocalRun) -> dict:
        final = run.timeline[-1][0] if run.timeline else "Queued"
        status = STATUS.get(final, final)
        d = {"name": name, "status": status, "created_at": run.created.isoformat(),
             "status_timeline": [[s, a.isoformat()] for s, a, _ in run.timeline
                                 if s not in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded")],
             "updated_at": _now().isoformat()}
        if status in ("Completed", "Failed", "Canceled"):
            d["end_time"] = run.timeline[-1][1].isoformat()
        if status in ("Failed", "Canceled"):
            d["error"] = run.failure or ("canceled" if run.stopped else "the job failed")
        return d

    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    epochs = argv[argv.index("--epochs") + 1] if "--epochs" in argv else None
    # Azure ML's phase while the outputs are uploaded is Finalizing
    return LocalRun("azureml", name, argv, env, root, int(timeout), prepare, finalize, describe,
                    epochs=int(epochs) if epochs else preset_epochs(model),
                    phase_names={**PHASES, "Uploading": "uploading"}, running_status="Running")


def local_run(spec: dict, store, staged, outputs_key: str) -> LocalRun:
    """Local mode: the launcher's own job spec, its input the staged dataset (only the manifest and its
    shards are fetched, checked by SHA-256), its output the job's folder in the container."""
    from platforms.core.staging import download_staged

    return command_run(spec["name"], spec["command"], spec.get("environment_variables", {}),
                       {"data": lambda dest: download_staged(staged, store, dest)},
                       {"results": (store, outputs_key)}, int(spec["limits"]["timeout"]))
