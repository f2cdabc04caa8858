"""The `--set` fields every cloud job has, declared once with one meaning (docs/design.md "Cloud job
settings"); a platform's settings model subclasses these and adds its own.

- `job_name`: the name of the one job this launch creates on the platform (a training job, a custom job,
  a cluster); default: a unique STEM-YYYYMMDD-HHMMSS-xxxx (core/names.py) under the platform's JOB_NAME rule.
- `run_name`: the run the job belongs to. Its checkpoints and outputs are kept under this name, so a later
  launch with the same run_name resumes where an interrupted one stopped; default: the job's own name.
- `staging`: how the dataset reaches the platform's store (core/staging.py: sharded or naive).
- `prefix`: the folder in the platform's store that platbench writes under.
- `poll_seconds`: how often the job's state is read while it runs.
- `max_run` (TimeLimit): the most seconds the job may run; the platform stops it after that.
- `local` (LocalMode): the platform's job run on this machine under the platform's container contract
  (core/emulator.LocalRun, or the platform's own local runner): the same staging, request and collection,
  nothing billed.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platforms.core.names import DEFAULT, NameRule

POLL_LIMIT = 600       # seconds: a slower poll would hide a job's end for more than ten minutes
MAX_RUN_FLOOR = 60     # seconds: a shorter limit ends a job before its container has started
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


def poll_every(seconds: float):
    """The poll_seconds field with a platform's own default (its API's rate, its jobs' pace)."""
    return Field(seconds, gt=0, le=POLL_LIMIT)


class CloudJobSettings(BaseModel):
    """job_name, run_name, staging, prefix and poll_seconds; names checked against the class's rules."""

    model_config = ConfigDict(extra="forbid")

    JOB_NAME: ClassVar[NameRule] = DEFAULT   # what the platform accepts as a job's name
    RUN_NAME: ClassVar[NameRule] = DEFAULT   # what it accepts where run_name goes (a folder, a checkpoint path)

    job_name: Optional[str] = None
    run_name: Optional[str] = None
    staging: Literal["sharded", "naive"] = "sharded"
    prefix: str = "platbench"
    poll_seconds: float = poll_every(15.0)

    @model_validator(mode="after")
    def _names_fit(self):
        why = self.RUN_NAME.refusal("run_name", self.run_name) or self.JOB_NAME.refusal("job_name", self.job_name)
        if why:
            raise ValueError(why)
        if not PREFIX_RE.match(self.prefix) or ".." in self.prefix.split("/"):
            raise ValueError(f"prefix {self.prefix!r} is not a plain relative path")
        return self

    def run_key(self, job_name: str) -> str:
        """The run a job belongs to (run_name, else the job itself): where its checkpoints live."""
        return self.run_name or job_name


class TimeLimit(BaseModel):
    """max_run: the platform's own limit on one job's seconds is MAX_RUN_LIMIT."""

    MAX_RUN_LIMIT: ClassVar[int] = 7 * 24 * 3600

    max_run: int = Field(4 * 3600, ge=MAX_RUN_FLOOR)

    @field_validator("max_run")
    @classmethod
    def _within_the_platforms_limit(cls, value: int) -> int:
        if value > cls.MAX_RUN_LIMIT:
            raise ValueError(f"Input should be less than or equal to {cls.MAX_RUN_LIMIT}")
        return value


class LocalMode(BaseModel):
    """local: the job on this machine under the platform's container contract (see the module's docstring)."""

    local: bool = False
