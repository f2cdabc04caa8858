"""`platbench launch docker`: the platbench image as one container on this machine's Docker engine, through
the Docker SDK for Python's low-level APIClient (the engine found as the docker CLI finds it:
platforms/image/engine.py).

The job: check (engine, image, GPU request, container name) → create the container (container.py's RunSpec)
→ start → follow its log (the trainer's metric lines drive the progress bar) → wait → remove it. Outputs
and checkpoints are host folders mounted into the container, so there is nothing to collect; a launch with
the same `--set job_name` mounts the same checkpoint folder and the trainer resumes there. The engine calls:
jobs.py; how the container ended: outcome.py; the dry-run: plan.py.

Identity: the launcher, not the user, passes PLATBENCH_IMAGE_DIGEST (platforms/image/engine.identity: the
registry digest once pushed, else the image ID) and PLATBENCH_IMAGE_ID (the image ID) into the container
and tags the MLflow run with both, so results.json and the run name the image that ran."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

from platforms.core import tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_job import CloudJobPlatform, say
from platforms.core.emulator import preset_epochs
from platforms.core.run_tags import image_tags
from platforms.core.settings import validate_job
from platforms.docker import SPEC
from platforms.docker.container import IMAGE_USER, JOB_NAMES, RunSpec, parse_gpus
from platforms.docker.jobs import LINE_WAIT, DockerHandle, DockerJobs, engine_errors, explain, probe_gpus, remove
from platforms.docker.outcome import container_outcome
from platforms.docker.permissions import unreadable
from platforms.docker.plan import plan_steps
from platforms.docker.settings import DockerSettings, container_user
from platforms.errors import UserError

CHECKPOINT_ROOT = Path("runs") / "checkpoints"  # + <job name>: where a job's checkpoints stay between launches
IMAGE_TAG = "platbench.image"        # the reference the user named (tag or ID)


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
        # no PLATBENCH_GIT_COMMIT (so not core.container_env): the image carries the commit it was built from,
        # this checkout may differ
        env = {"PLATBENCH_PLATFORM": self.name, "PLATBENCH_IMAGE_DIGEST": digest}
        if image_id:
            env["PLATBENCH_IMAGE_ID"] = image_id
        user = container_user(cfg)
        if user.partition(":")[0] != IMAGE_USER.partition(":")[0]:
            env["HOME"] = "/tmp"  # a uid the image has no account for gets HOME=/, where it cannot write caches
        gpus = parse_gpus(cfg.gpus)
        job.on_hardware(1 if gpus.requested else 0)  # GPUs asked for: --device cuda, never a silent CPU run
        return RunSpec(
            image=image, shown_image=shown, name=f"platbench-{name}", user=user,
            data=Path(job.data).resolve(), out=Path(job.out).resolve(),
            checkpoints=Path(job.checkpoint_dir or CHECKPOINT_ROOT / name).resolve(),
            trainer_args=tuple(job.trainer_args()), env=env,
            labels={"platbench.job_name": name}, gpus=gpus)

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
            probe_gpus(client, image_id, gpus)

    def run_tags(self, job: Job) -> dict[str, str]:
        return {**image_tags(self._image["digest"], self._image["id"]), IMAGE_TAG: self._image["reference"],
                tracking.Tag.JOB_ID: self.job_name(job),
                "platbench.gpus": self.parsed().gpus, "platbench.container_user": container_user(self.parsed())}

    def plan(self, job: Job) -> list[PlanStep]:
        reference, record = self._reference()
        shown = reference or "IMAGE"
        known = record.id if record and record.image == reference else None
        # offline, the identity is the recorded ID unless the image was pushed (then the engine's RepoDigest)
        digest = self._image["digest"] if self._image else (known if known and not record.pushed else "DIGEST")
        image_id = self._image["id"] if self._image else known
        spec = self.run_spec(job, image_id or shown, shown, digest, image_id)
        return plan_steps(spec, self.job_name(job), self.parsed().stop_grace)

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
        except engine_errors() as exc:
            raise UserError(f"docker: the container did not start: {explain(exc)}") from None
        say(f"started container {spec.name} ({container[:12]}) from {spec.shown_image}")
        return DockerHandle(job_id=container, client=self._client, spec=spec, job_name=self.job_name(job),
                            epochs=job.epochs or _int(job.hyperparameters.get("epochs")) or preset_epochs(job.model))

    def wait(self, handle: DockerHandle, progress) -> Outcome:
        """The template's polling, with Ctrl-C taken over meanwhile: it stops the container the way a
        preemption would (SIGTERM: the trainer checkpoints; SIGKILL after stop_grace) and the run ends KILLED."""
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda *_: handle.interrupted.set())
        try:
            return super().wait(handle, progress)
        except engine_errors() as exc:
            raise UserError(f"docker: container {handle.spec.name}: {explain(exc)}") from None
        finally:
            signal.signal(signal.SIGINT, previous)

    # ------------------------------------------------------------------ what the template polls
    def job_state(self, described: dict) -> str:
        return (described.get("State") or {}).get("Status", "")

    def after_poll(self, handle: DockerHandle, info: dict, progress) -> None:
        if handle.follower is None:
            handle.follow()
            if handle.epochs:
                progress.epochs(handle.epochs)
        while self.job_state(info) in self.TERMINAL and not handle.log_done:  # the rest of its log
            self._read(handle, progress)

    def pause(self, handle: DockerHandle, progress, seconds: float) -> None:
        """The log is read between two ContainerInspect calls, Ctrl-C checked every LINE_WAIT s; the log's
        end (the container exited) ends the pause at once."""
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
        line = handle.read_line()
        if line:
            progress.log_line(line)

    def job_outcome(self, handle: DockerHandle, info: dict) -> Outcome:
        return container_outcome(handle, info, self.parsed().stop_grace)

    def collect(self, handle: DockerHandle, outcome: Outcome, dest: Path) -> Path:
        return handle.spec.out  # the mounted output folder: already here

    def release(self, handle: Optional[DockerHandle]) -> None:
        """After the template's teardown (a container still running is stopped the same way): removed."""
        if handle is not None and handle.container:
            remove(handle.client, handle.container, stop_grace=self.parsed().stop_grace)


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
