"""Local mode for the cloud launchers (shared machinery; each platform's own contract is in
platforms/<name>/emulator.py): the job runs on this machine, natively (`python -m trainer train`
as a subprocess), under the platform's container contract, reading its input from and writing its
output to the platform's object storage — what SageMaker's own local mode does with Docker, without
Docker. Users debug the whole flow before they pay; the tests run it end to end against loopback servers.

A LocalRun keeps a timeline of the states a real job would pass through and answers `describe()` in
the platform's own response shape, so the launcher turns it into an Outcome with the same code it uses
for the real service.
"""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from platforms.errors import UserError

STOP_GRACE_SECONDS = 30  # SIGTERM, then SIGKILL (SageMaker allows 120 s; the trainer needs far less)
# the Outcome tag (and MLflow run tag) saying how a local-mode job ran: "native" (python -m trainer here,
# outside the image: core/launch.py demands no image digest of its outputs) or "docker" (the image)
RUNNER_TAG = "platbench.local_runner"


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
    runner: str = "native"            # RUNNER_TAG's value: "docker" where the argv runs the image

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
        self.progress = progress
        for status, _, _ in self.timeline:  # the states passed before the display was handed over
            if status in self.phase_names:
                progress.phase(self.phase_names[status])
        if self.epochs:
            progress.epochs(self.epochs)
        finished_pump = False
        while True:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None:
                finished_pump = True
            elif line:
                progress.log_line(line)
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
        except Exception:  # noqa: BLE001 - start() may have failed before opening it
            pass
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
            print(f"platbench: local mode could not upload outputs after stopping: {exc}", file=sys.stderr)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> dict:
        return self.describe_fn(self)


def preset_epochs(model: Optional[str]) -> Optional[int]:
    try:
        from trainer.models import get_preset

        return get_preset(model or "small").hyperparameters.epochs
    except Exception:  # noqa: BLE001 - only for the progress bar's total
        return None


def sync_up(store, src: Path, prefix: str, delete: bool = True) -> int:
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


def collected(outcome, dest: Path, fingerprint: str, what: str, where: str, got_bytes: int,
              seconds: float) -> Path:
    """The end of every remote collect: a finished job must have written results.json (into `where`), the
    trainer must have read the dataset that was staged, and the download's size and time become metrics."""
    from trainer.results import RESULTS_FILE

    dest = Path(dest)
    if outcome.status == "finished" and not (dest / RESULTS_FILE).is_file():
        raise UserError(f"{what} finished but wrote no results.json under {where}")
    check_fingerprint(dest, fingerprint, what)
    outcome.metrics.update({"collect_seconds": seconds, "collect_mb": got_bytes / (1024 * 1024)})
    outcome.output_dir = dest
    return dest


def check_fingerprint(out: Path, fingerprint: str, what: str) -> None:
    from trainer.results import RESULTS_FILE, read_results

    if not (out / RESULTS_FILE).is_file():
        return  # preempted / stopped before the end: nothing to compare
    read = read_results(out).dataset.fingerprint
    if read != fingerprint:
        raise UserError(f"{what}: the trainer read dataset {read[:12]}… but {fingerprint[:12]}… was staged")
