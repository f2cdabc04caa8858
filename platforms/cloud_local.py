"""Local mode for the cloud launchers: the job runs on this machine, natively (`python -m trainer train`
as a subprocess), under the platform's container contract, reading its input from and writing its
output to the platform's object storage — what SageMaker's own local mode does with Docker, without
Docker. Users debug the whole flow before they pay; the tests run it end to end against loopback servers.

A LocalRun keeps a timeline of the states a real job would pass through and answers `describe()` in
the platform's own response shape, so the launcher turns it into an Outcome with the same code it uses
for the real service.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from platforms.errors import UserError

STOP_GRACE_SECONDS = 30  # SIGTERM, then SIGKILL (SageMaker allows 120 s; the trainer needs far less)


def one_line_validation_error(exc) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = err.get("msg", str(exc)).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        return f"unknown setting {loc!r}"
    return f"{loc}: {msg}" if loc else msg


def validate_job(job) -> None:
    """What the trainer will reject, rejected before anything is uploaded: the model preset, the
    hyperparameters, and the dataset layout."""
    from platforms.local import _typed_overrides
    from platforms.storage.staging import dataset_files
    from trainer.models import PRESETS

    if job.model not in PRESETS:
        raise UserError(f"unknown model {job.model!r}; choose one of: {', '.join(PRESETS)}")
    _typed_overrides(job.hyperparameters)
    dataset_files(Path(job.data))


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RunResult:
    returncode: Optional[int]
    message: str = ""


@dataclass
class LocalRun:
    platform: str
    job_name: str
    argv: list[str]
    env: dict[str, str]
    root: Path
    max_run: int
    prepare: Callable[["LocalRun"], None]
    finalize: Callable[["LocalRun", Optional[int]], None]
    describe_fn: Callable[["LocalRun"], dict]
    epochs: Optional[int] = None
    timeline: list[list] = field(default_factory=list)  # [status, start datetime, end datetime | None]
    figures: dict[str, float] = field(default_factory=dict)
    proc: Optional[subprocess.Popen] = None
    returncode: Optional[int] = None
    stopped: bool = False
    timed_out: bool = False
    finalized: bool = False
    failure: str = ""
    created: datetime = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)
    phase_names: dict[str, str] = field(default_factory=dict)  # platform status → progress phase
    progress: Any = None
    running_status: str = "Training"  # the platform's name for "the container is running"

    def enter(self, status: str) -> None:
        now = _now()
        if self.timeline and self.timeline[-1][2] is None:
            self.timeline[-1][2] = now
        self.timeline.append([status, now, None])
        if self.progress is not None and status in self.phase_names:
            self.progress.phase(self.phase_names[status])

    def close_timeline(self, status: str) -> None:
        self.enter(status)
        self.timeline[-1][2] = self.timeline[-1][1]

    # -------------------------------------------------------------- run
    def start(self) -> None:
        self.prepare(self)
        self.enter(self.running_status)
        log = (self.root / "job.log").open("w")
        self._log = log
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump():
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self._lines.put(line.rstrip("\n"))
            self._lines.put(None)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        self.started_at = time.time()

    def wait(self, progress) -> RunResult:
        """Stream the job's log into the progress display until it exits (or its max run passes)."""
        from trainer import loglines

        epoch_re = loglines.regex("epoch")
        acc_re = loglines.regex("test_accuracy")
        import re

        self.progress = progress
        for status, _, _ in self.timeline:  # the states passed before the display was handed over
            if status in self.phase_names:
                progress.phase(self.phase_names[status])
        if self.epochs:
            progress.epochs(self.epochs)
        echo = not progress.console.is_terminal
        last_acc = ""
        finished_pump = False
        while True:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None:
                finished_pump = True
            elif line:
                if echo:
                    progress.print(line)
                m = re.match(acc_re, line)
                if m:
                    last_acc = f"test acc {float(m.group(1)):.4f}"
                m = re.match(epoch_re, line)
                if m:
                    progress.epoch_done(int(float(m.group(1))), last_acc)
            if finished_pump and self.proc.poll() is not None:
                break
            if not self.timed_out and time.time() - self.started_at > self.max_run:
                self.timed_out = True  # MaxRuntimeExceeded: SageMaker stops the job the same way
                self._signal(signal.SIGTERM)
        self.returncode = self.proc.wait()
        self._pump.join(timeout=5)
        self._log.close()
        self._finish()
        return RunResult(self.returncode, self.failure)

    def _finish(self) -> None:
        if self.finalized:
            return
        self.finalized = True
        self.enter("Uploading")
        try:
            self.finalize(self, self.returncode)
        finally:
            rc = self.returncode
            if self.stopped or self.timed_out:
                final = "MaxRuntimeExceeded" if self.timed_out else "Stopped"
            else:
                final = "Completed" if rc == 0 else "Failed"
            if rc not in (0, None) and not self.failure:
                self.failure = f"trainer exited with status {rc}" + (
                    " (SIGTERM: checkpointed)" if rc == 143 else "")
            self.close_timeline(final)

    def _signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """StopTrainingJob / cancel: SIGTERM, a grace period, SIGKILL; outputs are still uploaded."""
        if self.proc is None or self.finalized:
            return
        if self.proc.poll() is None:
            self.stopped = True
            self.enter("Stopping")
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode
        try:
            self._log.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
            print(f"platbench: local mode could not upload outputs after stopping: {exc}", file=sys.stderr)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> dict:
        return self.describe_fn(self)

    # -------------------------------------------------------------- factories
    @classmethod
    def sagemaker(cls, request: dict, store, prefix: str, staged) -> "LocalRun":
        """SageMaker's training container contract, with /opt/ml moved to a temp dir (PLATBENCH_OPT_ML)."""
        root = Path(tempfile.mkdtemp(prefix=f"platbench-{request['TrainingJobName']}-"))
        opt_ml = root / "opt_ml"
        name = request["TrainingJobName"]
        env = {**os.environ, **request.get("Environment", {}), "TRAINING_JOB_NAME": name,
               "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{name}",
               "PLATBENCH_OPT_ML": str(opt_ml), "PLATBENCH_UNPACK_DIR": str(root / "unpacked"),
               "PYTHONUNBUFFERED": "1"}
        checkpoint = request.get("CheckpointConfig", {}).get("S3Uri")
        bucket = store.bucket

        def key_of(uri: str) -> str:
            head = f"s3://{bucket}/"
            if not uri.startswith(head):
                raise UserError(f"local mode reads and writes bucket {bucket} only, not {uri}")
            return uri[len(head):]

        def prepare(run: "LocalRun") -> None:
            run.enter("Starting")
            config = opt_ml / "input/config"
            config.mkdir(parents=True)
            (config / "hyperparameters.json").write_text(json.dumps(request["HyperParameters"]))
            (config / "inputdataconfig.json").write_text(json.dumps({
                c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"),
                                   "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                                   "RecordWrapperType": "None"} for c in request["InputDataConfig"]}))
            (config / "resourceconfig.json").write_text(json.dumps(
                {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
            for d in ("model", "output/data", "checkpoints"):
                (opt_ml / d).mkdir(parents=True, exist_ok=True)
            run.enter("Downloading")
            from platforms.storage.staging import download_staged

            run.figures.update(download_staged(staged, store, opt_ml / "input/data" /
                                               request["InputDataConfig"][0]["ChannelName"]))
            if checkpoint:
                from platforms.storage.staging import download_prefix

                download_prefix(store, key_of(checkpoint).rstrip("/") + "/", opt_ml / "checkpoints")

        def finalize(run: "LocalRun", rc: Optional[int]) -> None:
            failure = opt_ml / "output/failure"
            if failure.is_file():
                run.failure = failure.read_text()[:1024]
            out = key_of(request["OutputDataConfig"]["S3OutputPath"]).rstrip("/") + f"/{name}/output"
            t0 = time.perf_counter()
            sent = 0
            for src, tar_name in ((opt_ml / "model", "model.tar.gz"), (opt_ml / "output/data", "output.tar.gz")):
                tar_path = root / tar_name
                with tarfile.open(tar_path, "w:gz") as tar:
                    for p in sorted(src.rglob("*")):
                        tar.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
                store.put_file(f"{out}/{tar_name}", tar_path)
                sent += tar_path.stat().st_size
            if checkpoint:
                _sync_up(store, opt_ml / "checkpoints", key_of(checkpoint).rstrip("/") + "/")
            run.figures["output_upload_seconds"] = time.perf_counter() - t0
            run.figures["output_upload_mb"] = sent / (1024 * 1024)

        def describe(run: "LocalRun") -> dict:
            final = run.timeline[-1][0] if run.timeline else "Starting"
            status = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped",
                      "MaxRuntimeExceeded": "Stopped"}.get(final, "InProgress")
            training = [t for t in run.timeline if t[0] == "Training"]
            d = {"TrainingJobName": name, "TrainingJobStatus": status, "SecondaryStatus": final,
                 "SecondaryStatusTransitions": [{"Status": s, "StartTime": a, "EndTime": b or _now()}
                                                for s, a, b in run.timeline],
                 "ResourceConfig": request["ResourceConfig"], "CreationTime": run.created,
                 "ModelArtifacts": {"S3ModelArtifacts":
                                    f"{request['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"}}
            if training:
                d["TrainingStartTime"] = training[0][1]
                if status != "InProgress":
                    d["TrainingEndTime"] = run.timeline[-1][1]
            if run.failure and status != "Completed":
                d["FailureReason"] = run.failure
            return d

        epochs = request["HyperParameters"].get("epochs")
        from platforms.sagemaker import PHASES

        return cls("sagemaker", name, [sys.executable, "-m", "trainer", "train"], env, root,
                   int(request["StoppingCondition"]["MaxRuntimeInSeconds"]), prepare, finalize, describe,
                   epochs=int(epochs) if epochs else _preset_epochs(request["HyperParameters"].get("model")),
                   phase_names=PHASES)

    @classmethod
    def vertex(cls, custom_job: dict, job_name: str, store, staged) -> "LocalRun":
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

        def prepare(run: "LocalRun") -> None:
            run.enter("JOB_STATE_QUEUED")
            run.enter("JOB_STATE_PENDING")
            from platforms.storage.staging import download_prefix, download_staged

            run.figures.update(download_staged(staged, store, gcs / bucket / staged.prefix
                                               if staged.mode == "sharded" else gcs / bucket / staged.data_key))
            download_prefix(store, f"{base_key}/checkpoints/", gcs / bucket / base_key / "checkpoints")

        def finalize(run: "LocalRun", rc: Optional[int]) -> None:
            t0 = time.perf_counter()
            sent = _sync_up(store, gcs / bucket / base_key, base_key + "/", delete=False)
            run.figures["output_upload_seconds"] = time.perf_counter() - t0
            run.figures["output_upload_mb"] = sent / (1024 * 1024)

        def describe(run: "LocalRun") -> dict:
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
        from platforms.vertex import PHASES

        return cls("vertex", job_name, argv, env, root, int(float(str(timeout).rstrip("s"))), prepare, finalize,
                   describe, epochs=int(epochs) if epochs else _preset_epochs(model), phase_names=PHASES,
                   running_status="JOB_STATE_RUNNING")


def _preset_epochs(model: Optional[str]) -> Optional[int]:
    try:
        from trainer.models import get_preset

        return get_preset(model or "small").hyperparameters.epochs
    except Exception:  # noqa: BLE001 - only for the progress bar's total
        return None


def _sync_up(store, src: Path, prefix: str, delete: bool = True) -> int:
    """Mirror a local folder to prefix: upload every file; with delete, remove keys no longer present
    (SageMaker: "If a checkpoint is deleted in the SageMaker container, it will also be deleted in the S3
    folder", https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html)."""
    src = Path(src)
    files = {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()} if src.is_dir() else {}
    sent = 0
    for rel, path in files.items():
        store.put_file(prefix + rel, path)
        sent += path.stat().st_size
    if delete:
        stale = [k for k, _ in store.list(prefix) if k[len(prefix):] not in files]
        store.delete(stale)
    return sent


def collect_tarballs(store, key_prefix: str, dest: Path, fingerprint: str, what: str) -> dict:
    """SageMaker's outputs: output.tar.gz → dest/, model.tar.gz → dest/model/; then check that the
    trainer read the dataset that was staged (results.json's fingerprint)."""
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    got = 0
    with tempfile.TemporaryDirectory() as tmp:
        for tar_name, target in (("output.tar.gz", dest), ("model.tar.gz", dest / "model")):
            key = f"{key_prefix.rstrip('/')}/{tar_name}"
            if store.size(key) is None:
                raise UserError(f"{what} finished but wrote no {tar_name} at {store.uri(key)}")
            path = Path(tmp) / tar_name
            got += store.get_file(key, path)
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:
                    tar.extractall(target)
    check_fingerprint(dest, fingerprint, what)
    seconds = time.perf_counter() - t0
    return {"collect_seconds": seconds, "collect_mb": got / (1024 * 1024)}


def check_fingerprint(out: Path, fingerprint: str, what: str) -> None:
    from trainer.results import RESULTS_FILE, read_results

    if not (out / RESULTS_FILE).is_file():
        return  # preempted / stopped before the end: nothing to compare
    read = read_results(out).dataset.fingerprint
    if read != fingerprint:
        raise UserError(f"{what}: the trainer read dataset {read[:12]}… but {fingerprint[:12]}… was staged")
