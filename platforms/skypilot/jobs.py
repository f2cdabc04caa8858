"""One launch's SkyPilot job as the cloud-job template sees it: its handle, and the job's calls (the
template's CloudJobs seam) for both kinds of job:

- on-demand: `sky.launch(task, cluster_name, down=True)` → (job_id, handle); the job's log with
  `sky.tail_logs(cluster, job_id, follow=True)`; its end state with `sky.job_status`; cancelled by `sky.down`
  (the cluster runs only this job) (https://docs.skypilot.co/en/latest/reference/api.html, "Cluster API").
- use_spot=true: a managed job, `sky.jobs.launch(task, name)` → job_id; `sky.jobs.tail_logs(job_id=…,
  follow=True)`, `sky.jobs.queue`, `sky.jobs.cancel` (same page, "Managed Jobs API")."""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any, Optional

from platforms.core.cloud_job import CloudJob, CloudJobs
from platforms.errors import UserError
from platforms.skypilot.client import sky

ENDED = "ended"  # job_state of any terminal status: SkyPilot's own say which (JobStatus.is_terminal)


@dataclass(kw_only=True)
class SkyHandle(CloudJob):
    """job_id: SkyPilot's job id (None until the launch returned it); described: {"status", "terminal"}."""

    name: str                 # cluster name, or the managed job's name
    managed: bool
    out_key: str
    resources: Any = None     # the launched sky.Resources (on-demand clusters)
    started: float = 0.0
    ended: Optional[float] = None
    done: bool = False        # the job ended, or was cancelled (a managed job) / its cluster downed
    exit_code: Optional[int] = None  # what the log tail returned (sky.exceptions.JobExitCode)
    downed: bool = False      # cancelled: the managed job, or the on-demand cluster taken down
    tail: Any = None          # the log-tail thread
    last_status: Optional[str] = None

    def follow(self, progress) -> None:
        """The job's log, line by line to `progress`, in a thread that ends with the job (its exit code)."""
        mod, stream = sky(), LogLines(progress)

        def tail():
            self.exit_code = (mod.jobs.tail_logs(job_id=self.job_id, follow=True, output_stream=stream) if self.managed
                              else mod.tail_logs(self.name, self.job_id, follow=True, output_stream=stream))

        self.tail = threading.Thread(target=tail, daemon=True)
        self.tail.start()


class SkyJobs(CloudJobs):
    """One launch's job: `sky.launch` / `sky.jobs.launch`, its status, its cancel (a managed job's cancel;
    an on-demand cluster runs only this job, so `sky down`)."""

    def __init__(self, handle: SkyHandle):
        self.handle = handle

    def create(self, task) -> str:
        """The launch request's id; the launch itself is streamed by submit()."""
        mod = sky()
        return (mod.jobs.launch(task, name=self.handle.name) if self.handle.managed
                else mod.launch(task, cluster_name=self.handle.name, down=True))

    def get(self, job_id: int) -> dict:
        mod, handle = sky(), self.handle
        if handle.managed:
            records = mod.stream_and_get(mod.jobs.queue(refresh=False))
            rec = next((r for r in records if r.get("job_id") == job_id), None)
            status = rec and rec.get("status")
        else:
            try:
                status = mod.stream_and_get(mod.job_status(handle.name, [job_id])).get(job_id)
            except mod.exceptions.ClusterDoesNotExist:
                # launched with down=True, the cluster removes itself once the job ends: the log tail's exit
                # code (sky.exceptions.JobExitCode: 0 succeeded) says how it ended
                if handle.exit_code is None:
                    raise UserError(f"skypilot: cluster {handle.name} is gone and its job's end is unknown") from None
                return {"status": "SUCCEEDED" if handle.exit_code == 0 else f"FAILED (exit code {handle.exit_code})",
                        "terminal": True}
        return {"status": status.value if status is not None else None,
                "terminal": bool(status is not None and status.is_terminal())}

    def cancel(self, job_id: int) -> None:
        mod, handle = sky(), self.handle
        try:
            mod.stream_and_get(mod.jobs.cancel(job_ids=[job_id]) if handle.managed else mod.down(handle.name))
        except mod.exceptions.ClusterDoesNotExist:
            pass  # already down (`down=True` removes it when the job ends)
        handle.done = handle.downed = True


class LogLines(io.TextIOBase):
    """An output stream for SkyPilot's log tailing that hands each line to the progress display."""

    def __init__(self, progress):
        self.progress, self.buf = progress, ""

    def write(self, text: str) -> int:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.progress.print(line)
        return len(text)
