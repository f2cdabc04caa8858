"""`--set KEY=VALUE` for `platbench launch docker`, and the user its container runs as."""
from __future__ import annotations

import math
import os
import re
from typing import ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platforms.docker.container import IMAGE_USER, JOB_NAME, parse_gpus

# between two ContainerInspect calls the log is read continuously (jobs.LINE_WAIT)
POLL_SECONDS = 2.0


class DockerSettings(BaseModel):
    """`--set KEY=VALUE` for `platbench launch docker` (`--gpus` is the same as `--set gpus=`)."""

    model_config = ConfigDict(extra="forbid")

    image: Optional[str] = None      # default: the image `platbench image build` recorded (.platbench/image.json)
    gpus: str = "none"               # none | all | N | device=ID[,ID…]
    job_name: Optional[str] = None   # a launch with the same name resumes from its checkpoints
    user: Optional[str] = None       # UID[:GID]; default: yours, or the image's user (1000:1000) when you are root
    stop_grace: int = Field(60, ge=1, le=3600)  # seconds between SIGTERM and SIGKILL on Ctrl-C

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: str) -> str:
        parse_gpus(value)
        return value

    @model_validator(mode="after")
    def _names(self):
        if self.job_name is not None and not JOB_NAME.match(self.job_name):
            raise ValueError(f"job_name {self.job_name!r}: 1-63 letters, digits, '_', '.' or '-', starting with a "
                             "letter or digit")
        if self.user is not None and not re.match(r"^[0-9]{1,10}(:[0-9]{1,10})?$", self.user):
            raise ValueError(f"user {self.user!r}: give UID or UID:GID (numbers; the image knows no names but "
                             "platbench)")
        if self.image is not None and not self.image.strip():
            raise ValueError("image: empty")
        return self

    # what the cloud-job template reads: the engine puts no limit on a container's time
    max_run: ClassVar[float] = math.inf
    poll_seconds: ClassVar[float] = POLL_SECONDS


def container_user(cfg: DockerSettings) -> str:
    """Yours, so the files it leaves are yours (as docker-compose.gpu.yml's PLATBENCH_UID); as root, the image's
    non-root user, never root."""
    if cfg.user:
        return cfg.user if ":" in cfg.user else f"{cfg.user}:{cfg.user}"
    return IMAGE_USER if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}"
