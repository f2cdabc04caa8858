"""MLflow tracking: the launcher is the single writer of a benchmark job's run (docs/design.md, "Tracking").

Default store: embedded in the working directory (`./mlflow.db` + `./mlartifacts/`), no server;
an `MLFLOW_TRACKING_URI` the user sets wins. The names of params and metrics live here, once; the tags'
in platforms/core/tags.py (Tag, re-exported here), which platforms/core/condition.py reads without this module."""
from __future__ import annotations

import json
import os
import socket
import subprocess
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Optional

from platforms.core.tags import Tag  # the tag names (their own module: condition.py reads them), used here and as tracking.Tag

EXPERIMENT = "platbench"
DB_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"


# per-epoch metrics imported from metrics.jsonl (step = epoch)
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_accuracy", "val_loss", "test_accuracy",
                 "test_top5_accuracy", "test_loss", "epoch_seconds", "train_seconds", "lr")

# final metrics: MLflow name → path in results.json
RESULT_METRICS = {
    "final_test_accuracy": ("test_accuracy",),
    "final_test_top5_accuracy": ("test_top5_accuracy",),
    "final_val_accuracy": ("val_accuracy",),
    "seconds_total": ("seconds", "total"),
    "seconds_data": ("seconds", "data"),
    "seconds_train": ("seconds", "train"),
    "seconds_to_target": ("seconds", "to_target"),
    "seconds_eval": ("seconds", "eval"),
    "epoch_to_target": ("epoch_to_target",),
    "optimizer_steps": ("schedule", "steps"),
    "schedule_epochs": ("schedule", "epochs"),
    "plain_throughput_images_per_s": ("plain_throughput_images_per_s",),
    "plain_latency_ms_per_image": ("plain_latency_ms_per_image",),
    "evaluated_throughput_images_per_s": ("evaluated_throughput_images_per_s",),
    "evaluated_latency_ms_per_image": ("evaluated_latency_ms_per_image",),
    "params_total": ("params", "total"),
    "params_trainable": ("params", "trainable"),
    "world_size": ("hardware", "world_size"),  # data-parallel processes (one device each), all nodes
    "nodes": ("hardware", "nodes"),
}


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / DB_FILE}"


def _is_embedded() -> bool:
    return not os.environ.get("MLFLOW_TRACKING_URI")


def client():
    """An MlflowClient on the resolved store."""
    import logging

    from mlflow.tracking import MlflowClient

    # after the import: mlflow configures its own logger when imported; its INFO lines about creating
    # database tables are noise in a CLI
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=tracking_uri())


def experiment_id(c) -> str:
    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(EXPERIMENT, artifact_location=artifact_location(tracking_uri()))


def artifact_location(uri: str) -> str | None:
    """Artifacts of a store in a local sqlite file live beside that file (`mlartifacts/`), not in
    MLflow's default `./mlruns` under whatever folder the first run happened to start in. Servers and
    other stores keep their own default."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / ARTIFACT_DIR).as_uri()
    return None


def code_commit() -> str | None:
    """The platbench commit: PLATBENCH_GIT_COMMIT (baked into the image) or the checkout's HEAD."""
    if os.environ.get("PLATBENCH_GIT_COMMIT"):
        return os.environ["PLATBENCH_GIT_COMMIT"]
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


class TrackedRun:
    """One MLflow run, written through the client (no global active-run state)."""

    def __init__(self, c, run_id: str):
        self.client, self.run_id = c, run_id

    def params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items() if v is not None]
        if items:
            self.client.log_batch(self.run_id, params=items)

    def tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        if items:
            self.client.log_batch(self.run_id, tags=items)

    def metrics(self, values: dict, step: int = 0, timestamp_ms: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in values.items() if v is not None]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def import_outputs(self, out: Path, container: Optional[bool] = None) -> None:
        """The trainer's outputs: per-epoch metrics (with their own timestamps), final figures, files, and
        the compliance check's verdict (a run that fails it is left out of every report figure).
        container: whether the job ran in the image (None: inferred from its platform)."""
        from trainer.results import LOG_FILE, METRICS_FILE, RESULTS_FILE, read_metrics, read_results

        from mlflow.entities import Metric

        out = Path(out)
        if (out / METRICS_FILE).is_file():
            batch = []
            for rec in read_metrics(out):
                ts = int(rec.get("wall_time", 0) * 1000)
                batch += [Metric(k, float(rec[k]), ts, int(rec["epoch"])) for k in EPOCH_METRICS if k in rec]
            for i in range(0, len(batch), 1000):  # MLflow's log_batch limit
                self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])
        if (out / RESULTS_FILE).is_file():
            res = read_results(out)
            data = res.model_dump()
            finals = {}
            for name, path in RESULT_METRICS.items():
                value = data
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                finals[name] = value
            self.metrics(finals, step=res.epochs_completed)
            self.tags({Tag.DATASET_FINGERPRINT: res.dataset.fingerprint, Tag.DATASET: res.dataset.name,
                       Tag.RESULTS_SCHEMA: res.schema_version, Tag.DEVICE: res.hardware.device,
                       Tag.GPU: res.hardware.gpu_name, Tag.IMAGE_DIGEST: res.image_digest, Tag.JOB_ID: res.job_id,
                       Tag.IMAGE_ID: res.image_id, Tag.RESULTS_RUN_ID: res.run_id,
                       Tag.NVIDIA_DRIVER: res.hardware.nvidia_driver})
            self.params({f"hp.{k}": v for k, v in res.hyperparameters.items()})
            self.tags({Tag.SOFTWARE + k: v for k, v in res.software.model_dump().items()})
            self.record_condition()
            self.record_check(out, container)
        for name in (RESULTS_FILE, METRICS_FILE, LOG_FILE):
            if (out / name).is_file():
                self.client.log_artifact(self.run_id, str(out / name))

    def record_condition(self) -> None:
        """The run's condition (platforms/core/condition.py), read back from what the run now holds, so
        it is the same one the report computes: its hash as a tag, its fields as params."""
        from platforms.core import condition

        data = self.client.get_run(self.run_id).data
        cond = condition.of(data.tags, data.params, data.metrics)
        self.params({k: v for k, v in cond.params().items() if k not in data.params})
        self.tags({Tag.CONDITION: cond.key})

    def record_check(self, out: Path, container: Optional[bool] = None):
        """Run the compliance checker on a run directory; tag the verdict and keep its lines as check.txt.
        Returns the checker's report (problems and notes)."""
        import tempfile

        from trainer.check import run_checks

        report = run_checks(out, container=container)
        lines = [str(p) for p in report.problems]
        if container is not None:  # so a later `platbench check RUN` checks it the same way
            self.tags({Tag.IN_IMAGE: str(container).lower()})
        self.tags({Tag.CHECK: "failed" if lines else "passed",
                   Tag.CHECK_REASON: f"{lines[0]} (+{len(lines) - 1} more)" if len(lines) > 1 else
                   (lines[0] if lines else "")})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "check.txt"
            path.write_text("\n".join(lines + [f"note: {n}" for n in report.notes]) + "\n")
            self.client.log_artifact(self.run_id, str(path))
        return report

    def log_model_dir(self, model_dir: Path) -> None:
        """The trainer's model as the MLflow pyfunc model `model` (trainer/mlflow_model.py): model.pt and
        model.json at its top as before, MLflow's files beside them, so `mlflow models serve -m
        runs:/RUN_ID/model` serves it. A directory that is not a complete platbench model is logged as it is,
        with the reason in the tag platbench.mlflow_model."""
        import tempfile

        from trainer.inference import ModelError

        if not Path(model_dir).is_dir():
            return
        with tempfile.TemporaryDirectory() as tmp:
            try:
                from trainer.mlflow_model import save

                src, note = save(Path(model_dir), Path(tmp) / "model"), "pyfunc"
            except ModelError as exc:
                src, note = Path(model_dir), f"none: {exc}"
            self.client.log_artifacts(self.run_id, str(src), artifact_path="model")
        self.tags({Tag.MLFLOW_MODEL: note})

    def end(self, status: str) -> None:
        """status: FINISHED | FAILED | KILLED."""
        self.client.set_terminated(self.run_id, status=status)


_NESTING: ContextVar[tuple[Optional[str], dict]] = ContextVar("platbench_nesting", default=(None, {}))


@contextmanager
def nested_under(parent_run_id: str, tags: dict | None = None) -> Iterator[None]:
    """Runs started inside this block (tracked_run, e.g. by launch()) become children of
    `parent_run_id` and also carry `tags`: how a sweep's launches nest under the sweep's run."""
    token = _NESTING.set((parent_run_id, dict(tags or {})))
    try:
        yield
    finally:
        _NESTING.reset(token)


@contextmanager
def tracked_run(run_name: str, params: dict, tags: dict, parent_run_id: Optional[str] = None) -> Iterator[TrackedRun]:
    """Start a run (a child of `parent_run_id`, or of an enclosing nested_under, when given); on an
    exception mark it FAILED (KILLED for Ctrl-C) before re-raising, so no run is ever left RUNNING by a
    process that is still alive to say otherwise."""
    default_parent, extra_tags = _NESTING.get()
    parent_run_id = parent_run_id or default_parent
    c = client()
    run = c.create_run(experiment_id(c), run_name=run_name)
    tr = TrackedRun(c, run.info.run_id)
    tr.params(params)
    tr.tags({Tag.GIT_COMMIT: code_commit(), Tag.HOST: socket.gethostname(), Tag.PID: os.getpid(), **extra_tags,
             **tags, **({Tag.PARENT_RUN: parent_run_id} if parent_run_id else {})})
    try:
        yield tr
    except KeyboardInterrupt:
        tr.tags({Tag.STATUS: "killed"})
        tr.end("KILLED")
        raise
    except BaseException:
        tr.tags({Tag.STATUS: "failed"})
        tr.end("FAILED")
        raise


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reconcile_lost(c, runs: list) -> list:
    """A process killed outright (SIGKILL, power loss) cannot end its run. A RUNNING run launched from
    this host whose process no longer exists is marked FAILED with status "lost"."""
    host = socket.gethostname()
    fixed = []
    for run in runs:
        t = run.data.tags
        if (run.info.status == "RUNNING" and t.get(Tag.HOST) == host and t.get(Tag.PID, "").isdigit()
                and not process_alive(int(t[Tag.PID]))):
            c.set_tag(run.info.run_id, Tag.STATUS, "lost")
            c.set_terminated(run.info.run_id, status="FAILED")
            run = c.get_run(run.info.run_id)
        fixed.append(run)
    return fixed


# what `platbench runs --kind` takes: "train" (runs without a kind tag), each kind tag in use, or "all"
RUN_KINDS = ("train", "load", "batch_inference", "endpoint", "sweep", "transfer", "service", "all")


def list_runs(max_results: int = 50, kind: str | None = "train") -> list:
    """Newest first. kind "train": training runs (they carry no kind tag); another kind: runs tagged with
    it (load, batch_inference, sweep, …); None: every run."""
    c = client()
    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return []
    if kind and kind != "train":
        query, keep = f"tags.`{Tag.KIND}` = '{kind}'", (lambda r: True)
    else:
        query, keep = "", (lambda r: kind is None or Tag.KIND not in r.data.tags)
    runs, token = [], None
    while len(runs) < max_results:
        page = c.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"],
                             max_results=1000, page_token=token)
        runs += [r for r in page if keep(r)]
        token = page.token
        if not token:
            break
    return reconcile_lost(c, runs[:max_results])


def run_summary(run) -> dict:
    """A flat view of one run for tables and --json."""
    m, t, p = run.data.metrics, run.data.tags, run.data.params
    return {
        "run_id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
        "start_time": run.info.start_time, "platform": t.get(Tag.PLATFORM), "model": t.get(Tag.MODEL),
        "dataset": t.get(Tag.DATASET), "dataset_fingerprint": t.get(Tag.DATASET_FINGERPRINT),
        "per_class": p.get("per_class"), "seed": p.get("seed"),
        "test_accuracy": m.get("final_test_accuracy"), "seconds_train": m.get("seconds_train"),
        "seconds_to_target": m.get("seconds_to_target"), "plain_throughput_images_per_s": m.get("plain_throughput_images_per_s"),
        "evaluated_throughput_images_per_s": m.get("evaluated_throughput_images_per_s"),
        "image_digest": t.get(Tag.IMAGE_DIGEST), "kind": t.get(Tag.KIND),
        "hyperparameters": {k[3:]: v for k, v in p.items() if k.startswith("hp.")},
    }


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=str)
