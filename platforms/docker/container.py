"""The one container a `launch docker` job is: what it mounts, runs and reserves, as data (RunSpec), turned
into the Engine API's create body (ContainerConfig, built by the Docker SDK's own types, offline) and into
the equivalent `docker run` command for the dry-run. Both come from the same RunSpec, so the plan shows
what the launcher sends.

- The create body (Image, Cmd, User, Env, Labels, HostConfig.Binds / DeviceRequests / ShmSize /
  NetworkMode): https://docs.docker.com/reference/api/engine/version/v1.45/#tag/Container/operation/ContainerCreate
  built with docker.types.ContainerConfig / HostConfig / DeviceRequest
  (https://docker-py.readthedocs.io/en/stable/api.html#module-docker.types) and sent by
  APIClient.create_container_from_config (https://docker-py.readthedocs.io/en/stable/api.html#module-docker.api.container;
  the same DeviceRequest the high-level containers.run(device_requests=…) takes:
  https://docker-py.readthedocs.io/en/stable/containers.html).
- GPUs as `docker run --gpus` requests them (https://docs.docker.com/reference/cli/docker/container/run/#gpus):
  `all` → Count -1, `N` → Count N, `device=ID[,ID…]` → DeviceIDs; no Driver and Capabilities [["gpu"]],
  so the engine picks the driver that offers "gpu" (the NVIDIA Container Toolkit's): the DeviceRequest
  schema on the ContainerCreate page above."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from platforms.core.names import NameRule

# where the job's folders appear inside the container
DATA = "/platbench/data"
OUT = "/platbench/out"
CHECKPOINTS = "/platbench/checkpoints"
# the image's non-root user (Dockerfile: useradd --uid 1000 platbench), what compose runs as
IMAGE_USER = "1000:1000"
# the compose file's shm_size: PyTorch's DataLoader workers and DDP's gloo pass tensors through /dev/shm,
# and the engine's default of 64 MB is too small for them
SHM_SIZE = "2g"
JOB_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")  # the engine's container-name rule, 63 at most
# generated job names (core/names.py) within that rule: letters, digits, '_' and '.' between dashes
JOB_NAMES = NameRule(63, chars="a-zA-Z0-9_.")
_COUNT = re.compile(r"^[1-9][0-9]{0,2}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]*$")  # an index (0) or a UUID (GPU-3a23c669-…)


@dataclass(frozen=True)
class Gpus:
    """What `--gpus` asked for: nothing, every GPU, a number of them, or these device IDs."""

    text: str = "none"
    count: Optional[int] = None       # -1: all
    device_ids: tuple[str, ...] = ()

    @property
    def requested(self) -> bool:
        return self.count is not None or bool(self.device_ids)

    def device_requests(self) -> list[dict]:
        if not self.requested:
            return []
        from platforms.core.sdk import require

        types = require("docker", "docker", "the Docker SDK for Python").types
        if self.device_ids:
            return [types.DeviceRequest(device_ids=list(self.device_ids), capabilities=[["gpu"]])]
        return [types.DeviceRequest(count=self.count, capabilities=[["gpu"]])]

    def cli(self) -> list[str]:
        """The same request as `docker run` flags."""
        if not self.requested:
            return []
        if self.device_ids:
            # the CLI reads --gpus as CSV: the inner quotes keep device=0,1 one field (shlex quotes them for the shell)
            return ["--gpus", f'"device={",".join(self.device_ids)}"']
        return ["--gpus", "all" if self.count == -1 else str(self.count)]


def parse_gpus(text: str) -> Gpus:
    """none | all | N | device=ID[,ID…] | ID,ID… (several IDs need no `device=`). A bare number is a count,
    as in `docker run --gpus 2`; one device by ID is `device=1`. ValueError with the reason otherwise."""
    value = text.strip()
    if value.lower() in ("", "none"):
        return Gpus("none")
    if value.lower() == "all":
        return Gpus("all", count=-1)
    if _COUNT.match(value):
        return Gpus(value, count=int(value))
    ids = value[len("device="):] if value.startswith("device=") else value
    if value.startswith("device=") or "," in ids:
        parts = [p.strip() for p in ids.split(",")]
        if (parts and all(_DEVICE_ID.match(p) and p.lower() not in ("all", "none") for p in parts)
                and len(set(parts)) == len(parts)):
            return Gpus(value, device_ids=tuple(parts))
    raise ValueError(f"{text!r} is not a GPU request: give all, a number of GPUs (1, 2, …), device=ID[,ID…] (indexes or "
                     "GPU UUIDs as nvidia-smi -L lists them), or none")


@dataclass(frozen=True)
class RunSpec:
    """Everything the container is, independent of any engine."""

    image: str                      # what the engine runs: the image ID the reference resolved to
    shown_image: str                # the reference the user knows it by (tag, or ID), for the plan
    name: str                       # the container's name: platbench-<job name>
    user: str                       # uid:gid
    data: Path                      # host folders, absolute
    out: Path
    checkpoints: Path
    trainer_args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    gpus: Gpus = Gpus()

    @property
    def command(self) -> list[str]:
        # the image's `train` (docker/train) execs the trainer as PID 1, so SIGTERM from a stop reaches it
        return ["train", "--data", DATA, "--out", OUT, "--model-dir", f"{OUT}/model", "--checkpoint-dir",
                CHECKPOINTS, *self.trainer_args]

    def binds(self) -> list[str]:
        return [f"{self.data}:{DATA}:ro", f"{self.out}:{OUT}:rw", f"{self.checkpoints}:{CHECKPOINTS}:rw"]

    def create_body(self, api_version: str) -> dict:
        """The ContainerCreate body, as the Docker SDK builds it for this engine API version."""
        from platforms.core.sdk import require

        types = require("docker", "docker", "the Docker SDK for Python").types
        host = types.HostConfig(version=api_version, binds=self.binds(), device_requests=self.gpus.device_requests() or None,
                                shm_size=SHM_SIZE, network_mode="none")
        return types.ContainerConfig(api_version, self.image, self.command, user=self.user,
                                     environment=dict(self.env), labels=dict(self.labels), host_config=host,
                                     working_dir="/work")

    def docker_run(self) -> str:
        """The equivalent `docker run` command line."""
        args = ["docker", "run", "--rm", "--name", self.name, "--user", self.user, "--network", "none",
                "--shm-size", SHM_SIZE, "--workdir", "/work", *self.gpus.cli()]
        for bind in self.binds():
            args += ["-v", bind]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        for key, value in self.labels.items():
            args += ["--label", f"{key}={value}"]
        return shlex.join([*args, self.shown_image, *self.command])
