"""Apolo (formerly neu.ro): a job from the platbench image with a resource preset, through apolo-sdk, with
the dataset staged into platform storage and mounted read-only, and an output volume the trainer writes
its results, model and checkpoints to.

Platform contracts relied on (official pages):
- Jobs.start(image, preset_name, cluster_name, org_name, project_name, command, env, volumes, name, tags,
  life_span, schedule_timeout, restart_policy, http) → JobDescription; Jobs.status, Jobs.monitor (the log
  stream), Jobs.kill: https://apolo-sdk.readthedocs.io/stable/jobs_reference.html
- `apolo run` (the CLI equivalent of Jobs.start: --preset, --volume storage:…:PATH:ro|rw, --env, --name,
  --life-span, --schedule-timeout, --restart, IMAGE -- CMD): https://docs.apolo.us/index/apolo-cli/commands/job
- Volumes mount a storage folder at a container path, read-only or read-write (Volume(storage_uri,
  container_path, read_only)): https://apolo-sdk.readthedocs.io/stable/parser_reference.html
- Images: `image:NAME:TAG` is the project's image in the cluster registry (`apolo image push`); any other
  REGISTRY/NAME:TAG is pulled as is: https://docs.apolo.us/index/apolo-cli/commands/image. By tag only
  (apolo-sdk refuses NAME@sha256:…); Images.digest reads a cluster-registry tag's digest, which is recorded.
- Credits: each preset "spends" credits per hour while a job runs; the job reports
  price_credits_per_hour and total_price_credits: https://docs.apolo.us/index/administration/apolo-credits
- Projects own jobs and storage: https://docs.apolo.us/index/core/getting-started/projects

The image's command: it has no ENTRYPOINT and its CMD is `train` (Dockerfile); the job's command replaces
the CMD (`apolo run IMAGE -- train …`), the same `train` SageMaker runs. The trainer finds its folders from
PLATBENCH_DATA / PLATBENCH_OUT (trainer/environment.py, the generic table: Apolo documents no variables of
its own for them), which point into the two volumes:

    storage://C/O/P/<prefix>              → /platbench/staged  read-only   (shards + manifests)
    storage://C/O/P/<prefix>/jobs/<run>   → /platbench/out     read-write  (results, model/, checkpoints/)

Preemptible presets (Preset.preemptible_node): the node can be reclaimed; the trainer checkpoints on SIGTERM
into /platbench/out/checkpoints and exits 143. The job is started with restart_policy on-failure, so the
platform starts the container again and the trainer resumes from the same volume; a new launch with the
same run_name resumes too (the output folder is jobs/<run_name>).
"""
from __future__ import annotations

import queue
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platforms.apolo import SPEC
from platforms.apolo.phases import PREEMPTED_EXIT, phase
from platforms.core import tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_job import GRACE_SECONDS, CloudJob, CloudJobPlatform, CloudJobs
from platforms.core.cloud_settings import CloudJobSettings
from platforms.core.container_env import container_env
from platforms.core.emulator import collected, preset_epochs
from platforms.core.names import SHORT_STAMP, NameRule
from platforms.core.retry import retried
from platforms.core.settings import validate_job
from platforms.core.staging_plan import closing_steps, staging_steps
from platforms.errors import UserError

STAGED_PATH = "/platbench/staged"
OUT_PATH = "/platbench/out"
# `apolo run --name`: lower-case letters, digits and dashes, starting with a letter
# (https://docs.apolo.us/index/apolo-cli/commands/job, run --name); 40 leaves room for the short stamp only
JOB_NAME = NameRule(40, chars="a-z0-9", lower=True, letter_first=True, repeat_dash=False, min_len=3,
                    stamp=SHORT_STAMP, title="a valid Apolo job name",
                    hint="3-40 lower-case letters, digits and dashes, starting with a letter")
JOB_NAME_RE = JOB_NAME.pattern
RUN_NAME = NameRule(63, hint="1-63 of a-z, A-Z, 0-9, -")  # the output folder jobs/<run_name>
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# apolo-sdk's parser takes NAME:TAG only: NAME@sha256:… is "invalid image name" (_parsing_utils._split_image_name);
# the digest is read from the cluster registry instead (check()).
DIGEST_REF = "Apolo takes an image by tag (NAME:TAG), not by digest (@sha256:…)"
IMAGE_RE = re.compile(r"^(image:[^\s]+|[a-z0-9][a-z0-9.\-]*(:\d+)?/[^\s]+|[a-z0-9][^\s:/@]*(:[^\s/@]+)?)$")


class ApoloProject(BaseModel):
    """The `--set` keys every Apolo command shares (training jobs and endpoints)."""

    model_config = ConfigDict(extra="forbid")

    config: Optional[str] = None        # the SDK's config directory (default $APOLO_CONFIG, else ~/.apolo)
    cluster: Optional[str] = None       # default: the login's current cluster
    org: Optional[str] = None
    project: Optional[str] = None
    prefix: str = "platbench"           # the folder in the project's storage platbench writes under
    image: Optional[str] = None         # image:platbench:TAG, or REGISTRY/platbench:TAG
    preset: Optional[str] = None        # a resource preset of the cluster (`apolo config show`)
    usd_per_credit: Optional[float] = Field(None, gt=0)  # your organization's credit price, for USD figures
    life_span: int = Field(4 * 3600, ge=60, le=30 * 24 * 3600)   # seconds; the platform kills the job after
    poll_seconds: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _checked(self):
        if self.image is not None and "@" in self.image:
            raise ValueError(f"image {self.image!r}: {DIGEST_REF}: push it with a tag (image:platbench:TAG); "
                             "platbench records the digest the registry holds")
        if self.image is not None and not IMAGE_RE.match(self.image):
            raise ValueError(f"image {self.image!r} is not an image reference (image:platbench:TAG or "
                             "REGISTRY/platbench:TAG)")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$", self.prefix) or ".." in self.prefix.split("/"):
            raise ValueError(f"prefix {self.prefix!r} is not a plain relative storage path")
        return self


class ApoloSettings(ApoloProject, CloudJobSettings):
    """`--set KEY=VALUE` for `platbench launch apolo`; run_name is the output folder jobs/<run_name> (a new job
    of the run resumes it), the other shared fields as core/cloud_settings.py has them."""

    JOB_NAME: ClassVar[NameRule] = JOB_NAME
    RUN_NAME: ClassVar[NameRule] = RUN_NAME

    schedule_timeout: float = Field(3600, ge=60, le=7 * 24 * 3600)  # seconds pending before the platform fails it

    @property
    def max_run(self) -> int:
        """The template's time limit: the platform kills the job after its life span."""
        return self.life_span


# NVIDIA GPU models as Apolo presets name them (e.g. nvidia-tesla-k80, nvidia-tesla-v100 in
# https://docs.apolo.us/index/administration/cluster-management/managing-users-and-quotas) → compute capability
# (https://developer.nvidia.com/cuda-gpus). The image's torch build has kernels for sm_75 and newer only
# (constraints.txt torch 2.15 cu132: sm_75 … sm_120, tests/vertex checks that list against the lock), so an
# older GPU cannot run it: refused before anything is uploaded.
GPU_CC = {"k80": (3, 7), "m60": (5, 2), "p4": (6, 1), "p40": (6, 1), "p100": (6, 0), "v100": (7, 0),
          "t4": (7, 5), "a10": (8, 6), "a100": (8, 0), "l4": (8, 9), "h100": (9, 0), "h200": (9, 0)}


def unusable_gpu(model: Optional[str]) -> Optional[str]:
    name = (model or "").lower()
    for key, cc in sorted(GPU_CC.items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"(^|[-_ ]){key}($|[-_ ])", name):
            return None if cc >= (7, 5) else (f"{model} (sm_{cc[0]}{cc[1]}) cannot run the image's torch build "
                                              "(kernels for sm_75 and newer): pick a preset with a T4, A10, A100, "
                                              "L4 or H100")
    return None


def image_ref(image: str, where) -> str:
    """`image:NAME:TAG` (the current project's) named in full, so the job uses the project asked for."""
    if image.startswith("image:") and not image.startswith("image://"):
        return f"image://{where.cluster}/{'/'.join(p for p in (where.org, where.project) if p)}/{image[6:]}"
    return image


def sdk_error(sdk_module, exc: BaseException, what: str) -> UserError:
    """An SDK / platform refusal as one line (IllegalArgumentError, AuthError, ResourceNotFound, …)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"apolo: {what}: {text}")


@dataclass(kw_only=True)
class ApoloHandle(CloudJob):
    """job_id: the job's id; described: the last JobDescription (the SDK's object)."""

    name: str
    out_key: str                        # ORG/PROJECT/<prefix>/jobs/<run> (cluster-relative)
    preemptible: bool = False
    lines: "queue.Queue[Optional[str]]" = field(default_factory=queue.Queue)
    follower: Any = None                # the log-stream future
    transitions: set = field(default_factory=set)   # (status, reason) pairs already reported
    log_done: bool = False              # the log stream has ended


class ApoloJobs(CloudJobs):
    """Jobs.start / status / kill through the SDK's client, on the session's loop."""

    def __init__(self, session, cluster: str):
        self.session, self.cluster = session, cluster

    def create(self, spec: dict) -> str:
        from platforms.apolo.session import sdk

        mod = sdk()
        try:
            return self.session.run(self.session.client.jobs.start(**spec)).id
        except (mod.ClientError, ValueError, OSError) as exc:  # the SDK's refusals are ValueError subclasses
            raise sdk_error(mod, exc, "the job was refused") from None

    def get(self, job_id: str):
        from platforms.apolo.session import sdk

        mod = sdk()
        try:
            return retried(lambda: self.session.run(self.session.client.jobs.status(job_id)), _transient)
        except (mod.ClientError, ValueError) as exc:
            raise sdk_error(mod, exc, f"cannot read job {job_id}") from None

    def cancel(self, job_id: str) -> None:
        from platforms.apolo.session import sdk

        try:
            retried(lambda: self.session.run(self.session.client.jobs.kill(job_id), timeout=120), _transient)
        except sdk().ResourceNotFound:
            pass  # already gone


def _transient(exc: BaseException) -> bool:
    """A fault worth another try: apolo-sdk retries no job call. A 503 / 502 (its ServerNotAvailable /
    BadGateway), no answer (a reset; the SDK's socket timeouts are aiohttp's ServerTimeoutError, a
    ClientConnectionError), or throttling: a 429 the SDK has no class for, so an IllegalArgumentError whose text
    is the reason phrase or the service's {"error": ...}. A bare TimeoutError is Session.run's own wait running
    out (minutes already): not retried, the call may still be in flight."""
    import aiohttp
    from platforms.apolo.session import sdk

    mod = sdk()
    if isinstance(exc, (mod.ServerNotAvailable, mod.BadGateway, aiohttp.ClientConnectionError)):
        return True
    return isinstance(exc, mod.IllegalArgumentError) and "too many requests" in str(exc).lower()


class ApoloPlatform(CloudJobPlatform):
    spec = SPEC
    settings_model = ApoloSettings
    TERMINAL = TERMINAL
    job_noun = "Apolo job"
    # the SDK session, the cluster/org/project, the preset, the image's digest in the cluster registry: set by check()
    session = where = _preset = _digest = None

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        from platforms.apolo import credentials

        cfg = self.parsed()
        validate_job(job)
        return self.needs(credentials.find(cfg.config), "Apolo", {
            "image": "--set image=image:platbench:TAG (`apolo image push platbench:TAG`) or "
                     "REGISTRY/platbench:TAG",
            "preset": "--set preset=NAME (a resource preset of the cluster: `apolo config show`)"})

    def check(self, job: Job) -> None:
        from platforms.apolo.session import Session
        from platforms.apolo.storage import ApoloStore

        cfg = self.parsed()
        validate_job(job)
        if not cfg.image:
            raise UserError("apolo: no image: add --set image=image:platbench:TAG or REGISTRY/platbench:TAG")
        if not cfg.preset:
            raise UserError("apolo: no preset: add --set preset=NAME (`apolo config show` lists the cluster's)")
        self.session = Session(cfg.config)
        try:
            self.where = self.session.where(cfg.cluster, cfg.org, cfg.project)
            self._preset = self.session.preset(self.where, cfg.preset)
            if self._preset.tpu is not None or self._preset.amd_gpu is not None or self._preset.intel_gpu is not None:
                raise UserError(f"apolo: preset {cfg.preset!r} has no NVIDIA GPU or CPU-only resources the image "
                                "runs on (the image is built for CUDA)")
            gpu = self._preset.nvidia_gpu
            why = unusable_gpu(gpu.model) if gpu is not None else None
            if why:
                raise UserError(f"apolo: preset {cfg.preset!r}: {why}")
            # whole GPUs or MIG slices: either way the trainer must use CUDA (--device cuda)
            job.on_hardware((gpu.count if gpu is not None else 0)
                            + sum(m.count for m in (self._preset.nvidia_migs or {}).values()))
            image = self.session.client.parse.remote_image(image_ref(cfg.image, self.where),
                                                           cluster_name=self.where.cluster)
        except ValueError as exc:
            self.session.close()
            raise sdk_error(None, exc, f"image {cfg.image!r}") from None
        except BaseException:
            self.session.close()
            raise
        try:
            # a tag can move: the digest it names now is what the job pulls (cluster registry images only;
            # apolo-sdk has no login to other registries)
            if image.cluster_name:
                self._digest = self.session.run(self.session.client.images.digest(image), timeout=120)
        except ValueError as exc:  # ResourceNotFound: not pushed
            self.session.close()
            raise sdk_error(None, exc, f"image {cfg.image!r} is not in the cluster registry "
                                       "(`apolo image push platbench:TAG`)") from None
        except BaseException:
            self.session.close()
            raise
        self._store = ApoloStore(self.where.cluster, session=self.session)
        self.jobs = ApoloJobs(self.session, self.where.cluster)

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: self.where.cluster if self.where else (cfg.cluster or ""),
                tracking.Tag.INSTANCE_TYPE: cfg.preset or "", "platbench.apolo.image": cfg.image or ""}
        if self._digest:
            tags[tracking.Tag.IMAGE_DIGEST] = self._digest
        if self._preset is not None:
            tags["platbench.apolo.credits_per_hour"] = str(self._preset.credits_per_hour)
            tags["platbench.apolo.preemptible"] = str(self._preset.preemptible_node).lower()
            if cfg.usd_per_credit:
                tags[tracking.Tag.PRICE_SOURCE] = self._price_source()
        return tags

    def _price_source(self) -> str:
        cfg = self.parsed()
        return (f"preset {cfg.preset} {self._preset.credits_per_hour} credits/h (cluster {self.where.cluster} "
                f"config, https://docs.apolo.us/index/administration/apolo-credits) × usd_per_credit "
                f"{cfg.usd_per_credit} (--set, the organization's own price)")

    def price_per_hour(self) -> Optional[float]:
        cfg = self.parsed()
        if self._preset is None or not cfg.usd_per_credit:
            return None
        return float(self._preset.credits_per_hour) * cfg.usd_per_credit

    # ------------------------------------------------------------------ names and the job
    def _job_name(self, job: Job) -> str:
        cfg = self.parsed()
        return cfg.job_name or JOB_NAME.unique(cfg.run_name or f"pb-{job.model}")

    def job_spec(self, job: Job, name: str, staged) -> dict:
        """What Jobs.start is called with, apart from the SDK objects (image, volumes)."""
        cfg = self.parsed()
        if staged.mode == "sharded":
            data = f"{STAGED_PATH}/{staged.data_key[len(staged.prefix) + 1:]}"
            data_src = staged.prefix
        else:
            data, data_src = STAGED_PATH, staged.data_key.rstrip("/")
        env = container_env("apolo", digest=self._digest, PLATBENCH_DATA=data, PLATBENCH_OUT=OUT_PATH)
        return {"name": name, "command": shlex.join(["train", "--dataset-name", staged.name, *job.trainer_args()]),
                "env": env, "data_src": data_src, "out": f"{cfg.prefix.strip('/')}/jobs/{cfg.run_key(name)}",
                "tags": ["platbench", f"model-{re.sub(r'[^a-z0-9-]', '-', job.model.lower())}"]}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        prefix = cfg.prefix.strip("/")
        full = cfg.cluster and cfg.org and cfg.project
        root = f"storage://{cfg.cluster}/{cfg.org}/{cfg.project}/{prefix}" if full else f"storage:{prefix}"
        name = cfg.job_name or JOB_NAME.placeholder(cfg.run_name or f"pb-{job.model}")
        out = f"{root}/jobs/{cfg.run_key(name)}"
        where = "".join(f" --{k} {v}" for k, v in (("cluster", cfg.cluster), ("org", cfg.org),
                                                      ("project", cfg.project)) if v)
        sharded = cfg.staging == "sharded"
        fake = type("S", (), {"mode": cfg.staging, "prefix": prefix, "name": Path(job.data).resolve().name,
                               "data_key": f"{prefix}/datasets/<fingerprint>/platbench-manifest.json" if sharded
                               else f"{prefix}/naive/{Path(job.data).resolve().name}/"})()
        spec = self.job_spec(job, name, fake)
        data_uri = f"{root}" if sharded else f"{root}/naive/{fake.name}"
        steps = [PlanStep("check the login, cluster, organization, project and preset before anything is uploaded",
                          "apolo config show")]
        steps += staging_steps(job.data, cfg.staging, root, lambda a, b: f"apolo cp {a} {b}",
                               lambda a, b: f"apolo cp -r {a} {b}", store="storage", unit="storage file",
                               resumable="resumable: <sha256>.tar.part, then renamed",
                               reads="the job reads it through the read-only volume")
        run = (f"apolo run{where} --preset {cfg.preset or 'PRESET'} --name {name} --volume {data_uri}:{STAGED_PATH}:ro "
               f"--volume {out}:{OUT_PATH}:rw " + " ".join(f"--env {k}={shlex.quote(v)}" for k, v in spec["env"].items())
               + f" --life-span {cfg.life_span // 60}m --schedule-timeout {int(cfg.schedule_timeout)}s"
               f" --restart on-failure   # on a preemptible preset only\n          {cfg.image or 'IMAGE'} -- "
               + spec["command"])
        steps += [
            PlanStep("create the job's output folder (results, model/, checkpoints/: a job of the same run_name "
                     "resumes from it)", f"apolo mkdir -p {out}"),
            PlanStep(f"start the job from the image with preset {cfg.preset or 'PRESET'}, the staged data read-only "
                     "and the output volume read-write; a preset with NVIDIA GPUs adds --device cuda to the command, "
                     "so a GPU CUDA cannot use fails the job in one line instead of training on the CPU", run),
            PlanStep("wait, reporting the status history (pending / scheduling / pulling / running) and the epochs "
                     "from the job's log stream", "apolo status JOB_ID; apolo logs JOB_ID"),
        ]
        credits = "the credits the job reports" + (f" × {cfg.usd_per_credit} USD/credit" if cfg.usd_per_credit else "")
        return steps + closing_steps(f"apolo cp -r {out} .", f"cluster, preset, image, {credits}",
                                     "apolo job kill JOB_ID", stop="kill the job")

    # ------------------------------------------------------------------ stage / submit
    def stage(self, job: Job) -> dict[str, Any]:
        from platforms.core import staging

        cfg = self.parsed()  # under the project's folder: the template's stage() knows no Where
        self._staged = staging.upload(job.data, self._store, cfg.staging, self.where.key(cfg.prefix))
        return {**self._staged.figures, "staging": self._staged.mode,
                tracking.Tag.DATASET_FINGERPRINT: self._staged.fingerprint}

    def submit(self, job: Job, staged: dict[str, Any]) -> ApoloHandle:
        cfg = self.parsed()
        from platforms.apolo.session import sdk

        mod = sdk()
        name = self._job_name(job)
        spec = self.job_spec(job, name, self._staged)
        self._store.mkdir(self.where.key(spec["out"]))
        uri = lambda key: self._store._uri(key)  # noqa: E731 - storage://CLUSTER/ORG/PROJECT/…
        volumes = [mod.Volume(uri(spec["data_src"]), STAGED_PATH, read_only=True),
                   mod.Volume(uri(self.where.key(spec["out"])), OUT_PATH, read_only=False)]
        image = self.session.client.parse.remote_image(image_ref(cfg.image, self.where), cluster_name=self.where.cluster)
        preemptible = bool(self._preset.preemptible_node)
        job_id = self.jobs.create(dict(
            image=image, preset_name=cfg.preset, cluster_name=self.where.cluster, org_name=self.where.org,
            project_name=self.where.project, command=spec["command"], env=spec["env"], volumes=volumes,
            name=name, tags=spec["tags"], description=f"platbench {job.model}", life_span=float(cfg.life_span),
            schedule_timeout=float(cfg.schedule_timeout),
            restart_policy=mod.JobRestartPolicy.ON_FAILURE if preemptible else mod.JobRestartPolicy.NEVER))
        print(f"platbench: started Apolo job {job_id} ({name})", file=sys.stderr)
        return ApoloHandle(job_id=job_id, name=name, out_key=self.where.key(spec["out"]), staged=self._staged,
                           preemptible=preemptible, spec=spec)

    # ------------------------------------------------------------------ what the template polls
    @property
    def grace_seconds(self) -> float:
        """The job may wait schedule_timeout before its life span (the template's max_run) starts."""
        return GRACE_SECONDS + self.parsed().schedule_timeout

    def job_state(self, described) -> str:
        status = getattr(described, "status", None)
        return str(status.value) if status is not None else ""

    def _follow(self, handle: ApoloHandle) -> None:
        """The job's log stream (Jobs.monitor) into handle.lines, line by line, on the SDK's loop."""
        client = self.session.client

        async def follow():
            buf = b""
            try:
                async with client.jobs.monitor(handle.job_id, cluster_name=self.where.cluster) as it:
                    async for chunk in it:
                        buf += chunk
                        *lines, buf = buf.split(b"\n")
                        for line in lines:
                            handle.lines.put(line.decode(errors="replace"))
            finally:
                if buf:
                    handle.lines.put(buf.decode(errors="replace"))
                handle.lines.put(None)

        import asyncio

        handle.follower = asyncio.run_coroutine_threadsafe(follow(), self.session.loop)

    def _drain(self, handle: ApoloHandle, progress, until: float) -> None:
        """The job's log lines to the progress display until `until`, or until the stream has ended."""
        while time.time() < until and not (handle.log_done and handle.lines.empty()):
            try:
                line = handle.lines.get(timeout=max(0.0, min(0.2, until - time.time())))
            except queue.Empty:
                continue
            if line is None:
                handle.log_done = True
            elif line:
                progress.log_line(line)

    def pause(self, handle: ApoloHandle, progress, seconds: float) -> None:
        """Between polls the job's log goes to the progress display (its epochs move the bar)."""
        until = time.time() + seconds
        self._drain(handle, progress, until)
        time.sleep(max(0.0, until - time.time()))  # the stream ended before the job: poll at the same pace

    def after_poll(self, handle: ApoloHandle, d, progress) -> None:
        for item in list(d.history.transitions) or [d.history]:
            key = (str(item.status.value), item.reason or "")
            if key not in handle.transitions:
                handle.transitions.add(key)
                progress.phase(phase(*key))
        if d.status.is_running and handle.follower is None:
            self._follow(handle)
            epochs = self._arg(handle, "--epochs")
            progress.epochs(int(epochs) if epochs else preset_epochs(self._arg(handle, "--model")) or 1)
        if d.status.is_finished:
            if handle.follower is None:
                self._follow(handle)  # a job that ran between two polls: its log is still there
            self._drain(handle, progress, time.time() + 30)  # the stream ends with the job

    @staticmethod
    def _arg(handle: ApoloHandle, flag: str) -> Optional[str]:
        args = shlex.split(handle.described.container.command or "") if handle.described else []
        return args[args.index(flag) + 1] if flag in args[:-1] else None

    def job_outcome(self, handle: ApoloHandle, d) -> Outcome:
        cfg = self.parsed()
        h = d.history
        status = {"succeeded": "finished", "cancelled": "killed"}.get(d.status.value, "failed")
        if status == "failed" and h.exit_code == PREEMPTED_EXIT:
            status = "preempted"  # SIGTERM: checkpointed; a job with the same run_name resumes
        phases: dict[str, float] = {}
        points = [(phase(t.status.value, t.reason or ""), t.transition_time) for t in h.transitions]
        points.append(("end", h.finished_at or datetime.now(timezone.utc)))
        for (name, a), (_, b) in zip(points, points[1:]):
            if name not in ("succeeded", "failed", "cancelled") and a and b:
                phases[name] = phases.get(name, 0.0) + max(0.0, (b - a).total_seconds())
        credits = float(d.total_price_credits)
        metrics = {"cost_credits": credits, "credits_per_hour": float(d.price_credits_per_hour),
                   "apolo_restarts": float(h.restarts)}
        cost = credits * cfg.usd_per_credit if cfg.usd_per_credit else None
        tags = {tracking.Tag.JOB_ID: handle.job_id, "platbench.apolo.job_name": handle.name,
                "platbench.apolo.status": d.status.value, "platbench.apolo.reason": h.reason or "",
                "platbench.run_name": cfg.run_key(handle.name),
                "platbench.checkpoint_uri": f"storage://{self.where.cluster}/{handle.out_key}/checkpoints/",
                "platbench.cost_basis": ("total_price_credits the platform reports for the job"
                                         + (f" × usd_per_credit {cfg.usd_per_credit} (--set)" if cost is not None
                                            else "; no USD figure: add --set usd_per_credit=… (your credit price)"))}
        message = h.description or h.reason or f"job {handle.job_id} {d.status.value}"
        if h.exit_code not in (None, 0):
            message += f" (exit code {h.exit_code})"
        return Outcome(status, None, phases=phases, billed_seconds=h.run_time_seconds, cost_usd=cost,
                       list_estimate_usd=cost, metrics=metrics, tags=tags, message=message)

    # ------------------------------------------------------------------ collect / teardown
    def collect(self, handle: ApoloHandle, outcome: Outcome, dest: Path) -> Path:
        from platforms.core.staging import safe_relative

        dest = Path(dest)
        t0 = time.perf_counter()
        prefix = handle.out_key + "/"
        got = 0
        for key, _ in self._store.list(prefix):
            rel = key[len(prefix):]
            if rel.startswith("checkpoints/") or rel.endswith(".part"):
                continue  # checkpoints stay in storage for a resume; they are not outputs
            path = safe_relative(key, prefix, dest)
            if path is not None:
                got += self._store.get_file(key, path)
        return collected(outcome, dest, handle.staged.fingerprint, f"apolo job {handle.job_id}",
                         f"storage://{self.where.cluster}/{handle.out_key}/", got, time.perf_counter() - t0)

    def release(self, handle: Optional[ApoloHandle]) -> None:
        """After the template's teardown (the job killed if it may still run): the log stream and the SDK
        client end. Staged data (content-addressed, reused), outputs and checkpoints (resume) stay."""
        try:
            if handle is not None and handle.follower is not None:
                handle.follower.cancel()
        finally:
            if self.session is not None:
                self.session.close()
