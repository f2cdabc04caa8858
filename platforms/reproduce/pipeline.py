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

KIND = "pipeline"
STORE_TAG = "platbench.pipeline_store"         # where the batches went (a disk folder, or the bucket's prefix)
ENDPOINT_TAG = "platbench.pipeline_endpoint"   # what served the inference
CONCURRENCY = 4        # inference requests in flight: `platbench batch --endpoint`'s default
MIB = 2 ** 20
# the paper's per-batch figures → the step metric each batch logs (MiB: platbench's unit, 2^20 bytes)
METRICS = {"upload_s_per_mb": "pipeline_upload_s_per_mib", "download_s_per_mb": "pipeline_download_s_per_mib",
           "inference_s_per_mb": "pipeline_inference_s_per_mib", "throughput_mb_per_s": "pipeline_throughput_mib_per_s"}
EXTRA = ("pipeline_batch_mib", "pipeline_batch_images", "pipeline_errors")
# the paper's Kruskal–Wallis H per figure (Sections 4.1–4.4)
KW = {f"kruskal_wallis_h_{side}": q for side, q in (("download", "download_s_per_mb"), ("upload", "upload_s_per_mb"),
                                                     ("inference", "inference_s_per_mb"),
                                                     ("throughput", "throughput_mb_per_s"))}
COST = {"deployment_usd_per_hour": "hour", "deployment_usd_per_day": "day"}


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


# ------------------------------------------------------------------------------------------ the plan

def batch_images(plan) -> int:
    """The study's batch unit, or the local small version's (`local.batch_images`) unless --full."""
    local = getattr(plan.proto.local, "batch_images", None)
    return plan.proto.batch_unit.images if plan.full or not local else local


def test_images(data: Path) -> list[Path]:
    from platforms.bench.load_payloads import image_files

    return image_files([data / "test"]) if (data / "test").is_dir() else []


def on_this_machine(platform: str) -> bool:
    from platforms.core import registry

    return platform == registry.this_machine()


def cannot(platform: str) -> Optional[str]:
    """Why the platform cannot run the pipeline (None: it can): it needs an object store and an endpoint."""
    from platforms.core import registry

    if on_this_machine(platform):
        return None
    spec = registry.spec(platform)
    missing = [what for what, has in (("object store", spec.stores), ("endpoint", spec.endpoint)) if not has]
    return f"{platform} has no {' and no '.join(missing)}" if missing else None


def plan_lines(plan) -> list[str]:
    """The dry run's part: batches, and per platform the store, the endpoint and its price; no credentials."""
    from platforms.reproduce.pipeline_store import DISK

    files = test_images(plan.data)
    size = batch_images(plan)
    n = -(-len(files) // size) if files else 0
    out = [f"  pipeline (the paper's per-batch unit): {len(files)} test images in {n} batch(es) of up to {size}; per "
           f"batch: upload to the platform's store (one object per image), download, inference of every image "
           f"through its endpoint ({CONCURRENCY} at once); s/MiB each, throughput = batch MiB / (download + inference)"]
    for platform in plan.platforms:
        why = cannot(platform)
        if why:
            out.append(f"    {platform}: no pipeline ({why})")
        elif on_this_machine(platform):
            out.append(f"    {platform}: store {DISK}; endpoint the trainer's server (python -m trainer serve) "
                       "on loopback; nothing billed")
        else:
            out += _cloud_lines(plan, platform, len(files))
    return out


def _cloud_lines(plan, platform: str, requests: int) -> list[str]:
    from platforms.bench import transfer
    from platforms.bench.endpoint import endpoint_for
    from platforms.core.cost_plan import endpoint_text

    settings = plan.settings.get(platform, {})
    target = transfer.target_for(platform, settings)
    ep = endpoint_for(platform, plan.endpoint_settings.get(platform, {}))
    store = target.uri(f"{target.prefix}/reproduce/<id>/")
    lines = [f"    {platform}: store {store} (removed after); endpoint {ep.name} ({ep.target().describe()}), "
             "deleted after"]
    cost = ep.cost()
    lines.append("      " + (endpoint_text(platform, cost.usd_per_hour, cost.basis, requests) if cost else
                             f"no endpoint price in platforms/{platform}/prices.yaml: cost unknown"))
    return lines


# ------------------------------------------------------------------------------------------ running it

def run(plan, console=None, max_usd: Optional[float] = None, say: Callable[[str], None] = print) -> int:
    """The pipeline on every platform of the plan that can run it, on its trained run's model; returns 0 when
    every platform ran it, 1 when one could not (said in one line each)."""
    from platforms.reproduce import execute

    code = 0
    study = plan.proto.study
    for platform in plan.platforms:
        why = cannot(platform)
        trained = None if why else execute.trained_run(plan, plan.groups[0], platform)
        if why or trained is None:
            say(f"reproduce {study}: pipeline skipped on {platform}: "
                + (why or f"no finished {plan.groups[0].label} run to deploy"))
            code = 1
            continue
        run_id, batches = run_platform(plan, platform, trained, max_usd, say)
        say(f"reproduce {study}: pipeline on {platform}: {len(batches)} batch(es), MLflow run {run_id}")
    return code


def run_platform(plan, platform: str, trained, max_usd: Optional[float] = None,
                 say: Callable[[str], None] = print) -> tuple[str, list[Batch]]:
    """Store and endpoint up, every batch through them, both removed; one MLflow run (failed on an error)."""
    from platforms.core.tracking import Tag
    from platforms.reproduce import pipeline_store

    files = test_images(plan.data)
    if not files:
        from platforms.errors import UserError

        raise UserError(f"reproduce {plan.proto.study}: no test images under {plan.data / 'test'} for the pipeline")
    size = batch_images(plan)
    params = {"batch_images": size, "images": len(files), "batches": -(-len(files) // size),
              "concurrency": CONCURRENCY, "store_workers": _workers(), "trained_run": trained.info.run_id}
    batches: list[Batch] = []
    with recorded(plan.proto.study, platform, plan.groups[0].model, params) as tr:
        with pipeline_store.opened(platform, plan.settings.get(platform, {}), plan.proto.study,
                                   on_this_machine(platform)) as (store, prefix, where), \
                _endpoint(plan, platform, trained, max_usd, say) as (target, factory, cost):
            tr.tags({STORE_TAG: where, ENDPOINT_TAG: target.describe()})
            if cost is not None:
                tr.metrics({"endpoint_usd_per_hour": cost.usd_per_hour})
                tr.tags({Tag.PRICE_SOURCE: cost.basis})
            for i, group in enumerate(_groups(files, size)):
                b = run_batch(store, f"{prefix}/batch-{i}/", plan.data / "test", group, target, factory)
                batches.append(b)
                tr.metrics(b.figures(), step=i)
                say(f"pipeline {platform} batch {i + 1}: up {b.upload_s / b.mib:.4f}, down {b.download_s / b.mib:.4f}, "
                    f"inference {b.inference_s / b.mib:.4f} s/MiB; {b.errors} error(s)")
        finish(tr, batches)
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


@contextlib.contextmanager
def _endpoint(plan, platform: str, trained, max_usd: Optional[float], say) -> Iterator[tuple]:
    """(target, transport factory, the endpoint's EndpointCost or None) serving the trained run's model."""
    from platforms.bench.loadtest import make_transport, parse_target
    from platforms.reproduce import execute

    if on_this_machine(platform):
        with execute.served_model(trained) as url:
            target = parse_target(url)
            factory = lambda c, t: make_transport(target, c, t, None, None)  # noqa: E731
            _wait_ready(factory)
            yield target, factory, None  # the trainer's server on this machine: no price
        return
    from platforms.bench.endpoint import deployed
    from platforms.core import tracking

    settings = plan.endpoint_settings.get(platform, {})
    with tempfile.TemporaryDirectory(prefix="platbench-pipeline-model-") as tmp:
        model_dir = Path(tracking.client().download_artifacts(trained.info.run_id, "model", tmp))
        with deployed(platform, model_dir, settings, say, max_usd=max_usd) as ep:
            yield ep.target(), lambda c, t: ep.transport(c, t), ep.cost()


def _wait_ready(factory, seconds: float = 120.0) -> None:
    import asyncio

    from platforms.errors import UserError

    async def ready() -> bool:
        transport = factory(1, 30.0)
        try:
            return await transport.ready(seconds)
        finally:
            await transport.close()

    if not asyncio.run(ready()):
        raise UserError(f"the trainer's server did not answer its health check within {seconds:g} s")


def summary(batches: list[Batch]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in METRICS.values():
        values = [b.figures()[name] for b in batches]
        out.update({f"{name}_mean": statistics.fmean(values), f"{name}_median": statistics.median(values),
                    f"{name}_n": len(values)})
        if len(values) > 1:
            out[f"{name}_sd"] = statistics.stdev(values)
    out["pipeline_errors_total"] = sum(b.errors for b in batches)
    out["pipeline_mib"] = sum(b.mib for b in batches)
    return out


# ------------------------------------------------------------------------------------------ the figures

_READ: dict[int, tuple[object, dict]] = {}   # one read of the pipeline runs per report store


def pipeline_runs(store, study: str) -> list[tuple[object, dict[str, list[float]]]]:
    """The study's finished pipeline runs (report Run objects) with each step metric's per-batch values."""
    cached = _READ.get(id(store))
    if cached is None or cached[0] is not store:
        cached = (store, {})
        _READ.clear()
        _READ[id(store)] = cached
    if study not in cached[1]:
        cached[1][study] = _read(study)
    return cached[1][study]


def _read(study: str) -> list:
    from platforms.bench.sweep import search_all
    from platforms.core import tracking
    from platforms.report.data import _to_run
    from platforms.reproduce.execute import STUDY_TAG

    c = tracking.client()
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    if exp is None:
        return []
    T = tracking.Tag
    out = []
    for r in search_all(c, exp.experiment_id, f"tags.`{T.KIND}` = '{KIND}' and tags.`{STUDY_TAG}` = '{study}'"):
        run = _to_run(r)
        if run.finished:
            by_step = {name: [m.value for m in sorted(c.get_metric_history(r.info.run_id, name), key=lambda m: m.step)]
                       for name in (*METRICS.values(), *EXTRA)}
            out.append((run, by_step))
    return out


def measure(proto, quantity: str, store, platform: Optional[str]):
    """platbench's figure for a pipeline quantity (None: not one of the pipeline's)."""
    if quantity not in METRICS and quantity not in KW and quantity not in COST and quantity != "kruskal_wallis_h":
        return None
    from platforms.reproduce.measure import Measured

    runs = pipeline_runs(store, proto.study)
    if quantity in METRICS:
        mine = [(r, h) for r, h in runs if r.platform == platform]
        values = [v for _, h in mine for v in h[METRICS[quantity]]]
        if not values:
            return Measured(note=f"no pipeline run of this study on {platform} yet" if platform else "")
        return Measured(values, [r for r, _ in mine], _per_batch_note(mine, values))
    if quantity in COST:
        return _cost(proto, quantity, runs, platform, Measured)
    return _kruskal(proto, quantity, runs, Measured)


def _per_batch_note(mine: list, values: list[float]) -> str:
    sizes = sorted({int(x) for _, h in mine for x in h["pipeline_batch_images"]}, reverse=True)
    errors = sum(int(x) for _, h in mine for x in h["pipeline_errors"])
    where = "; ".join(sorted({f"store {r.tags.get(STORE_TAG)}, endpoint {r.tags.get(ENDPOINT_TAG)}" for r, _ in mine}))
    return (f"one value per batch of {', '.join(map(str, sizes))} image(s) (median {statistics.median(values):.4g}); "
            f"MiB (2^20 bytes), as the paper's text says (its tables: MB); {errors} failed inference(s); {where}")


def _cost(proto, quantity: str, runs: list, platform: Optional[str], Measured):
    from platforms.core import pricing
    from platforms.core.tracking import Tag

    unit = COST[quantity]
    hours = (proto.cost_horizon.hours.get(unit) if proto.cost_horizon else None) or {"hour": 1.0, "day": 24.0}[unit]
    mine = [r for r, _ in runs if r.platform == platform]
    priced = [r for r in mine if r.m("endpoint_usd_per_hour") is not None]
    if not priced:
        why = ("the trainer's server on this machine is not billed" if platform and on_this_machine(platform)
               else "no priced pipeline run" if platform else "no platform")
        return Measured(note=f"{platform or '–'}: {why}")
    mib = max((r.m("pipeline_mib") or 0) for r in priced)
    storage = "storage" in pricing.table(platform)
    note = (f"the endpoint's price ({priced[-1].tags.get(Tag.PRICE_SOURCE) or 'its price table'}) × {hours:g} h; "
            + (f"the store's {mib:.2f} MiB: a storage section exists in platforms/{platform}/prices.yaml but is not read"
               if storage else f"the store's {mib:.2f} MiB left out: no storage price in platforms/{platform}/prices.yaml")
            + "; the client VM not included (the client is this machine)")
    return Measured([r.m("endpoint_usd_per_hour") * hours for r in priced], priced, note)


def _kruskal(proto, quantity: str, runs: list, Measured):
    """statistic.kruskal_wallis on OUR per-batch values of two (or more) platforms: the study's own platforms
    when both ran it, else every platform that did; beside it, platbench's run-level test (one value per run)."""
    from platforms.core import stats
    from platforms.reproduce.statistic import kruskal_wallis

    by_platform: dict[str, list] = {}
    for r, h in runs:
        by_platform.setdefault(r.platform, []).append((r, h))
    theirs = [p for p in proto.platforms.values() if p in by_platform]
    names = theirs if len(theirs) >= 2 else sorted(by_platform)
    if len(names) < 2:
        return Measured(note="needs the per-batch values of two platforms; pipeline runs on "
                             + (", ".join(sorted(by_platform)) or "none") + " only")
    sides = [KW[quantity]] if quantity in KW else list(KW.values())
    texts, values = [], []
    for q in sides:
        groups = {p: [v for _, h in by_platform[p] for v in h[METRICS[q]]] for p in names}
        h, p = kruskal_wallis(list(groups.values()))
        per_run = {name: [statistics.fmean(hh[METRICS[q]]) for _, hh in by_platform[name]] for name in names}
        run_level = stats.compare(f"platbench's run-level test of {q}", per_run).summary()
        sizes = " + ".join(f"{len(g)}" for g in groups.values())
        texts.append(f"{q}: H = {h:.3f}, p = {stats.fmt_p(p)} on {sizes} batches ({' vs '.join(names)}); {run_level}")
        values.append(h)
    used = [r for name in names for r, _ in by_platform[name]]
    if quantity not in KW:  # the one H quantity of every figure: each side said, no single value
        return Measured([], used, " | ".join(texts))
    return Measured(values, used, texts[0])
