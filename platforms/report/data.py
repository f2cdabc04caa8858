"""What the report is made of: every run in the MLflow store (platforms.core.tracking's names), read once.

Nothing here computes a figure; it only sorts runs into kinds and reads the figures they logged, so a
number in the report can always be traced to a run id, a metric name and that run's provenance tags."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from platforms.core import condition as condition_mod
from platforms.core import tracking
from platforms.core.tracking import Tag

TRAINING = "training"
SERVICE = "service"  # platforms/core/service_launch.py KIND: a managed AutoML service's run
PIPELINE = "pipeline"  # platforms/reproduce/pipeline_plan.py KIND: `platbench reproduce`'s per-batch pipeline


class _TagValue:
    """A run's tag as an attribute (run.fingerprint): the tag's value, or None when the run has none."""

    def __init__(self, tag: str):
        self.tag = tag

    def __get__(self, run, owner=None) -> Optional[str]:
        return self if run is None else run.tags.get(self.tag)


@dataclass
class Run:
    run_id: str
    name: str
    status: str                      # MLflow: FINISHED | FAILED | KILLED | RUNNING
    outcome: str                     # platbench.status tag (finished | failed | killed | preempted | lost) or MLflow's
    kind: str                        # training | load | batch_inference | sweep | …
    start_time: Optional[int]
    tags: dict
    params: dict
    metrics: dict

    @property
    def platform(self) -> str:
        """The platform as the report shows it: a cloud launcher's local mode (the job run on this machine
        under that platform's contract) is told apart from the platform itself."""
        name = self.tags.get(Tag.PLATFORM) or "?"
        return f"{name} (local mode)" if self.tags.get(Tag.LOCAL_MODE) == "true" else name

    @property
    def model(self) -> str:
        return self.tags.get(Tag.MODEL) or self.params.get("model") or "?"

    @property
    def per_class(self) -> Optional[int]:
        return self._param("per_class", int)

    @property
    def seed(self) -> Optional[int]:
        return self._param("seed", int)

    def _param(self, name: str, kind):
        """A param as a number; None when the run logged none (or "None") or something else."""
        value = self.params.get(name)
        try:
            return kind(value) if value not in (None, "", "None") else None
        except ValueError:
            return None

    @property
    def world_size(self) -> int:
        """Data-parallel processes, one device each, over all nodes (results schema 3, metric world_size).
        A run from before schema 3 logged none: it was one process (trainer/results.py upgrade())."""
        value = self.m("world_size")
        return int(value) if value is not None else 1

    @property
    def nodes(self) -> int:
        value = self.m("nodes")
        return int(value) if value is not None else 1

    @property
    def target_accuracy(self) -> Optional[float]:
        return self._param("target_accuracy", float)

    fingerprint = _TagValue(Tag.DATASET_FINGERPRINT)
    image_digest = _TagValue(Tag.IMAGE_DIGEST)
    commit = _TagValue(Tag.GIT_COMMIT)
    sweep = _TagValue(Tag.SWEEP)

    @property
    def condition(self) -> "condition_mod.Condition":
        """What must be equal for this run to be compared with another (platforms/core/condition.py)."""
        return condition_mod.of(self.tags, self.params, self.metrics)

    @property
    def check_failed(self) -> bool:
        return (self.tags.get(Tag.CHECK) or "").strip().lower() == "failed"

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED" and self.outcome == "finished"

    def m(self, name: str) -> Optional[float]:
        value = self.metrics.get(name)
        return None if value is None or value != value else float(value)  # NaN → None


@dataclass
class Store:
    uri: str
    training: list[Run] = field(default_factory=list)      # finished: the runs behind the figures
    unfinished: list[Run] = field(default_factory=list)    # failed / killed / preempted / lost / running
    load: list[Run] = field(default_factory=list)           # `platbench load` (kind load)
    endpoints: list[Run] = field(default_factory=list)      # `platbench endpoint`: deploy, load-test, delete
    # `platbench launch SERVICE` (kind service, platforms/core/service_launch.py): a managed AutoML service trained on
    # our data, then its deployed model evaluated and load-tested; in the training figures and the serving ones
    services: list[Run] = field(default_factory=list)
    batch: list[Run] = field(default_factory=list)
    transfers: list[Run] = field(default_factory=list)      # `platbench transfer`: one run per cold repeat
    transfer_batches: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # run id → side → per-batch s/MiB
    # `platbench reproduce`'s per-batch pipeline (kind pipeline, platforms/reproduce/pipeline.py): finished runs only,
    # read by the study page alone; each batch's figures are steps of its metrics
    pipelines: list[Run] = field(default_factory=list)
    pipeline_batches: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # run id → metric → per batch
    sweeps: list[Run] = field(default_factory=list)
    excluded: list[Run] = field(default_factory=list)      # compliance check failed: in no figure
    sweep_filter: list[str] = field(default_factory=list)
    latency_samples: dict[str, list[float]] = field(default_factory=dict)  # load run id → ok latencies (ms)
    latency_missing: dict[str, str] = field(default_factory=dict)          # load run id → why no samples
    endpoint_notes: dict[str, str] = field(default_factory=dict)           # endpoint run id → price caveat
    load_settings: dict[str, dict] = field(default_factory=dict)           # run id → the load test's settings
    # training runs of groups run at two or more device counts: images trained on over all ranks (from the
    # run's results.json artifact, see train_images), or why there is no such figure
    train_images: dict[str, float] = field(default_factory=dict)
    train_images_missing: dict[str, str] = field(default_factory=dict)

    @property
    def serving(self) -> list[Run]:
        return self.load + self.endpoints + [r for r in self.services if r.finished]

    def by_id(self) -> dict[str, Run]:
        return {r.run_id: r for r in self.training + self.unfinished + self.serving + self.batch + self.sweeps
                + self.excluded + self.transfers}


def _to_run(r) -> Run:
    tags = dict(r.data.tags)
    kind = tags.get(Tag.KIND) or TRAINING
    outcome = tags.get(Tag.STATUS) or r.info.status.lower()
    return Run(r.info.run_id, r.info.run_name or "", r.info.status, outcome, kind, r.info.start_time, tags,
               dict(r.data.params), dict(r.data.metrics))


def gather(sweeps: list[str] | None = None, latency: bool = True) -> Store:
    """Every run of the platbench experiment. With `sweeps`, training runs are only those of the named
    sweeps (their parent runs too); load and batch-inference runs are always all included."""
    if tracking._is_embedded() and not (Path.cwd() / tracking.DB_FILE).exists():
        from platforms.errors import UserError

        raise UserError(f"no MLflow store here ({Path.cwd() / tracking.DB_FILE}): run `platbench launch` or "
                        "`platbench sweep` in this folder first, or set MLFLOW_TRACKING_URI")
    c = tracking.client()
    store = Store(tracking.tracking_uri(), sweep_filter=list(sweeps or []))
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    if exp is None:
        return store
    raw, token = [], None
    while True:
        page = c.search_runs([exp.experiment_id], max_results=1000, page_token=token,
                             order_by=["attributes.start_time ASC"])
        raw += list(page)
        token = page.token
        if not token:
            break
    raw = tracking.reconcile_lost(c, raw)
    wanted = set(sweeps or [])
    for r in map(_to_run, raw):
        if r.check_failed and r.kind != "sweep":
            if r.kind != TRAINING or not wanted or r.sweep in wanted:
                store.excluded.append(r)  # before any pool: a rejected run enters no figure
        elif r.kind == "sweep":
            if not wanted or r.sweep in wanted:
                store.sweeps.append(r)
        elif r.kind == "load":
            store.load.append(r)
        elif r.kind == "endpoint":
            store.endpoints.append(r)
        elif r.kind == SERVICE:
            if wanted and r.sweep not in wanted:
                continue
            store.services.append(r)
            (store.training if r.finished else store.unfinished).append(r)
        elif r.kind == "batch_inference":
            store.batch.append(r)
        elif r.kind == "transfer":
            if r.finished:
                store.transfers.append(r)
        elif r.kind == PIPELINE:
            if r.finished:
                store.pipelines.append(r)
        elif r.kind == TRAINING:
            if wanted and r.sweep not in wanted:
                continue
            (store.training if r.finished else store.unfinished).append(r)
    if wanted:
        missing = wanted - {r.sweep for r in store.sweeps}
        if missing:
            from platforms.errors import UserError

            raise UserError(f"no sweep named {', '.join(sorted(missing))} in {store.uri}")
    for r in scaling_runs(store.training):
        _train_images(c, r, store)
    if latency:
        for r in store.serving:
            _latency(c, r, store)
        for r in store.transfers:  # each batch's s/MiB is a step of one metric: its whole history is the distribution
            store.transfer_batches[r.run_id] = {side: [m.value for m in c.get_metric_history(r.run_id, f"batch_{side}_s_per_mb")]
                                                for side in ("upload", "download")}
        for r in store.pipelines:  # per batch: the step metrics (not the summaries: _mean, _median, _sd, _n, _total)
            store.pipeline_batches[r.run_id] = {
                name: [m.value for m in sorted(c.get_metric_history(r.run_id, name), key=lambda m: m.step)]
                for name in r.metrics if name.startswith("pipeline_") and not name.endswith(("_mean", "_median", "_sd", "_n", "_total"))}
    return store


def _latency(c, run: Run, store: Store) -> None:
    """Every request's latency: the load tool's report (artifact load.json of a load run, or the "load"
    part of endpoint.json of an endpoint run or of service.json of a service run); only requests that
    succeeded (error None) count. The load test's settings (requests, concurrency, rate) are kept too."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    name = {"endpoint": "endpoint.json", SERVICE: "service.json"}.get(run.kind, "load.json")
    try:
        names = {a.path for a in c.list_artifacts(run.run_id)}
        if name not in names:
            store.latency_missing[run.run_id] = f"no {name} artifact"
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(c.download_artifacts(run.run_id, name, tmp))
            doc = json.loads(path.read_text())
        if run.kind == "endpoint":
            note = ((doc.get("cost") or {}).get("note") or "").strip()
            if note:
                store.endpoint_notes[run.run_id] = note
        if run.kind in ("endpoint", SERVICE):
            doc = doc.get("load") or {}
        if isinstance(doc.get("settings"), dict):
            store.load_settings[run.run_id] = doc["settings"]
        samples = doc.get("samples") or {}
        lat, err = samples.get("latency_ms") or [], samples.get("error") or []
        ok = [float(x) for i, x in enumerate(lat) if (err[i] if i < len(err) else None) is None]
        if ok:
            store.latency_samples[run.run_id] = ok
        else:
            store.latency_missing[run.run_id] = f"no successful request in {name}"
    except Exception as exc:  # noqa: BLE001 - one unreadable artifact must not sink the report; it is named
        store.latency_missing[run.run_id] = f"{name} unreadable: {type(exc).__name__}"


SCALED = "devices"  # the condition field the scaling section compares along


def scaling_runs(runs: list[Run]) -> list[Run]:
    """The runs of groups (a platform and a condition but for its device count) that ran at two or more
    device counts: the only ones the report's scaling section needs images-trained-on for (one artifact
    read each)."""
    def key(r: Run) -> tuple:
        return r.platform, r.condition.without(SCALED)

    counts: dict[tuple, set[int]] = {}
    for r in runs:
        counts.setdefault(key(r), set()).add(r.world_size)
    return [r for r in runs if len(counts[key(r)]) > 1]


def images_trained(doc: dict) -> Optional[float]:
    """Images the run's optimizer steps trained on, all ranks together, from its results.json: every epoch
    makes schedule.steps_per_epoch steps of one global batch (trainer/data/batches.py: the preset's batch,
    or the whole set when it is smaller, last ragged batch dropped; ranks split each global batch, so the
    count does not depend on world_size)."""
    try:
        batch = min(int(doc["hyperparameters"]["batch_size"]), int(doc["dataset"]["train_count"]))
        return float(int(doc["epochs_completed"]) * int(doc["schedule"]["steps_per_epoch"]) * batch)
    except (KeyError, TypeError, ValueError):
        return None


def _train_images(c, run: Run, store: Store) -> None:
    """MLflow holds no image count (tracking.RESULT_METRICS): read it from the results.json artifact that
    TrackedRun.import_outputs logged with the run."""
    import os

    from trainer.results import RESULTS_FILE

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if RESULTS_FILE not in {a.path for a in c.list_artifacts(run.run_id)}:
            store.train_images_missing[run.run_id] = f"no {RESULTS_FILE} artifact"
            return
        with tempfile.TemporaryDirectory() as tmp:
            doc = json.loads(Path(c.download_artifacts(run.run_id, RESULTS_FILE, tmp)).read_text())
    except Exception as exc:  # noqa: BLE001 - one unreadable artifact must not sink the report; it is named
        store.train_images_missing[run.run_id] = f"{RESULTS_FILE} unreadable: {type(exc).__name__}"
        return
    images = images_trained(doc) if isinstance(doc, dict) else None
    if images is None:
        store.train_images_missing[run.run_id] = f"{RESULTS_FILE} lacks the schedule, batch size or train count"
    else:
        store.train_images[run.run_id] = images
