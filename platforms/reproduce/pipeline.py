"""The AWS-vs-Azure paper's per-batch pipeline (../shared/references/aws-vs-azure-object-detection-deployment-paper.txt,
Sections 3.2–3.3): the test images cut into batches of the protocol's batch unit (1,024; the local small version
its own), and per batch, on each platform of the plan: upload to the platform's store (one object per image, as
`platbench transfer` moves its batches), download it back, then inference of every image through the platform's
endpoint (the load tool's client, as `platbench batch --endpoint`), each timed and divided by the batch's MiB;
throughput = the batch's MiB / (download + inference), the paper's "size_of_1024_images/total_time".

On this machine the store is a folder on its disk and the endpoint the trainer's own server (execute.served_model);
on a platform whose SPEC names an object store and an endpoint, its store and its endpoint deployed from its
trained run's model (platforms/bench/endpoint.deployed), deleted afterwards. One MLflow run per platform (kind
`pipeline`: the report's other sections read no such kind), each batch's figures as step metrics (step = batch
index), their mean, median, sd and n as summary metrics; `measure` turns them into the study's figures."""
from __future__ import annotations

import contextlib
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from platforms.reproduce.pipeline_plan import (CONCURRENCY, ENDPOINT_TAG, KIND, LOCAL_SERVER, METRICS, MIB, STORE_TAG,
                                               batch_files, batch_images, cannot, on_this_machine)


@dataclass
class Batch:
    images: int
    mib: float
    upload_s: float
    download_s: float
    inference_s: float
    errors: int

    def figures(self) -> dict[str, float]:
        return {METRICS["upload_s_per_mb"]: self.upload_s / self.mib,
                METRICS["download_s_per_mb"]: self.download_s / self.mib,
                METRICS["inference_s_per_mb"]: self.inference_s / self.mib,
                METRICS["throughput_mb_per_s"]: self.mib / (self.download_s + self.inference_s),
                "pipeline_batch_mib": self.mib, "pipeline_batch_images": self.images, "pipeline_errors": self.errors}


def run(plan, console=None, ledger=None, say: Callable[[str], None] = print) -> int:
    """The pipeline on every platform of the plan that can run it, on its trained run's model, each endpoint given
    what is left of the ledger's budget (ledger.py); returns 0 when every platform ran it, 1 when one could
    not or the budget stopped it (said in one line each; after a budget stop nothing more starts)."""
    from platforms.bench.endpoint import BudgetStopped
    from platforms.reproduce import execute
    from platforms.reproduce.ledger import Ledger

    ledger = ledger or Ledger()
    code = 0
    study = plan.proto.study
    for platform in plan.platforms:
        if ledger.refuses(f"the pipeline on {platform}", say):
            return 1
        why = cannot(platform)
        trained = None if why else execute.trained_run(plan, plan.groups[0], platform)
        if why or trained is None:
            say(f"reproduce {study}: pipeline skipped on {platform}: "
                + (why or f"no finished {plan.groups[0].label} run to deploy"))
            code = 1
            continue
        try:
            run_id, batches = run_platform(plan, platform, trained, ledger, say)
        except BudgetStopped as stop:  # as `platbench sweep` whose budget stopped a cell: one line, exit 1
            rest = plan.platforms[plan.platforms.index(platform) + 1:]
            say(f"reproduce {study}: pipeline on {platform} killed: {stop} (MLflow run {stop.run_id})"
                + (f"; not started on {', '.join(rest)}" if rest else ""))
            return 1
        say(f"reproduce {study}: pipeline on {platform}: {len(batches)} batch(es), MLflow run {run_id}")
    return code


def run_platform(plan, platform: str, trained, ledger=None,
                 say: Callable[[str], None] = print) -> tuple[str, list[Batch]]:
    """Store and endpoint up, every batch through them, both removed; one MLflow run (failed on an error; killed,
    with BudgetStopped re-raised carrying its run_id, when --max-usd stopped it)."""
    from platforms.bench.endpoint import BudgetStopped
    from platforms.core.cloud_job import STOPPED_BY_TAG
    from platforms.core.tracking import Tag
    from platforms.reproduce import execute, pipeline_store

    files = batch_files(plan.data)
    if not files:
        from platforms.errors import UserError

        raise UserError(f"reproduce {plan.proto.study}: no test images under {plan.data / 'test'} for the pipeline")
    size = batch_images(plan)
    params = {"batch_images": size, "images": len(files), "batches": -(-len(files) // size),
              "concurrency": CONCURRENCY, "store_workers": _workers(), "trained_run": trained.info.run_id}
    batches: list[Batch] = []
    stop: Optional[BudgetStopped] = None
    with recorded(plan.proto.study, platform, plan.groups[0].model, params) as tr:
        try:
            with pipeline_store.opened(platform, plan.settings.get(platform, {}), plan.proto.study,
                                       on_this_machine(platform), say) as (store, prefix, where), \
                    execute.deployed_model(plan, _serving(platform), trained, say, ledger,
                                           concurrency=CONCURRENCY) as (target, factory, endpoint):
                tr.tags({STORE_TAG: where, ENDPOINT_TAG: LOCAL_SERVER if on_this_machine(platform) else target.describe()})
                if endpoint is not None and machine(endpoint):  # part of the run's condition (pipeline_figures)
                    tr.tags({Tag.INSTANCE_TYPE: machine(endpoint)})
                cost = endpoint.cost() if endpoint is not None else None
                if cost is not None:
                    tr.metrics({"endpoint_usd_per_hour": cost.usd_per_hour})
                    tr.tags({Tag.PRICE_SOURCE: cost.basis})
                for i, group in enumerate(_groups(files, size)):
                    b = run_batch(store, f"{prefix}/batch-{i}/", plan.data / "test", group, target, factory)
                    batches.append(b)
                    tr.metrics(b.figures(), step=i)
                    say(f"pipeline {platform} batch {i + 1}: up {b.upload_s / b.mib:.4f}, down "
                        f"{b.download_s / b.mib:.4f}, inference {b.inference_s / b.mib:.4f} s/MiB; {b.errors} error(s)")
        except BudgetStopped as exc:  # --max-usd ended it: the batches so far stay as steps; killed, as a launch
            stop = exc
            tr.tags({STOPPED_BY_TAG: "budget", Tag.STATUS: "killed"})
            tr.end("KILLED")
        else:
            finish(tr, batches)
    if stop is not None:
        stop.run_id = tr.run_id
        raise stop
    return tr.run_id, batches


@contextlib.contextmanager
def recorded(study: str, platform: str, model: str, params: dict) -> Iterator:
    """The platform's pipeline run (kind `pipeline`, tagged with the study); failed or killed on an exception."""
    from platforms.core import tracking
    from platforms.reproduce.execute import STUDY_TAG

    T = tracking.Tag
    tags = {T.PLATFORM: platform, T.KIND: KIND, STUDY_TAG: study, T.MODEL: model}
    with tracking.tracked_run(f"pipeline-{platform}-{study}", params, tags) as tr:
        yield tr


def finish(tr, batches: list[Batch]) -> None:
    """Each figure's mean, median, sd and n over the batches; the run finished."""
    from platforms.core.tracking import Tag

    tr.metrics(summary(batches))
    tr.tags({Tag.STATUS: "finished"})
    tr.end("FINISHED")


def _workers() -> int:
    from platforms.bench.transfer import WORKERS

    return WORKERS


def _groups(files: list[Path], size: int) -> list[list[Path]]:
    from platforms.bench.transfer import batches

    return batches(files, size)


def run_batch(store, root: str, base: Path, files: list[Path], target, factory) -> Batch:
    """One batch: up, down (into a folder of its own, class folders kept), then every image inferred."""
    from platforms.bench import transfer
    from platforms.bench.batch import run_endpoint

    keys = transfer.batch_keys(root, base, files)
    mib = sum(p.stat().st_size for p in files) / MIB
    with tempfile.TemporaryDirectory(prefix="platbench-pipeline-") as tmp, ThreadPoolExecutor(transfer.WORKERS) as pool:
        up = transfer.put_batch(store, pool, keys, files)
        dests = [Path(tmp) / p.relative_to(base) for p in files]
        down = transfer.get_batch(store, pool, keys, dests)
        report, _ = run_endpoint(Path(tmp), None, concurrency=CONCURRENCY, target=target, transport_factory=factory)
    return Batch(len(files), mib, up, down, report.phases["in_flight"], report.errors)


def machine(endpoint) -> str:
    """What the endpoint runs on, from its settings ("2x ml.g4dn.xlarge"; Databricks' workload size, Apolo's preset):
    two deployments on other machines are two conditions. Empty when its settings name none."""
    cfg = endpoint.cfg
    kind = next((str(getattr(cfg, k)) for k in ("instance_type", "machine_type", "workload_size", "preset")
                 if getattr(cfg, k, None)), "")
    count = next((getattr(cfg, k) for k in ("instance_count", "replica_count") if getattr(cfg, k, None)), 1)
    return f"{count}x {kind}" if kind else ""


def _serving(platform: str):
    """This machine's trainer server (torch on the CPU), or the platform's endpoint."""
    from platforms.reproduce.plan import Serving
    from platforms.reproduce.protocol import ENDPOINT

    return Serving(platform, "torch-cpu" if on_this_machine(platform) else ENDPOINT)


def summary(batches: list[Batch]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in METRICS.values():
        values = [b.figures()[name] for b in batches]
        out.update({f"{name}_mean": statistics.fmean(values), f"{name}_median": statistics.median(values),
                    f"{name}_n": len(values)})
        if len(values) > 1:
            out[f"{name}_sd"] = statistics.stdev(values)
    out["pipeline_errors_total"] = sum(b.errors for b in batches)
    out["pipeline_mib_total"] = sum(b.mib for b in batches)
    return out

