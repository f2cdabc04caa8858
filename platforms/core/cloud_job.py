"""The cloud-job template: what every cloud launcher does the same way, written once.

A cloud launcher subclasses `CloudJobPlatform` and supplies only its own calls; the template runs them:

    submit → poll until a terminal state → the platform's timeline → Outcome → collect, and always teardown.

What the template owns (the template methods; a platform does not override them):
- `wait(handle, progress)`: in local mode, the LocalRun's own wait and describe, its figures as metrics,
  nothing billed and the tag platbench.local_runner (LocalRun.runner: native | docker); otherwise poll
  `jobs.get(handle.job_id)` every `poll_seconds` until `job_state(...)` is in TERMINAL: the first sighting
  of each state is kept in `handle.seen` and PHASES[state] goes to progress.phase; a job still in one of
  QUEUED after `max_queue` seconds, or in any state after `max_run` (+ `max_queue`) plus `grace_seconds`,
  is one "still X after …; cancelling it" error (teardown cancels it). The last description is always in
  `handle.described`.
- `teardown(handle)`: local mode stops the LocalRun (outputs still uploaded) and removes its scratch space; a
  job not seen in a terminal state is cancelled, with one message: "platbench: cancelled NOUN ID" or
  "platbench: could not cancel NOUN ID: reason"; then `release(handle)`. `handle` is None when stage() or
  submit() failed (nothing was submitted): only `release(None)` runs. Never raises.
- `stage(job)`: the dataset into the platform's object store (`self._store`) with the settings' staging
  mode under their prefix; `price_per_hour()` from `self._quote`.
- helpers a platform calls: `needs(...)` (preflight's list of what a real launch still lacks),
  `collect_folders(...)` (collect() of outputs that are folders in `self._store`), `costs(seconds, on_demand)`
  (the Outcome's cost_usd and list_estimate_usd).

What a platform supplies:
- class attributes PHASES (state → platbench phase), TERMINAL (end states), QUEUED (states that count
  against max_queue; empty: no queue bound), job_noun ("Vertex AI job", "Databricks run": the messages);
- `self.jobs`: its `CloudJobs` (create / get / cancel, REST-shaped dicts), made in `check()`;
- `job_state(described) -> str` and `job_outcome(handle, described) -> Outcome` (phases from the job's
  timeline: `timeline_phases` adds up the seconds between state changes);
- its handle: a `CloudJob` subclass with its own fields;
- optional hooks: `queued_since`, `queue_hint`, `after_poll` (logs, epochs), `after_end` (a failure's reason,
  extra figures), `pause` (what to do between polls), `cancel_job` (default `jobs.cancel(job_id)`),
  `release` (best-effort cleanup beyond the job).

Its settings model has `poll_seconds` and `max_run`, and `max_queue` where QUEUED is not empty.

Like dstack's per-backend Compute (a backend implements run/terminate, the shared code drives them) and
MLflow's ArtifactRepository (log_artifacts / download_artifacts written once over a few abstract calls)."""
from __future__ import annotations

import re
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Optional

from platforms.core.api import Job, Outcome, Platform
from platforms.core.emulator import RUNNER_TAG, LocalRun, collected
from platforms.errors import UserError

GRACE_SECONDS = 3600  # past its own limits, a job the service has not ended is given up (and cancelled)
STOPPED_BY_TAG = "platbench.stopped_by"  # "budget": --max-usd ended the job (core/launch.py, the report)


class CloudJobs(ABC):
    """The seam around a platform's job API: create, describe and cancel one job, in the service's own
    (REST-shaped) dicts. Local mode replaces it with a LocalRun; everything else is the same code."""

    @abstractmethod
    def create(self, spec: dict) -> Any:
        """Start the job `spec` describes; returns its id."""

    @abstractmethod
    def get(self, job_id: Any) -> dict:
        """The job's description as the service returns it."""

    @abstractmethod
    def cancel(self, job_id: Any) -> None:
        """Ask the service to end the job."""


@dataclass(kw_only=True)
class CloudJob:
    """A submitted job as the template sees it; a platform's handle subclasses it with its own fields."""

    job_id: Any = None                    # the service's id for the job (local mode: the job's name)
    spec: dict = field(default_factory=dict)           # the job as sent
    staged: Any = None                    # platforms.core.staging's Staged dataset it reads
    local_run: Optional[LocalRun] = None  # local mode: the run on this machine
    described: dict = field(default_factory=dict)      # the last description polling (or local mode) got
    seen: dict = field(default_factory=dict)           # state → when polling first saw it (UTC)


def timestamp(value) -> Optional[datetime]:
    """An RFC 3339 time (or a datetime) as an aware datetime; None for none. Nanoseconds are cut to micro."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).replace("Z", "+00:00")
    m = re.match(r"^(.*\.\d{6})\d*(\+.*)$", text)
    return datetime.fromisoformat(m.group(1) + m.group(2) if m else text)


def seen_timeline(handle: CloudJob) -> list[tuple[str, datetime]]:
    """The states polling saw, in the order it first saw them."""
    return sorted(handle.seen.items(), key=lambda kv: kv[1])


def timeline_phases(points: list[tuple[str, Optional[datetime]]], end: datetime,
                    phases: dict[str, str]) -> dict[str, float]:
    """Seconds per platbench phase: each (state, entered) point lasts until the next one (the last until
    `end`); states without a phase are left out, repeated phases add up."""
    out: dict[str, float] = {}
    for (state, a), (_, b) in zip(points, list(points[1:]) + [("end", end)]):
        if state in phases and a and b:
            out[phases[state]] = out.get(phases[state], 0.0) + max(0.0, (b - a).total_seconds())
    return out


class CloudJobPlatform(Platform):
    """A Platform whose job runs on a cloud service (see the module's docstring for the contract)."""

    PHASES: ClassVar[dict[str, str]] = {}
    TERMINAL: ClassVar[frozenset] = frozenset()
    QUEUED: ClassVar[frozenset] = frozenset()
    job_noun: ClassVar[str] = "job"
    grace_seconds: ClassVar[float] = GRACE_SECONDS
    max_usd: Optional[float] = None  # --max-usd (core/launch.py sets it): wait() stops the job before it is spent
    # core/launch.py calls teardown(None) when stage() or submit() fails: release() still runs
    teardown_without_job: ClassVar[bool] = True

    def __init__(self, settings=None):
        super().__init__(settings)
        self.jobs: Optional[CloudJobs] = None
        self._store = None      # the platform's ObjectStore, opened in check()
        self._staged = None     # what stage() uploaded
        self._quote = None      # platforms.core.pricing.Quote of the job, where prices.yaml has one

    # ------------------------------------------------------------------ what a platform supplies
    @abstractmethod
    def job_state(self, described: dict) -> str:
        """The job's state in a description (a key of PHASES, TERMINAL or QUEUED)."""

    @abstractmethod
    def job_outcome(self, handle: CloudJob, described: dict) -> Outcome:
        """How the job ended, its phases and cost, from its last description (local mode's too)."""

    def queued_since(self, handle: CloudJob, described: dict) -> datetime:
        """When the job began waiting in the queue; default: when polling first saw it queued."""
        return handle.seen[self.job_state(described)]

    def queue_hint(self) -> str:
        """What a job stuck in the queue most likely lacks (a quota), for the max_queue error; '' if unknown."""
        return ""

    def after_poll(self, handle: CloudJob, described: dict, progress) -> None:
        """Called after each poll (cloud mode): e.g. epochs from the job's log."""

    def after_end(self, handle: CloudJob, described: dict, outcome: Outcome) -> Outcome:
        """Called once the job ended (cloud mode): e.g. a failure's reason, figures from other calls."""
        return outcome

    def pause(self, handle: CloudJob, progress, seconds: float) -> None:
        """Between two polls: sleep (a platform that streams the job's log reads it here)."""
        time.sleep(seconds)

    def cancel_job(self, handle: CloudJob) -> None:
        self.jobs.cancel(handle.job_id)

    def release(self, handle: Optional[CloudJob]) -> None:
        """Best-effort cleanup beyond the job itself, after a run or a failed stage/submit (handle None)."""

    # ------------------------------------------------------------------ the template
    def stage(self, job: Job, **upload) -> dict[str, Any]:
        """The dataset into the platform's object store; `upload`: staging.upload's options (shard_mb)."""
        from platforms.core import staging, tracking

        cfg = self.parsed()
        self._staged = staging.upload(job.data, self._store, cfg.staging, cfg.prefix, **upload)
        return {**self._staged.figures, "staging": self._staged.mode,
                tracking.Tag.DATASET_FINGERPRINT: self._staged.fingerprint}

    def wait(self, handle: CloudJob, progress) -> Outcome:
        if handle.local_run is not None:
            handle.local_run.wait(progress)
            handle.described = handle.local_run.describe()
            outcome = self.job_outcome(handle, handle.described)
            outcome.metrics.update(handle.local_run.figures)
            # nothing is billed on this machine
            outcome.billed_seconds = outcome.cost_usd = outcome.list_estimate_usd = None
            outcome.tags[RUNNER_TAG] = handle.local_run.runner
            return outcome
        cfg = self.parsed()
        max_queue = getattr(cfg, "max_queue", None) if self.QUEUED else None
        deadline = time.time() + cfg.max_run + (max_queue or 0) + self.grace_seconds
        started, over_budget, last = time.time(), None, 0.0
        while True:
            d = handle.described = self.jobs.get(handle.job_id)
            state = self.job_state(d)
            if state not in handle.seen:
                handle.seen[state] = datetime.now(timezone.utc)
                if state in self.PHASES:
                    progress.phase(self.PHASES[state])
            self.after_poll(handle, d, progress)
            if state in self.TERMINAL:
                break
            if max_queue is not None and state in self.QUEUED:
                queued = (datetime.now(timezone.utc) - self.queued_since(handle, d)).total_seconds()
                if queued > max_queue:
                    hint = self.queue_hint()
                    raise UserError(f"{self.name}: {self.job_noun} {handle.job_id} still queued after {queued:.0f} s "
                                    f"(max_queue={max_queue}){'; it is most likely short of ' + hint if hint else ''}"
                                    "; cancelling it")
            if time.time() > deadline:
                raise UserError(f"{self.name}: {self.job_noun} {handle.job_id} still {state} after its timeout plus an "
                                "hour; cancelling it")
            if over_budget is None:
                elapsed = time.time() - started
                # a poll takes longer than poll_seconds when the service answers slowly: the step is what was seen
                over_budget = self.over_budget(handle, elapsed, max(cfg.poll_seconds, elapsed - last))
                last = elapsed
            # once cancelled by the budget the job ends when the service says so: look sooner, tear down sooner
            self.pause(handle, progress, cfg.poll_seconds if over_budget is None else min(cfg.poll_seconds, 2.0))
        outcome = self.after_end(handle, d, self.job_outcome(handle, d))
        if over_budget is not None and outcome.status != "finished":  # a job that ended first stays finished
            outcome.status, outcome.message = "killed", over_budget
            outcome.tags[STOPPED_BY_TAG] = "budget"
        return outcome

    def over_budget(self, handle: CloudJob, elapsed: float, step: float) -> Optional[str]:
        """With a budget: when the spend so far (the job's quote, instances included, × the seconds since it
        was submitted) would cross it within two poll steps (the next poll, then the cancel taking effect),
        cancel the job and say so; polling then waits for the service to end it, and teardown releases the rest."""
        if self.max_usd is None or self._quote is None:
            return None
        spent = self._quote.usd_per_hour * elapsed / 3600
        if self._quote.usd_per_hour * (elapsed + 2 * step) / 3600 < self.max_usd:
            return None
        self.cancel_job(handle)
        why = (f"stopped by budget: {spent:.4f} USD spent of --max-usd {self.max_usd:g} "
               f"({self._quote.usd_per_hour:.4f} USD/h × {elapsed:.0f} s)")
        say(f"{why}; cancelled {self.job_noun} {handle.job_id}")
        return why

    def teardown(self, handle: Optional[CloudJob]) -> None:
        """Cancel the job if it may still run, remove local-mode scratch space, then release(); staged data
        (content-addressed, reused) and outputs (checkpoints for a resume) stay. Never raises: teardown runs
        while another error may be on its way out."""
        try:
            if handle is not None and handle.local_run is not None:
                handle.local_run.stop()
                handle.local_run.cleanup()
            elif handle is not None and handle.job_id is not None \
                    and self.job_state(handle.described or {}) not in self.TERMINAL:
                try:
                    self.cancel_job(handle)
                    say(f"cancelled {self.job_noun} {handle.job_id}")
                except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
                    say(f"could not cancel {self.job_noun} {handle.job_id}: {exc}")
        finally:
            try:
                self.release(handle)
            except Exception as exc:  # noqa: BLE001 - best effort, as above
                say(f"could not clean up after the {self.job_noun}: {exc}")

    def price_per_hour(self) -> Optional[float]:
        return self._quote.usd_per_hour if self._quote else None

    # ------------------------------------------------------------------ helpers a platform calls
    def needs(self, credentials: tuple[bool, str], whose: str, missing: dict[str, str], priced: str = "") -> list[str]:
        """preflight's list: `whose` credentials when the offline lookup (found, where) found none, how to
        give each setting of `missing` (name → how) that the settings leave empty, and, with `priced` (what
        is priced, where), a price when `self._quote` is None."""
        found, where = credentials
        cfg = self.parsed()
        lacking = [] if found else [f"{whose} credentials ({where})"]
        lacking += [how for key, how in missing.items() if not getattr(cfg, key)]
        if priced and self._quote is None:
            lacking.append(f"a price for {priced} (platforms/{self.name}/prices.yaml): the cost will be unknown")
        return lacking

    def collect_folders(self, handle: CloudJob, outcome: Outcome, dest: Path, folders: list[tuple[str, str]],
                        what: str, where: str) -> Path:
        """collect() where the job's outputs are folders in `self._store`: each (key prefix, sub-folder of
        dest or "") downloaded, then the checks every collect makes (core.emulator.collected)."""
        from platforms.core.staging import download_prefix

        dest, got, seconds = Path(dest), 0, 0.0
        for key, sub in folders:
            n, s = download_prefix(self._store, key, dest / sub if sub else dest)
            got, seconds = got + n, seconds + s
        return collected(outcome, dest, handle.staged.fingerprint, what, where, got, seconds)

    def costs(self, seconds: Optional[float], on_demand) -> dict[str, Optional[float]]:
        """Outcome's cost_usd (the job's own quote, spot where it is) and list_estimate_usd (`on_demand`, a
        pricing.Quote or None) for the job's `seconds`."""
        return {"cost_usd": self._quote.cost(seconds) if self._quote else None,
                "list_estimate_usd": on_demand.cost(seconds) if on_demand else None}


def say(text: str) -> None:
    """One line of teardown news on stderr (an SDK error's first line only)."""
    print(f"platbench: {text}".splitlines()[0], file=sys.stderr)
