"""The container as the cloud-job template sees it: its handle, the engine calls that create, inspect, stop
and remove it (DockerJobs, the template's CloudJobs seam), and its log followed line by line.

- APIClient.create_container_from_config, start, logs(stream=True, follow=True), stop(timeout),
  inspect_container, remove_container: https://docker-py.readthedocs.io/en/stable/api.html#module-docker.api.container
- ContainerStop: SIGTERM (the image's StopSignal), then SIGKILL after `t` seconds:
  https://docs.docker.com/reference/api/engine/version/v1.45/#tag/Container/operation/ContainerStop"""
from __future__ import annotations

import queue
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

from platforms.core.cloud_job import CloudJob, CloudJobs, say
from platforms.docker.container import Gpus, RunSpec
from platforms.errors import UserError

# the log is read in waits of LINE_WAIT s, so Ctrl-C is checked that often
LINE_WAIT = 0.5


@dataclass(kw_only=True)
class DockerHandle(CloudJob):
    """job_id: the container's ID; described: its last ContainerInspect."""

    client: Any
    spec: RunSpec
    job_name: str
    epochs: Optional[int]
    stopped: bool = False       # we stopped it (Ctrl-C)
    tail: deque = field(default_factory=lambda: deque(maxlen=40))
    lines: "queue.Queue[Optional[str]]" = field(default_factory=queue.Queue)
    follower: Optional[threading.Thread] = None
    log_done: bool = False
    interrupted: threading.Event = field(default_factory=threading.Event)

    @property
    def container(self) -> Optional[str]:
        return self.job_id

    def follow(self) -> None:
        """Start reading the container's log in the background (once)."""
        if self.follower is None:
            self.follower = threading.Thread(target=_follow, args=(self.client, self.container, self.lines), daemon=True)
            self.follower.start()

    def read_line(self) -> Optional[str]:
        """The next line of the log within LINE_WAIT s; None when none came (log_done: the stream ended)."""
        try:
            line = self.lines.get(timeout=LINE_WAIT)
        except queue.Empty:
            return None
        if line is None:
            self.log_done = True
        elif line:
            self.tail.append(line)
        return line or None


class DockerJobs(CloudJobs):
    """One container on the engine: create + start, ContainerInspect, stop (SIGTERM, SIGKILL after the grace)."""

    def __init__(self, client, stop_grace: int):
        self.client, self.stop_grace = client, stop_grace

    def create(self, spec: RunSpec) -> str:
        container = self.client.create_container_from_config(spec.create_body(self.client.api_version), spec.name)["Id"]
        try:
            self.client.start(container)
        except BaseException:  # refused, or Ctrl-C between create and start: launch() gets no handle for it
            remove(self.client, container)
            raise
        return container

    def get(self, container: str) -> dict:
        return self.client.inspect_container(container)

    def cancel(self, container: str) -> None:
        self.client.stop(container, timeout=self.stop_grace)


def probe_gpus(client, image_id: str, gpus: Gpus) -> None:
    """The GPU request on a throwaway container (`true`): the engine refuses a request it cannot meet only
    when a container starts, so this asks it before the run or anything of it exists."""
    from platforms.core.sdk import require
    from platforms.image import engine

    types = require("docker", "docker", "the Docker SDK for Python").types
    host = types.HostConfig(version=client.api_version, device_requests=gpus.device_requests(), network_mode="none")
    body = types.ContainerConfig(client.api_version, image_id, ["true"], host_config=host)
    probe = None
    try:
        probe = client.create_container_from_config(body, f"platbench-gpu-probe-{secrets.token_hex(3)}")["Id"]
        client.start(probe)  # granted: the devices were there; its exit is of no interest
    except engine.errors().APIError as exc:
        raise UserError(f"docker: --gpus {gpus.text}: the engine cannot give a container these GPUs "
                        f"({explain(exc)}); is the NVIDIA Container Toolkit installed for this engine?") from None
    finally:
        if probe:
            remove(client, probe)


def _follow(client, container: str, lines: "queue.Queue[Optional[str]]") -> None:
    """The container's stdout and stderr, line by line, until it exits (or the stream breaks)."""
    buf = b""
    try:
        for chunk in client.logs(container, stream=True, follow=True):
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                lines.put(line.decode(errors="replace").rstrip("\r"))
    except Exception:  # noqa: BLE001 - the stream broke: wait() polls the container instead
        pass
    finally:
        if buf:
            lines.put(buf.decode(errors="replace").rstrip("\r"))
        lines.put(None)


def engine_errors() -> tuple:
    """What a call to the engine raises when it refuses (APIError) or cannot be reached mid-run (requests')."""
    import requests

    from platforms.image import engine

    return (engine.errors().DockerException, requests.exceptions.RequestException)


def remove(client, container: str, stop_grace: Optional[int] = None) -> None:
    """The container stopped (when `stop_grace` is given and it runs) and removed; never raises."""
    from platforms.image import engine

    try:
        if stop_grace is not None and (client.inspect_container(container).get("State") or {}).get("Running"):
            client.stop(container, timeout=stop_grace)
        client.remove_container(container, force=True)
    except engine.errors().NotFound:
        pass
    except engine_errors() as exc:  # teardown must not hide the original error
        say(f"could not remove container {container[:12]}: {explain(exc)} (docker rm -f {container[:12]})")


def explain(exc) -> str:
    """An engine error's first line, at most 300 characters."""
    text = getattr(exc, "explanation", None) or str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0][:300]
