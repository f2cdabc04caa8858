"""`platbench launch docker`: the platbench image as one container on this machine's Docker engine, through
the Docker SDK for Python's low-level APIClient (the engine found as the docker CLI finds it:
platforms/image/engine.py).

The job: check (engine, image, GPU request, container name) → create the container (container.py's RunSpec)
→ start → follow its log (the trainer's metric lines drive the progress bar) → wait → remove it. Outputs
and checkpoints are host folders mounted into the container, so there is nothing to collect; a launch with
the same `--set job_name` mounts the same checkpoint folder and the trainer resumes there.

Contracts relied on (official pages):
- APIClient.create_container_from_config, start, logs(stream=True, follow=True), wait, stop(timeout),
  inspect_container, remove_container: https://docker-py.readthedocs.io/en/stable/api.html#module-docker.api.container
- ContainerStop: SIGTERM (the image's StopSignal), then SIGKILL after `t` seconds:
  https://docs.docker.com/reference/api/engine/version/v1.45/#tag/Container/operation/ContainerStop
- ContainerInspect: Created, State.StartedAt / FinishedAt / ExitCode / OOMKilled (RFC 3339, nanoseconds):
  https://docs.docker.com/reference/api/engine/version/v1.45/#tag/Container/operation/ContainerInspect
- The trainer's side (README "Outputs"): SIGTERM → epoch-end checkpoint, exit 143; started again with the
  same checkpoint folder it resumes.

Identity: the launcher, not the user, passes PLATBENCH_IMAGE_DIGEST (platforms/image/engine.identity: the
registry digest once pushed, else the image ID) and PLATBENCH_IMAGE_ID (the image ID) into the container
and tags the MLflow run with both, so results.json and the run name the image that ran.
Queue time = the engine's Created → State.StartedAt. Cost: none (your own machine)."""
from __future__ import annotations

import math
import os
import queue
import re
import secrets
import shlex
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platforms.core import tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs
from platforms.core.emulator import preset_epochs
from platforms.core.run_tags import image_tags
from platforms.core.settings import validate_job
from platforms.docker import SPEC
from platforms.docker.container import IMAGE_USER, JOB_NAME, JOB_NAMES, Gpus, RunSpec, parse_gpus
from platforms.errors import UserError

EXIT_SIGTERM = 143  # the trainer after SIGTERM: checkpointed (trainer/train.py EXIT_PREEMPTED)
EXIT_SIGKILL = 137
CHECKPOINT_ROOT = Path("runs") / "checkpoints"  # + <job name>: where a job's checkpoints stay between launches
IMAGE_TAG = "platbench.image"        # the reference the user named (tag or ID)
# between two ContainerInspect calls the log is read continuously and Ctrl-C checked every LINE_WAIT s;
# the log stream's end (the container exited) ends the pause at once
POLL_SECONDS = 2.0
LINE_WAIT = 0.5


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


def unreadable(data: Path, user: str) -> Optional[str]:
    """The first path of the dataset (its folder's ancestors, its folders, its files) that the container's
    `user` (UID:GID) could not read through the read-only mount, by the mode bits (ACLs are not read), with
    why; None when it can read them all. Only asked when the container runs as someone else than the caller,
    who could read them all already (validate_job listed them)."""
    from platforms.core.staging import dataset_files

    uid, _, gid = user.partition(":")
    uid, gid = int(uid), int(gid or uid)
    if uid == 0:
        return None

    def denied(path: Path, need: int, what: str) -> Optional[str]:
        st = path.stat()
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        if (st.st_mode >> shift) & need != need:
            return f"{path} ({what}; mode {st.st_mode & 0o777:o}, owner {st.st_uid}:{st.st_gid})"
        return None

    root = data.resolve()
    _, _, files = dataset_files(root)
    folders = {root, *(p for f in files for p in Path(f).parents if p.is_relative_to(root))}
    checks = [(p, 0o1, "a folder above it that cannot be entered") for p in root.parents]
    checks += [(p, 0o5, "a folder that cannot be listed") for p in sorted(folders)]
    checks += [(Path(f), 0o4, "a file that cannot be read") for f in files]
    return next((why for path, need, what in checks if (why := denied(path, need, what))), None)


def engine_time(text: Optional[str]) -> Optional[float]:
    """An engine timestamp (RFC 3339 with nanoseconds, 'Z') as epoch seconds; None for the zero time."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    stamp = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    return stamp.timestamp() + (float("0." + m[2]) if m[2] else 0.0)


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


class DockerJobs(CloudJobs):
    """One container on the engine: create + start, ContainerInspect, stop (SIGTERM, SIGKILL after the grace)."""

    def __init__(self, client, stop_grace: int):
        self.client, self.stop_grace = client, stop_grace

    def create(self, spec: RunSpec) -> str:
        container = self.client.create_container_from_config(spec.create_body(self.client.api_version), spec.name)["Id"]
        try:
            self.client.start(container)
        except BaseException:  # refused, or Ctrl-C between create and start: launch() gets no handle for it
            _remove(self.client, container)
            raise
        return container

    def get(self, container: str) -> dict:
        return self.client.inspect_container(container)

    def cancel(self, container: str) -> None:
        self.client.stop(container, timeout=self.stop_grace)


class DockerPlatform(CloudJobPlatform):
    spec = SPEC
    settings_model = DockerSettings
    PHASES = {"running": "training"}
    TERMINAL = frozenset({"exited", "dead"})
    job_noun = "Docker container"

    def __init__(self, settings=None):
        super().__init__(settings)
        self._client = None
        self._image: Optional[dict] = None  # reference, id, identity
        self._job_name: Optional[str] = None

    # ------------------------------------------------------------------ what runs
    def _reference(self):
        """(the image reference to run, the build record or None); reference None when neither names one."""
        from platforms.image import engine

        record = engine.read_record()
        return (self.parsed().image or (record.image if record else None)), record

    def job_name(self, job: Job) -> str:
        if self._job_name is None:
            self._job_name = self.parsed().job_name or JOB_NAMES.unique(job.model)
        return self._job_name

    def run_spec(self, job: Job, image: str, shown: str, digest: str, image_id: Optional[str]) -> RunSpec:
        """The container for this job; image/digest are what the engine resolved (placeholders in a dry run)."""
        cfg = self.parsed()
        name = self.job_name(job)
        # no PLATBENCH_GIT_COMMIT: the image carries the commit it was built from, this checkout may differ
        env = {"PLATBENCH_PLATFORM": self.name, "PLATBENCH_IMAGE_DIGEST": digest}
        if image_id:
            env["PLATBENCH_IMAGE_ID"] = image_id
        user = container_user(cfg)
        if user.partition(":")[0] != IMAGE_USER.partition(":")[0]:
            env["HOME"] = "/tmp"  # a uid the image has no account for gets HOME=/, where it cannot write caches
        return RunSpec(
            image=image, shown_image=shown, name=f"platbench-{name}", user=user,
            data=Path(job.data).resolve(), out=Path(job.out).resolve(),
            checkpoints=Path(job.checkpoint_dir or CHECKPOINT_ROOT / name).resolve(),
            trainer_args=tuple(job.trainer_args()), env=env,
            labels={"platbench.job_name": name}, gpus=parse_gpus(cfg.gpus))

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        self.parsed()
        validate_job(job)
        reference, record = self._reference()
        needs = ["a running Docker engine holding the image (a dry run contacts none)"]
        if reference is None:
            needs.append("an image: none is recorded in .platbench/image.json (platbench image build), or name one "
                         "with --set image=…")
        if parse_gpus(self.parsed().gpus).requested:
            needs.append("the NVIDIA Container Toolkit on the engine's host, for --gpus")
        return needs

    def check(self, job: Job) -> None:
        from platforms.image import engine

        cfg = self.parsed()
        validate_job(job)
        reference, record = self._reference()
        if reference is None:
            raise UserError("docker: no image recorded in .platbench/image.json: build it first (platbench image "
                            "build), or name one with --set image=…")
        user = container_user(cfg)
        if user.partition(":")[0] != str(os.geteuid()):
            why = unreadable(Path(job.data), user)
            if why:
                raise UserError(f"docker: the container runs as {user} and could not read {why}: make the dataset "
                                f"readable to it (chmod -R a+rX {job.data}) or run it as its owner (--set user=UID:GID)")
        client = engine.api()
        image_id, _ = engine.image_id(client, reference)
        if record and not cfg.image and record.id != image_id:
            raise UserError(f"docker: {reference} is {image_id} in the engine, but {engine.RECORD} recorded "
                            f"{record.id}: build it again (platbench image build), or name the image with --set image=…")
        self._client = client
        self.jobs = DockerJobs(client, cfg.stop_grace)
        self._image = {"reference": reference, "id": image_id, "digest": engine.identity(client, image_id)}
        name = f"platbench-{self.job_name(job)}"
        try:
            found = client.inspect_container(name)
        except engine.errors().NotFound:
            found = None
        if found is not None:
            state = (found.get("State") or {}).get("Status", "?")
            raise UserError(f"docker: a container named {name} exists ({state}): job {self.job_name(job)} is "
                            f"{'still running' if state == 'running' else 'left over'}; "
                            f"{'wait for it or docker stop ' + name if state == 'running' else 'docker rm ' + name}")
        gpus = parse_gpus(cfg.gpus)
        if gpus.requested:
            self._probe_gpus(client, image_id, gpus)

    def _probe_gpus(self, client, image_id: str, gpus: Gpus) -> None:
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
                            f"({_explain(exc)}); is the NVIDIA Container Toolkit installed for this engine?") from None
        finally:
            if probe:
                _remove(client, probe)

    def run_tags(self, job: Job) -> dict[str, str]:
        return {**image_tags(self._image["digest"], self._image["id"]), IMAGE_TAG: self._image["reference"],
                tracking.Tag.JOB_ID: self.job_name(job),
                "platbench.gpus": self.parsed().gpus, "platbench.container_user": container_user(self.parsed())}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        reference, record = self._reference()
        shown = reference or "IMAGE"
        known = record.id if record and record.image == reference else None
        # offline, the identity is the recorded ID unless the image was pushed (then the engine's RepoDigest)
        digest = self._image["digest"] if self._image else (known if known and not record.pushed else "DIGEST")
        image_id = self._image["id"] if self._image else known
        spec = self.run_spec(job, image_id or shown, shown, digest, image_id)
        cfg = self.parsed()
        steps = [PlanStep(f"check the engine (DOCKER_HOST, else the default socket) holds {shown}; its identity (the "
                          "registry digest once pushed, else the image ID) goes into the container and the MLflow run",
                          f"docker image inspect -f '{{{{.Id}}}} {{{{.RepoDigests}}}}' {shown}")]
        if spec.gpus.requested:
            steps.append(PlanStep(f"ask the engine for the GPUs on a throwaway container first (--gpus {spec.gpus.text})",
                                  shlex.join(["docker", "run", "--rm", "--network", "none", *spec.gpus.cli(), shown,
                                              "true"])))
        steps += [
            PlanStep(f"run the trainer as {spec.user} (never root), no network: {spec.data} read-only, outputs to "
                     f"{spec.out}, checkpoints in {spec.checkpoints} (a later launch with --set job_name="
                     f"{self.job_name(job)} resumes from them)", spec.docker_run()),
            PlanStep("follow the container's log: each `- Epoch: N` moves the progress bar; queue seconds = "
                     "created → started; Ctrl-C stops it with SIGTERM (the trainer checkpoints), SIGKILL after "
                     f"{cfg.stop_grace} s, and the MLflow run ends KILLED", f"docker logs -f {spec.name}"),
            PlanStep("record the run in MLflow (params, per-epoch metrics, results, model, the image's digest); no "
                     "cost: your own machine; then remove the container", f"docker rm {spec.name}"),
        ]
        return steps

    # ------------------------------------------------------------------ run
    def stage(self, job: Job) -> dict[str, Any]:
        return {}  # nothing to upload: the dataset is mounted read-only

    def submit(self, job: Job, staged: dict[str, Any]) -> DockerHandle:
        spec = self.run_spec(job, self._image["id"], self._image["reference"], self._image["digest"], self._image["id"])
        spec.checkpoints.mkdir(parents=True, exist_ok=True)
        spec.out.mkdir(parents=True, exist_ok=True)
        uid, _, gid = spec.user.partition(":")
        if os.geteuid() == 0 and int(uid) != 0:  # root's folders: handed to the container's user to write in
            for folder in (spec.out, spec.checkpoints):
                os.chown(folder, int(uid), int(gid or uid))
        try:
            container = self.jobs.create(spec)
        except _engine_errors() as exc:
            raise UserError(f"docker: the container did not start: {_explain(exc)}") from None
        print(f"platbench: started container {spec.name} ({container[:12]}) from {spec.shown_image}", file=sys.stderr)
        return DockerHandle(job_id=container, client=self._client, spec=spec, job_name=self.job_name(job),
                            epochs=job.epochs or _int(job.hyperparameters.get("epochs")) or preset_epochs(job.model))

    def wait(self, handle: DockerHandle, progress) -> Outcome:
        """The template's polling, with Ctrl-C taken over meanwhile: it stops the container the way a
        preemption would (SIGTERM: the trainer checkpoints; SIGKILL after stop_grace) and the run ends KILLED."""
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda *_: handle.interrupted.set())
        try:
            return super().wait(handle, progress)
        except _engine_errors() as exc:
            raise UserError(f"docker: container {handle.spec.name}: {_explain(exc)}") from None
        finally:
            signal.signal(signal.SIGINT, previous)

    def job_state(self, described: dict) -> str:
        return (described.get("State") or {}).get("Status", "")

    def after_poll(self, handle: DockerHandle, info: dict, progress) -> None:
        if handle.follower is None:
            handle.follower = threading.Thread(target=_follow, args=(handle.client, handle.container, handle.lines),
                                               daemon=True)
            handle.follower.start()
            if handle.epochs:
                progress.epochs(handle.epochs)
        if self.job_state(info) in self.TERMINAL:  # the rest of its log
            while not handle.log_done:
                self._read(handle, progress)

    def pause(self, handle: DockerHandle, progress, seconds: float) -> None:
        until = time.time() + seconds
        while time.time() < until and not handle.log_done:
            self._read(handle, progress)
            if handle.interrupted.is_set() and not handle.stopped:
                handle.stopped = True
                progress.phase(f"stopping (SIGTERM, SIGKILL after {self.parsed().stop_grace} s)")
                self.jobs.cancel(handle.container)
        if handle.log_done:
            time.sleep(LINE_WAIT)  # the stream ended early (an engine hiccup): poll until the container exits

    @staticmethod
    def _read(handle: DockerHandle, progress) -> None:
        try:
            line = handle.lines.get(timeout=LINE_WAIT)
        except queue.Empty:
            return
        if line is None:
            handle.log_done = True
        elif line:
            handle.tail.append(line)
            progress.log_line(line)

    def job_outcome(self, handle: DockerHandle, info: dict) -> Outcome:
        return self._outcome(handle, info)

    def _outcome(self, handle: DockerHandle, info: dict) -> Outcome:
        from trainer.results import RESULTS_FILE

        state = info.get("State") or {}
        code = state.get("ExitCode")
        created, started, finished = (engine_time(info.get("Created")), engine_time(state.get("StartedAt")),
                                      engine_time(state.get("FinishedAt")))
        phases = {}
        if created is not None and started is not None:
            phases["queued"] = max(0.0, started - created)
        if started is not None and finished is not None:
            phases["training"] = max(0.0, finished - started)
        resume = f"launch again with --set job_name={handle.job_name} to resume from {handle.spec.checkpoints}"
        if code == 0 and (handle.spec.out / RESULTS_FILE).is_file():
            status, message = "finished", ""
        elif handle.stopped:
            status = "killed"
            message = (f"interrupted (Ctrl-C): stopped with SIGTERM, checkpointed; {resume}" if code == EXIT_SIGTERM
                       else f"interrupted (Ctrl-C): the container exited {code} (SIGKILL after "
                            f"{self.parsed().stop_grace} s: no checkpoint of the last epoch); {resume}")
        elif code == EXIT_SIGTERM:
            status, message = "preempted", f"the container was stopped (SIGTERM) from outside: checkpointed; {resume}"
        else:
            status = "failed"
            why = ("out of memory (the engine killed it)" if state.get("OOMKilled") else
                   "exited 0 without results.json" if code == 0 else f"exited {code}")
            last = " | ".join(line.strip()[:200] for line in list(handle.tail)[-3:] if line.strip())
            message = f"the container {why}" + (f": {last}" if last else "")
        return Outcome(status, handle.spec.out, phases=phases, message=message,
                       metrics={"container_exit_code": code} if code is not None else {},
                       tags={tracking.Tag.JOB_ID: handle.job_name, "platbench.container": handle.container[:12]})

    def collect(self, handle: DockerHandle, outcome: Outcome, dest: Path) -> Path:
        return handle.spec.out  # the mounted output folder: already here

    def release(self, handle: Optional[DockerHandle]) -> None:
        """After the template's teardown (a container still running is stopped the same way): removed."""
        if handle is not None and handle.container:
            _remove(handle.client, handle.container, stop_grace=self.parsed().stop_grace)


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


def _engine_errors() -> tuple:
    """What a call to the engine raises when it refuses (APIError) or cannot be reached mid-run (requests')."""
    import requests

    from platforms.image import engine

    return (engine.errors().DockerException, requests.exceptions.RequestException)


def _running(client, container: str) -> bool:
    return bool((client.inspect_container(container).get("State") or {}).get("Running"))


def _remove(client, container: str, stop_grace: Optional[int] = None) -> None:
    from platforms.image import engine

    try:
        if stop_grace is not None and _running(client, container):
            client.stop(container, timeout=stop_grace)
        client.remove_container(container, force=True)
    except engine.errors().NotFound:
        pass
    except _engine_errors() as exc:  # teardown must not hide the original error
        print(f"platbench: could not remove container {container[:12]}: {_explain(exc)} (docker rm -f {container[:12]})",
              file=sys.stderr)


def _explain(exc) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0][:300]


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
