"""A Databricks one-time run's task, natively, on the shared LocalRun (platforms/core/emulator.py): what the
launcher's local mode runs. (The tests' loopback workspace runs submitted runs with its own job cluster,
tests/databricks/job_cluster.py, written from the same pages independently of this module.)

What the task sees on a real job cluster (official pages):
- `libraries: [{"whl": "/Volumes/…/platbench-….whl"}]` are installed into the cluster's Python before the task
  starts (https://docs.databricks.com/en/compute/libraries.html; wheels from volumes:
  https://docs.databricks.com/en/libraries/volume-libraries.html);
- `spark_python_task.python_file` is run by the driver's Python with `parameters` as its arguments
  (https://docs.databricks.com/api/workspace/jobs/submit, SparkPythonTask);
- Unity Catalog volumes are mounted on the driver at /Volumes/<catalog>/<schema>/<volume>/… (FUSE:
  https://docs.databricks.com/en/volumes/volume-files.html), so the trainer reads the staged manifest and
  writes its outputs there;
- `new_cluster.spark_env_vars` are the environment of the driver's processes
  (https://docs.databricks.com/api/workspace/clusters/create), and the runtime sets
  DATABRICKS_RUNTIME_VERSION (https://docs.databricks.com/en/release-notes/runtime/index.html).

Here the volume mount is emulated by a download before the task starts (the files the parameters name:
the staged manifest and its shards, SHA-256 checked, and what the output folder already holds, i.e. the
checkpoints of an interrupted run) and an upload of the output folder when it ends; the library is
installed with `pip install --no-deps --target` into a folder put first on PYTHONPATH, so the task runs the
wheel's code, not this checkout's. The runtime's own packages (torch, Lightning, MLflow) are this
machine's: the Databricks ML runtime ships its own versions, which only a real run shows (results.json's
software block records them)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from platforms.core.emulator import LocalRun, _now, preset_epochs, sync_up
from platforms.databricks.phases import PHASES
from platforms.errors import UserError

# the LocalRun's closing states → (life_cycle_state, result_state)
RESULT = {"Completed": "SUCCESS", "Failed": "FAILED", "Stopped": "CANCELED", "MaxRuntimeExceeded": "TIMEDOUT"}
ENDED = set(RESULT)


def _millis(a, b) -> int:
    return int(max(0.0, (b - a).total_seconds()) * 1000) if a and b else 0


def task_run(run_id: int, run_name: str, task: dict, store, timeout_seconds: int, cluster_id: str) -> LocalRun:
    """One SubmitTask (spark_python_task + whl libraries on a new_cluster) as a LocalRun reading and
    writing the volume of `store` (a VolumeStore) under /Volumes."""
    from platforms.core.staging import MANIFEST_NAME, Staged, download_prefix, download_staged

    root = Path(tempfile.mkdtemp(prefix=f"platbench-dbx-{run_id}-"))
    volume = store.root + "/"

    def key_of(path: str) -> str:
        if not path.startswith(volume):
            raise UserError(f"the task names {path}, outside volume {store.root} (the only one emulated here)")
        return path[len(volume):]

    def local(path: str) -> Path:
        return root / path.lstrip("/")

    py_task = task.get("spark_python_task")
    if not py_task or not py_task.get("python_file"):
        raise UserError("the task is not a spark_python_task with a python_file")
    params = list(py_task.get("parameters") or [])
    cluster = task.get("new_cluster") or {}
    runtime = str(cluster.get("spark_version", ""))
    env = {**os.environ, **(cluster.get("spark_env_vars") or {}), "PYTHONUNBUFFERED": "1",
           "DATABRICKS_RUNTIME_VERSION": runtime.split(".x-")[0],
           "PLATBENCH_UNPACK_DIR": str(root / "local_disk0" / "unpacked")}
    site = root / "site-packages"
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    argv = [sys.executable, str(local(py_task["python_file"])),
            *[str(local(p)) if p.startswith("/Volumes/") else p for p in params]]
    out_path = params[params.index("--out") + 1] if "--out" in params else None

    def prepare(run: LocalRun) -> None:
        run.enter("PENDING")  # cluster start and library installation
        for lib in task.get("libraries") or []:
            if "whl" not in lib:
                raise UserError(f"library {lib} is not a wheel (only whl libraries are emulated)")
            wheel = local(lib["whl"])
            store.get_file(key_of(lib["whl"]), wheel)
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                   "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                run.failure = f"library {lib['whl']} failed to install: {proc.stderr.strip()[-300:]}"
                raise UserError(run.failure)
        store.get_file(key_of(py_task["python_file"]), local(py_task["python_file"]))
        if "--data" in params:
            data = params[params.index("--data") + 1]
            key = key_of(data)
            if data.endswith("/" + MANIFEST_NAME):  # sharded staging: <prefix>/datasets/<fingerprint>/manifest
                prefix, _, rest = key.partition("/datasets/")
                staged = Staged(mode="sharded", store_uri=store.uri(), prefix=prefix, data_key=key,
                                fingerprint=rest.split("/")[0], name="", format="", files=0, bytes=0)
                run.figures.update(download_staged(staged, store, local(volume + prefix)))
            else:
                t0 = time.perf_counter()
                got, _ = download_prefix(store, key.rstrip("/") + "/", local(data))
                run.figures.update({"download_seconds": time.perf_counter() - t0, "download_bytes_received": got})
        if out_path:  # what the output folder already holds on the volume (an interrupted run's checkpoints)
            download_prefix(store, key_of(out_path).rstrip("/") + "/", local(out_path))

    def finalize(run: LocalRun, rc: Optional[int]) -> None:
        if out_path:
            t0 = time.perf_counter()
            sent = sync_up(store, local(out_path), key_of(out_path).rstrip("/") + "/", delete=False)
            run.figures["output_upload_seconds"] = time.perf_counter() - t0
            run.figures["output_upload_mb"] = sent / (1024 * 1024)

    def describe(run: LocalRun) -> dict:
        """The run in the Jobs API's runs/get shape (Run, RunTask, RunState)."""
        spans = {s: (a, b) for s, a, b in run.timeline}
        final = run.timeline[-1][0] if run.timeline else "PENDING"
        now = _now()
        if final in ENDED:
            life, result = "TERMINATED", RESULT[final]
        elif final == "Uploading":
            life, result = "TERMINATING", None
        elif final == "Stopping":
            life, result = "TERMINATING", None
        else:
            life, result = final, None
        state = {"life_cycle_state": life, "state_message": run.failure or ""}
        if result:
            state["result_state"] = result
        durations = {"queue_duration": 0}
        for name, status in (("setup_duration", "PENDING"), ("execution_duration", "RUNNING"),
                             ("cleanup_duration", "Uploading")):
            a, b = spans.get(status, (None, None))
            durations[name] = _millis(a, b or (now if a else None))
        start = int(run.created.timestamp() * 1000)
        task_state = {**state}
        # a runs/submit with tasks[] is a multitask run: its own durations are 0, the task's are on tasks[i]
        # (https://docs.databricks.com/api/workspace/jobs/getrun)
        top = {**{k: 0 for k in durations}, "run_duration": sum(durations.values())}
        d = {"run_id": run_id, "run_name": run_name, "state": state, "start_time": start, **top,
             "run_type": "SUBMIT_RUN",
             "tasks": [{"task_key": task.get("task_key", "task"), "run_id": run_id + 1, "state": task_state,
                        "cluster_instance": {"cluster_id": cluster_id}, "start_time": start, **durations}]}
        if final in ENDED:
            d["end_time"] = int(run.timeline[-1][1].timestamp() * 1000)
        return d

    model = params[params.index("--model") + 1] if "--model" in params else None
    epochs = params[params.index("--epochs") + 1] if "--epochs" in params else None
    return LocalRun("databricks", run_name, argv, env, root, int(timeout_seconds or 24 * 3600), prepare, finalize,
                    describe, epochs=int(epochs) if epochs else preset_epochs(model),
                    phase_names={**PHASES, "Uploading": "stopping"}, running_status="RUNNING")
