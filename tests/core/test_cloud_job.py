"""The cloud-job template (platforms/core/cloud_job.py) on its own: a small platform built on it whose job
service is a scripted sequence of descriptions (the seam CloudJobs, implemented here), driven through the
same launch steps as every platform (core/launch.py launch_platform)."""
from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest
from pydantic import BaseModel

from platforms.core import tracking
from platforms.core.api import Feature, Job, Outcome, PlanStep, PlatformSpec
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs, timeline_phases, timestamp
from platforms.core.emulator import RUNNER_TAG, LocalRun
from platforms.core.launch import launch_platform
from platforms.core.progress import JobProgress
from platforms.errors import UserError


class Service(CloudJobs):
    """A job service that answers each get() with the next state of a script (the last one repeats)."""

    def __init__(self, states: list[str], cancel_fails: Optional[str] = None):
        self.states, self.cancel_fails = list(states), cancel_fails
        self.created: list[dict] = []
        self.cancelled: list[str] = []
        self.gets = 0

    def create(self, spec: dict) -> str:
        self.created.append(spec)
        return f"jobs/{len(self.created)}"

    def get(self, job_id: str) -> dict:
        state = self.states[min(self.gets, len(self.states) - 1)]
        self.gets += 1
        return {"id": job_id, "state": state, "created": "2026-12-06T08:00:00.123456789Z"}

    def cancel(self, job_id: str) -> None:
        if self.cancel_fails:
            raise RuntimeError(self.cancel_fails + "\nsecond line")
        self.cancelled.append(job_id)


class Settings(BaseModel):
    poll_seconds: float = 0.01
    max_run: int = 60
    max_queue: Optional[int] = None
    local: bool = False
    script: str = "print('- Epoch: 1')"      # local mode: what the job's process runs


def local_run(script: str, max_run: int) -> LocalRun:
    """A job on this machine: `python -c script`, described as the scripted service describes its jobs."""
    def describe(run: LocalRun) -> dict:
        final = run.timeline[-1][0] if run.timeline else "QUEUED"
        return {"state": {"Completed": "DONE", "Stopped": "CANCELLED"}.get(final, "FAILED" if run.finalized else
                                                                              "RUNNING")}

    def finalize(run: LocalRun, rc) -> None:
        run.figures["output_upload_seconds"] = 0.5

    return LocalRun("scripted", "local-job", [sys.executable, "-c", script], {}, Path(tempfile.mkdtemp()), max_run,
                    prepare=lambda run: run.enter("QUEUED"), finalize=finalize, describe_fn=describe,
                    phase_names=Scripted.PHASES, running_status="RUNNING")


class Scripted(CloudJobPlatform):
    spec = PlatformSpec(name="scripted", title="a scripted job service", package=__name__, launcher="",
                        lacks={Feature.ENDPOINTS: "a test platform", Feature.REMOTE_STORAGE: "a test platform"})
    settings_model = Settings
    PHASES = {"QUEUED": "queued", "RUNNING": "training"}
    TERMINAL = frozenset({"DONE", "FAILED", "CANCELLED"})
    QUEUED = frozenset({"QUEUED"})
    job_noun = "scripted job"

    def __init__(self, settings=None, service: Optional[Service] = None, stage_fails: bool = False):
        super().__init__(settings)
        self.jobs, self.stage_fails = service, stage_fails
        self.released: list = []
        self.ended: list = []

    def plan(self, job):
        return [PlanStep("run it")]

    def stage(self, job):
        if self.stage_fails:
            raise UserError("scripted: the upload broke")
        return {}

    def submit(self, job, staged):
        cfg = self.parsed()
        if cfg.local:
            handle = CloudJob(job_id="local-job", local_run=local_run(cfg.script, cfg.max_run))
            handle.local_run.start()
            return handle
        return CloudJob(job_id=self.jobs.create({"model": job.model}))

    def job_state(self, described):
        return described.get("state", "UNKNOWN")

    def queued_since(self, handle, described):
        return timestamp(described["created"])

    def queue_hint(self):
        return "the quota 'scripted GPUs'"

    def job_outcome(self, handle, described):
        status = {"DONE": "finished", "CANCELLED": "killed"}.get(described["state"], "failed")
        return Outcome(status, phases=timeline_phases([(s, t) for s, t in handle.seen.items()],
                                                      datetime.now(timezone.utc), self.PHASES))

    def after_end(self, handle, described, outcome):
        self.ended.append(described["state"])
        return outcome

    def collect(self, handle, outcome, dest):
        return dest

    def run_tags(self, job):
        return {tracking.Tag.LOCAL_MODE: str(self.parsed().local).lower()}

    def release(self, handle):
        self.released.append(handle)


class Progress(JobProgress):
    def __init__(self, interrupt_at: Optional[str] = None):
        super().__init__(enabled=False)
        self.interrupt_at = interrupt_at

    def phase(self, name):
        super().phase(name)
        if name == self.interrupt_at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow store with its tables made and nothing in it: MLflow's ~1 s of CPU creating and migrating the
    tables of a new sqlite file, spent once for the module instead of once per test."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("empty-store") / tracking.DB_FILE
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def job(tmp_path, monkeypatch, empty_store):
    import shutil

    monkeypatch.chdir(tmp_path)  # the MLflow store of each test is its own: a copy of the empty one
    shutil.copyfile(empty_store, tmp_path / tracking.DB_FILE)
    (tmp_path / "data").mkdir()
    return Job(data=tmp_path / "data", out=tmp_path / "out")


def last_run():
    c = tracking.client()
    return c.search_runs([tracking.experiment_id(c)])[0]


def test_a_failed_stage_still_tears_down(job, capsys):
    """Nothing was submitted (no handle), but what staging may have left is released, and the error is the
    stage's one line; the MLflow run is FAILED."""
    p = Scripted({}, Service(["DONE"]), stage_fails=True)
    with pytest.raises(UserError, match="the upload broke"):
        launch_platform(p, job, Progress())
    assert p.released == [None]
    assert p.jobs.created == [] and p.jobs.cancelled == []
    assert last_run().info.status == "FAILED"


def test_polling_reports_each_state_once_and_ends_in_the_outcome(job):
    service = Service(["QUEUED", "QUEUED", "RUNNING", "RUNNING", "DONE"])
    p = Scripted({}, service)
    progress = Progress()
    outcome, run_id = launch_platform(p, job, progress)
    assert outcome.status == "finished"
    assert [name for name, _ in progress.phases] == ["staging", "submitting", "queued", "training"]
    assert service.gets == 5 and service.cancelled == []  # ended by itself: nothing to cancel
    assert set(outcome.phases) == {"queued", "training"}
    assert p.ended == ["DONE"] and len(p.released) == 1 and p.released[0].described["state"] == "DONE"
    assert tracking.client().get_run(run_id).info.status == "FINISHED"


def test_a_job_queued_past_max_queue_is_one_line_and_cancelled(job, capsys):
    service = Service(["QUEUED"])
    p = Scripted({"max_queue": "1"}, service)
    with pytest.raises(UserError) as err:
        launch_platform(p, job, Progress())
    text = str(err.value)
    assert text.startswith("scripted: scripted job jobs/1 still queued after ") and "(max_queue=1)" in text
    assert "most likely short of the quota 'scripted GPUs'; cancelling it" in text and "\n" not in text
    assert service.cancelled == ["jobs/1"]
    assert "platbench: cancelled scripted job jobs/1" in capsys.readouterr().err


def test_a_job_past_its_timeout_is_given_up_and_cancelled(job, capsys):
    service = Service(["RUNNING"])
    p = Scripted({"max_run": "0"}, service)
    p.grace_seconds = 0
    with pytest.raises(UserError, match=r"^scripted: scripted job jobs/1 still RUNNING after its timeout plus"):
        launch_platform(p, job, Progress())
    assert service.cancelled == ["jobs/1"]


def test_ctrl_c_cancels_a_running_job_and_the_run_is_killed(job, capsys):
    service = Service(["QUEUED", "RUNNING"])
    p = Scripted({}, service)
    with pytest.raises(KeyboardInterrupt):
        launch_platform(p, job, Progress(interrupt_at="training"))
    assert service.cancelled == ["jobs/1"]
    assert "platbench: cancelled scripted job jobs/1\n" in capsys.readouterr().err
    assert last_run().info.status == "KILLED"


def test_a_cancel_that_fails_is_one_line_and_hides_nothing(job, capsys):
    service = Service(["RUNNING"], cancel_fails="403 Forbidden: no permission")
    p = Scripted({}, service)
    with pytest.raises(KeyboardInterrupt):
        launch_platform(p, job, Progress(interrupt_at="training"))
    err = capsys.readouterr().err
    assert "platbench: could not cancel scripted job jobs/1: 403 Forbidden: no permission\n" in err
    assert "second line" not in err
    assert len(p.released) == 1  # released all the same


def test_teardown_leaves_an_ended_job_alone():
    service = Service(["FAILED"])
    p = Scripted({}, service)
    handle = CloudJob(job_id="jobs/7", described={"state": "FAILED"})
    p.teardown(handle)
    p.teardown(None)
    assert service.cancelled == [] and p.released == [handle, None]


def test_local_mode_runs_here_bills_nothing_and_says_it_ran_natively(job):
    service = Service(["RUNNING"])  # never asked: local mode replaces the job service
    p = Scripted({"local": "true"}, service)
    progress = Progress()
    outcome, run_id = launch_platform(p, job, progress)
    assert outcome.status == "finished" and service.gets == 0 and service.created == []
    assert outcome.cost_usd is None and outcome.billed_seconds is None and outcome.list_estimate_usd is None
    assert outcome.metrics["output_upload_seconds"] == 0.5  # the LocalRun's figures
    assert outcome.tags[RUNNER_TAG] == "native"
    assert [name for name, _ in progress.phases][2:] == ["queued", "training"]
    assert tracking.client().get_run(run_id).data.tags[RUNNER_TAG] == "native"


def test_ctrl_c_in_local_mode_stops_the_process_and_removes_its_scratch(job, capsys):
    p = Scripted({"local": "true", "script": "import time; print('- Epoch: 1', flush=True); time.sleep(600)"},
                 Service(["RUNNING"]))
    with pytest.raises(KeyboardInterrupt):
        launch_platform(p, job, Progress(interrupt_at="training"))
    run = p.released[0].local_run
    assert run.stopped and run.proc.poll() is not None and not run.root.exists()
    assert run.describe()["state"] == "CANCELLED" and p.jobs.cancelled == []
    assert "could not" not in capsys.readouterr().err
    assert last_run().info.status == "KILLED"


def test_timeline_phases_and_timestamps():
    t0 = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
    points = [("QUEUED", t0), ("RUNNING", t0 + timedelta(seconds=5)), ("QUEUED", t0 + timedelta(seconds=7)),
              ("RUNNING", t0 + timedelta(seconds=8)), ("DONE", t0 + timedelta(seconds=20))]
    assert timeline_phases(points, t0 + timedelta(seconds=30), Scripted.PHASES) == {"queued": 6.0, "training": 14.0}
    assert timestamp("2026-12-06T08:00:00.123456789Z") == t0.replace(microsecond=123456)
    assert timestamp(datetime(2026, 12, 6, 8)) == t0 and timestamp("") is None
