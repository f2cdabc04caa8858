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
  reference is pulled as is: https://docs.apolo.us/index/apolo-cli/commands/image
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
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platforms.apolo import SPEC
from platforms.apolo.phases import PREEMPTED_EXIT, phase
from platforms.core import tracking
from platforms.core.api import Job, Outcome, Platform, PlanStep
from platforms.core.emulator import collected, preset_epochs
from platforms.core.settings import validate_job
from platforms.errors import UserError

STAGED_PATH = "/platbench/staged"
OUT_PATH = "/platbench/out"
# `apolo run --name`: lower-case letters, digits and dashes, starting with a letter
# (https://docs.apolo.us/index/apolo-cli/commands/job, run --name)
JOB_NAME_RE = re.compile(r"^[a-z](?:-?[a-z0-9])*$")
RUN_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
IMAGE_RE = re.compile(r"^(image:[^\s]+|[a-z0-9][a-z0-9.\-]*(:\d+)?/[^\s]+|[a-z0-9][^\s:/@]*(:[^\s/@]+)?)$")


class ApoloProject(BaseModel):
    """The `--set` keys every Apolo command shares (training jobs and endpoints)."""

    model_config = ConfigDict(extra="forbid")

    config: Optional[str] = None        # the SDK's config directory (default $APOLO_CONFIG, else ~/.apolo)
    cluster: Optional[str] = None       # default: the login's current cluster
    org: Optional[str] = None
    project: Optional[str] = None
    prefix: str = "platbench"           # the folder in the project's storage platbench writes under
    image: Optional[str] = None         # image:platbench:TAG, or REGISTRY/platbench@sha256:…
    preset: Optional[str] = None        # a resource preset of the cluster (`apolo config show`)
    usd_per_credit: Optional[float] = Field(None, gt=0)  # your organization's credit price, for USD figures
    life_span: int = Field(4 * 3600, ge=60, le=30 * 24 * 3600)   # seconds; the platform kills the job after
    poll_seconds: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _checked(self):
        if self.image is not None and not IMAGE_RE.match(self.image):
            raise ValueError(f"image {self.image!r} is not an image reference (image:platbench:TAG or "
                             "REGISTRY/platbench@sha256:…)")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$", self.prefix) or ".." in self.prefix.split("/"):
            raise ValueError(f"prefix {self.prefix!r} is not a plain relative storage path")
        return self

    @property
    def digest(self) -> Optional[str]:
        return self.image.split("@", 1)[1] if self.image and "@sha256:" in self.image else None


class ApoloSettings(ApoloProject):
    """`--set KEY=VALUE` for `platbench launch apolo`."""

    staging: Literal["sharded", "naive"] = "sharded"
    schedule_timeout: float = Field(3600, ge=60, le=7 * 24 * 3600)  # seconds pending before the platform fails it
    run_name: Optional[str] = None      # the output folder jobs/<run_name>: a new job of the run resumes it
    job_name: Optional[str] = None

    @model_validator(mode="after")
    def _names(self):
        if self.run_name is not None and not RUN_NAME_RE.match(self.run_name):
            raise ValueError(f"run_name {self.run_name!r} is not valid (1-63 of a-z, A-Z, 0-9, -)")
        if self.job_name is not None and not (3 <= len(self.job_name) <= 40 and JOB_NAME_RE.match(self.job_name)):
            raise ValueError(f"job_name {self.job_name!r} is not a valid Apolo job name (3-40 lower-case letters, "
                             "digits and dashes, starting with a letter)")
        return self


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


@dataclass
class ApoloHandle:
    id: str
    name: str
    out_key: str                        # ORG/PROJECT/<prefix>/jobs/<run> (cluster-relative)
    staged: Any
    preemptible: bool = False
    last: Any = None                    # the last JobDescription
    lines: "queue.Queue[Optional[str]]" = field(default_factory=queue.Queue)
    follower: Any = None                # the log-stream future


class ApoloPlatform(Platform):
    spec = SPEC
    settings_model = ApoloSettings

    def __init__(self, settings=None):
        super().__init__(settings)
        self.session = None
        self.where = None
        self._preset = None
        self._store = None
        self._staged = None

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        from platforms.apolo import credentials

        cfg = self.parsed()
        validate_job(job)
        found, where = credentials.find(cfg.config)
        needs = [] if found else [f"Apolo credentials ({where})"]
        if not cfg.image:
            needs.append("--set image=image:platbench:TAG (`apolo image push platbench:TAG`) or "
                         "REGISTRY/platbench@sha256:…")
        if not cfg.preset:
            needs.append("--set preset=NAME (a resource preset of the cluster: `apolo config show`)")
        return needs

    def check(self, job: Job) -> None:
        from platforms.apolo.session import Session
        from platforms.apolo.storage import ApoloStore

        cfg = self.parsed()
        validate_job(job)
        if not cfg.image:
            raise UserError("apolo: no image: add --set image=image:platbench:TAG or REGISTRY/platbench@sha256:…")
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
            self.session.client.parse.remote_image(image_ref(cfg.image, self.where), cluster_name=self.where.cluster)
        except ValueError as exc:
            self.session.close()
            raise UserError(f"apolo: image {cfg.image!r}: {exc}") from None
        except BaseException:
            self.session.close()
            raise
        self._store = ApoloStore(self.where.cluster, session=self.session)

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        tags = {tracking.Tag.REGION: self.where.cluster if self.where else (cfg.cluster or ""),
                tracking.Tag.INSTANCE_TYPE: cfg.preset or "", "platbench.apolo.image": cfg.image or ""}
        if cfg.digest:
            tags[tracking.Tag.IMAGE_DIGEST] = cfg.digest
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
    def run_key(self, job_name: str) -> str:
        return self.parsed().run_name or job_name

    def _job_name(self, job: Job) -> str:
        cfg = self.parsed()
        if cfg.job_name:
            return cfg.job_name
        stem = re.sub(r"[^a-z0-9]+", "-", (cfg.run_name or f"pb-{job.model}").lower()).strip("-")
        stem = stem if stem[:1].isalpha() else f"pb-{stem}"
        suffix = f"{datetime.now(timezone.utc).strftime('%m%d%H%M%S')}-{secrets.token_hex(2)}"
        return f"{stem[:40 - len(suffix) - 1].rstrip('-')}-{suffix}"

    def job_spec(self, job: Job, name: str, staged) -> dict:
        """What Jobs.start is called with, apart from the SDK objects (image, volumes)."""
        cfg = self.parsed()
        if staged.mode == "sharded":
            data = f"{STAGED_PATH}/{staged.data_key[len(staged.prefix) + 1:]}"
            data_src = staged.prefix
        else:
            data, data_src = STAGED_PATH, staged.data_key.rstrip("/")
        env = {"PLATBENCH_PLATFORM": "apolo", "PLATBENCH_DATA": data, "PLATBENCH_OUT": OUT_PATH}
        commit = tracking.code_commit()
        if commit:
            env["PLATBENCH_GIT_COMMIT"] = commit
        if cfg.digest:
            env["PLATBENCH_IMAGE_DIGEST"] = cfg.digest
        return {"name": name, "command": shlex.join(["train", "--dataset-name", staged.name, *job.trainer_args()]),
                "env": env, "data_src": data_src, "out": f"{cfg.prefix.strip('/')}/jobs/{self.run_key(name)}",
                "tags": ["platbench", f"model-{re.sub(r'[^a-z0-9-]', '-', job.model.lower())}"]}

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        prefix = cfg.prefix.strip("/")
        full = cfg.cluster and cfg.org and cfg.project
        root = f"storage://{cfg.cluster}/{cfg.org}/{cfg.project}/{prefix}" if full else f"storage:{prefix}"
        name = cfg.job_name or "pb-" + job.model + "-MMDDHHMMSS-XXXX"
        out = f"{root}/jobs/{self.run_key(name)}"
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
        if sharded:
            steps += [
                PlanStep(f"fingerprint {job.data} and pack it into content-addressed tar shards (one per class "
                         "folder); upload only the shards storage lacks (resumable: <sha256>.tar.part, then renamed)",
                         f"apolo mkdir -p {root}/shards && apolo cp SHARD.tar {root}/shards/<sha256>.tar   "
                         "# for each new shard"),
                PlanStep("write the dataset manifest last; the job reads it through the read-only volume",
                         f"apolo cp platbench-manifest.json {root}/datasets/<fingerprint>/platbench-manifest.json"),
            ]
        else:
            steps.append(PlanStep("upload every file as its own storage file (naive staging)",
                                  f"apolo cp -r {shlex.quote(str(job.data))} {data_uri}"))
        run = (f"apolo run{where} --preset {cfg.preset or 'PRESET'} --name {name} --volume {data_uri}:{STAGED_PATH}:ro "
               f"--volume {out}:{OUT_PATH}:rw " + " ".join(f"--env {k}={shlex.quote(v)}" for k, v in spec["env"].items())
               + f" --life-span {cfg.life_span // 60}m --schedule-timeout {int(cfg.schedule_timeout)}s"
               f" --restart on-failure   # on a preemptible preset only\n          {cfg.image or 'IMAGE'} -- "
               + spec["command"])
        steps += [
            PlanStep("create the job's output folder (results, model/, checkpoints/: a job of the same run_name "
                     "resumes from it)", f"apolo mkdir -p {out}"),
            PlanStep(f"start the job from the image with preset {cfg.preset or 'PRESET'}, the staged data read-only "
                     f"and the output volume read-write", run),
            PlanStep("wait, reporting the status history (pending / scheduling / pulling / running) and the epochs "
                     "from the job's log stream", "apolo status JOB_ID; apolo logs JOB_ID"),
            PlanStep("collect results.json, metrics.jsonl, train.log and model/ from the output folder; check the "
                     "dataset fingerprint the trainer read against the staged one", f"apolo cp -r {out} ."),
            PlanStep("record the MLflow run: cluster, preset, image, upload/download s/MB, phase seconds, the credits "
                     "the job reports" + (f" × {cfg.usd_per_credit} USD/credit" if cfg.usd_per_credit else "")),
            PlanStep("on an error or Ctrl-C while waiting: kill the job", "apolo job kill JOB_ID"),
        ]
        return steps

    # ------------------------------------------------------------------ stage / submit
    def stage(self, job: Job) -> dict[str, Any]:
        from platforms.core import staging

        cfg = self.parsed()
        try:
            self._staged = staging.upload(job.data, self._store, cfg.staging, self.where.key(cfg.prefix))
        except BaseException:
            self.session.close()  # no job yet, so no teardown: the SDK client is closed here
            raise
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
        try:
            d = self.session.run(self.session.client.jobs.start(
                image=image, preset_name=cfg.preset, cluster_name=self.where.cluster, org_name=self.where.org,
                project_name=self.where.project, command=spec["command"], env=spec["env"], volumes=volumes,
                name=name, tags=spec["tags"], description=f"platbench {job.model}", life_span=float(cfg.life_span),
                schedule_timeout=float(cfg.schedule_timeout),
                restart_policy=mod.JobRestartPolicy.ON_FAILURE if preemptible else mod.JobRestartPolicy.NEVER))
        except (mod.ClientError, ValueError, OSError) as exc:  # the SDK's refusals are ValueError subclasses
            self.session.close()
            raise sdk_error(mod, exc, "the job was refused") from None
        handle = ApoloHandle(d.id, name, self.where.key(spec["out"]), self._staged, preemptible, d)
        print(f"platbench: started Apolo job {d.id} ({name})", file=sys.stderr)
        return handle

    # ------------------------------------------------------------------ wait
    def _follow(self, handle: ApoloHandle) -> None:
        """The job's log stream (Jobs.monitor) into handle.lines, line by line, on the SDK's loop."""
        client = self.session.client

        async def follow():
            buf = b""
            try:
                async with client.jobs.monitor(handle.id, cluster_name=self.where.cluster) as it:
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

    def _drain(self, handle: ApoloHandle, progress, state: dict, until: float) -> None:
        while True:
            try:
                line = handle.lines.get(timeout=max(0.0, min(0.2, until - time.time())))
            except queue.Empty:
                line = ""
            if line is None:
                state["log_done"] = True
            elif line:
                progress.log_line(line)
            if time.time() >= until or state.get("log_done") and handle.lines.empty():
                return

    def wait(self, handle: ApoloHandle, progress) -> Outcome:
        from platforms.apolo.session import sdk

        cfg = self.parsed()
        mod = sdk()
        seen: set = set()
        state: dict = {}
        deadline = time.time() + cfg.schedule_timeout + cfg.life_span + 3600
        while True:
            try:
                d = self.session.run(self.session.client.jobs.status(handle.id))
            except (mod.ClientError, ValueError) as exc:
                raise sdk_error(mod, exc, f"cannot read job {handle.id}") from None
            handle.last = d
            for item in list(d.history.transitions) or [d.history]:
                key = (str(item.status.value), item.reason or "")
                if key not in seen:
                    seen.add(key)
                    progress.phase(phase(*key))
            if d.status.is_running and handle.follower is None:
                self._follow(handle)
                epochs = self._arg(handle, "--epochs")
                progress.epochs(int(epochs) if epochs else preset_epochs(self._arg(handle, "--model")) or 1)
            if d.status.is_finished:
                if handle.follower is None:
                    self._follow(handle)  # a job that ran between two polls: its log is still there
                self._drain(handle, progress, state, time.time() + 30)  # the stream ends with the job
                break
            if time.time() > deadline:
                raise UserError(f"apolo: job {handle.id} still {d.status.value} after its schedule timeout, "
                                "life span and an hour; killing it")
            self._drain(handle, progress, state, time.time() + cfg.poll_seconds)
        return self._outcome(handle, d)

    @staticmethod
    def _arg(handle: ApoloHandle, flag: str) -> Optional[str]:
        args = shlex.split(handle.last.container.command or "") if handle.last is not None else []
        return args[args.index(flag) + 1] if flag in args[:-1] else None

    def _outcome(self, handle: ApoloHandle, d) -> Outcome:
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
        tags = {tracking.Tag.JOB_ID: handle.id, "platbench.apolo.job_name": handle.name,
                "platbench.apolo.status": d.status.value, "platbench.apolo.reason": h.reason or "",
                "platbench.run_name": self.run_key(handle.name),
                "platbench.checkpoint_uri": f"storage://{self.where.cluster}/{handle.out_key}/checkpoints/",
                "platbench.cost_basis": ("total_price_credits the platform reports for the job"
                                         + (f" × usd_per_credit {cfg.usd_per_credit} (--set)" if cost is not None
                                            else "; no USD figure: add --set usd_per_credit=… (your credit price)"))}
        message = h.description or h.reason or f"job {handle.id} {d.status.value}"
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
        return collected(outcome, dest, handle.staged.fingerprint, f"apolo job {handle.id}",
                         f"storage://{self.where.cluster}/{handle.out_key}/", got, time.perf_counter() - t0)

    def teardown(self, handle: ApoloHandle) -> None:
        """Kill the job if it still runs; staged data (content-addressed, reused), outputs and checkpoints
        (resume) stay in storage."""
        from platforms.apolo.session import sdk

        try:
            if handle.last is None or not handle.last.status.is_finished:
                try:
                    self.session.run(self.session.client.jobs.kill(handle.id), timeout=120)
                    print(f"platbench: killed Apolo job {handle.id}", file=sys.stderr)
                except sdk().ResourceNotFound:
                    pass
                except Exception as exc:  # noqa: BLE001 - teardown must not hide the original error
                    print(f"platbench: could not kill Apolo job {handle.id} (`apolo job kill {handle.id}`): "
                          f"{exc}".splitlines()[0], file=sys.stderr)
            if handle.follower is not None:
                handle.follower.cancel()
        finally:
            self.session.close()
