"""platbench's figures for the AWS-vs-Azure paper's quantities, from the study's pipeline runs (pipeline.py): each
batch's s/MiB and throughput as recorded (one value per batch, as the paper's Tables 2–5), the paper's
Kruskal–Wallis H on OUR per-batch values of two platforms (statistic.py) beside platbench's run-level test, and the
deployment's cost per hour and day from the endpoint's price. Returns (values, runs, note) for measure.py to wrap,
or None for a quantity that is not the pipeline's."""
from __future__ import annotations

import re
import statistics
from typing import Optional

from platforms.reproduce.pipeline_plan import COST, ENDPOINT_TAG, KW, METRICS, STORE_TAG, on_this_machine

Figure = tuple[list[float], list, str]   # values, the runs behind them, how it was measured


def pipeline_runs(store, study: str) -> list[tuple[object, dict[str, list[float]]]]:
    """The study's finished pipeline runs (the report store's, kind `pipeline`) with each metric's per-batch values."""
    from platforms.reproduce.execute import STUDY_TAG

    return [(r, store.pipeline_batches.get(r.run_id, {})) for r in store.pipelines if r.tags.get(STUDY_TAG) == study]


def measure(proto, quantity: str, store, platform: Optional[str]) -> Optional[Figure]:
    """platbench's figure for a pipeline quantity (None: not one of the pipeline's)."""
    if quantity not in METRICS and quantity not in KW and quantity not in COST:
        return None
    runs = pipeline_runs(store, proto.study)
    if quantity in METRICS:
        mine, left_out = _alike([(r, h) for r, h in runs if r.platform == platform])
        values, failed = _values(mine, quantity)
        if not values:
            return [], [], f"no pipeline run of this study on {platform} yet" if platform else ""
        return values, [r for r, _ in mine], _per_batch_note(mine, values) + _left_out(left_out, failed)
    if quantity in COST:
        return _cost(proto, quantity, runs, platform)
    return _kruskal(proto, quantity, runs)


# inference and throughput of a batch with failed requests measure the failures (a refused request is quick), not
# the model: such a batch is left out of them; its upload and download succeeded and still count
FAILED_OUT = ("inference_s_per_mb", "throughput_mb_per_s")


def _values(runs: list, quantity: str) -> tuple[list[float], int]:
    """The runs' per-batch values of a quantity, and how many batches were left out for failed requests."""
    values, failed = [], 0
    for _, h in runs:
        errors = h.get("pipeline_errors", [])
        for i, v in enumerate(h.get(METRICS[quantity], [])):
            if quantity in FAILED_OUT and i < len(errors) and errors[i]:
                failed += 1
            else:
                values.append(v)
    return values, failed


def _size(r) -> Optional[int]:
    try:
        return int(r.params.get("batch_images"))
    except (TypeError, ValueError):
        return None


def _endpoint(r) -> tuple:
    """The endpoint a run's inference went through, as far as it makes runs unlike: its kind (`sagemaker` of
    `sagemaker:NAME`: every deployment has a name of its own) or URL without the port, and its instance type
    where the run recorded one."""
    from urllib.parse import urlsplit

    from platforms.core.tags import Tag

    where = r.tags.get(ENDPOINT_TAG) or ""
    if "://" in where:
        u = urlsplit(where)
        where = f"{u.scheme}://{u.hostname}{u.path}"
    elif re.fullmatch(r"[\w-]+:\S+", where):
        where = where.split(":", 1)[0]
    return where, r.tags.get(Tag.INSTANCE_TYPE)


def _alike(runs: list, size: Optional[int] = None) -> tuple[list, dict[str, int]]:
    """The runs made under the newest run's condition (the newest of `size` images a batch when given): its batch
    size and its endpoint, oldest first; the others are not pooled with them, only counted by why."""
    def started(x) -> int:
        return x[0].start_time or 0

    sized = [x for x in runs if size is None or _size(x[0]) == size]
    if not sized:
        return [], {"of another batch size": len(runs)}
    newest = max(sized, key=started)[0]
    same_size = [x for x in runs if _size(x[0]) == _size(newest)]
    kept = sorted((x for x in same_size if _endpoint(x[0]) == _endpoint(newest)), key=started)
    return kept, {"of another batch size": len(runs) - len(same_size),
                  "on another endpoint": len(same_size) - len(kept)}


def _left_out(left_out: dict[str, int], failed: int) -> str:
    said = [f"{n} run{'s' * (n != 1)} {why} left out" for why, n in left_out.items() if n]
    if failed:
        said.append(f"{failed} batch{'es' * (failed != 1)} with failed requests left out")
    return "".join(f"; {s}" for s in said)


def _per_batch_note(mine: list, values: list[float]) -> str:
    sizes = sorted({int(x) for _, h in mine for x in h.get("pipeline_batch_images", [])}, reverse=True)
    errors = sum(int(x) for _, h in mine for x in h.get("pipeline_errors", []))
    images = sum(x for _, h in mine for x in h.get("pipeline_batch_images", []))
    size = sum(x for _, h in mine for x in h.get("pipeline_batch_mib", [])) * 2 ** 20 / images if images else 0
    where = "; ".join(sorted({f"store {r.tags.get(STORE_TAG)}, endpoint {r.tags.get(ENDPOINT_TAG)}" for r, _ in mine}))
    return (f"n = batches of {', '.join(map(str, sizes))} images, median {statistics.median(values):.4g}; MiB (the "
            f"paper's text says mebibyte, its tables MB); images of {size:,.0f} B on average; {errors} requests "
            f"failed; {where}")


def _cost(proto, quantity: str, runs: list, platform: Optional[str]) -> Figure:
    from platforms.core.tracking import Tag

    unit = COST[quantity]
    hours = (proto.cost_horizon.hours.get(unit) if proto.cost_horizon else None) or {"hour": 1.0, "day": 24.0}[unit]
    alike, left_out = _alike([(r, h) for r, h in runs if r.platform == platform])
    priced = [r for r, _ in alike if r.m("endpoint_usd_per_hour") is not None]
    if not priced:
        why = ("the trainer's server on this machine is not billed" if platform and on_this_machine(platform)
               else "no priced pipeline run" if platform else "no platform")
        return [], [], f"{platform or '–'}: {why}"
    mib = max((r.m("pipeline_mib_total") or 0) for r in priced)
    note = (f"the endpoint's price ({priced[-1].tags.get(Tag.PRICE_SOURCE) or 'its price table'}) × {hours:g} h; "
            f"the store's {mib:.2f} MiB left out: no storage price in platforms/{platform}/prices.yaml; "
            "the client VM not included (the client is this machine)" + _left_out(left_out, 0))
    return [r.m("endpoint_usd_per_hour") * hours for r in priced], priced, note


def _kruskal(proto, quantity: str, runs: list) -> Figure:
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
        return [], [], ("needs the per-batch values of two platforms; pipeline runs on "
                        + (", ".join(sorted(by_platform)) or "none") + " only")
    # the same batch size on every platform compared: the newest run's among the sizes all of them ran
    common = set.intersection(*({_size(r) for r, _ in by_platform[p]} for p in names))
    if not common:
        return [], [], f"no batch size that {' and '.join(names)} both ran"
    size = _size(max((x for p in names for x in by_platform[p] if _size(x[0]) in common),
                     key=lambda x: x[0].start_time or 0)[0])
    left_out: dict[str, int] = {}
    for name in names:
        by_platform[name], out = _alike(by_platform[name], size)
        for why, n in out.items():
            left_out[why] = left_out.get(why, 0) + n
    q = KW[quantity]
    picked = {p: _values(by_platform[p], q) for p in names}
    groups = {p: values for p, (values, _) in picked.items()}
    failed = sum(f for _, f in picked.values())
    if not all(groups.values()):
        return [], [], f"no per-batch {q} values on " + ", ".join(p for p, g in groups.items() if not g)
    h, p = kruskal_wallis(list(groups.values()))
    per_run = {name: [statistics.fmean(v) for v in (_values([x], q)[0] for x in by_platform[name]) if v]
               for name in names}
    run_level = stats.compare(f"platbench's run-level test of {q}", per_run).summary()
    sizes = " + ".join(f"{len(g)}" for g in groups.values())
    return ([h], [r for name in names for r, _ in by_platform[name]],
            f"H = {h:.3f}, p = {stats.fmt_p(p)} on {sizes} batches ({' vs '.join(names)}) of {size} images; "
            f"{run_level}{_left_out(left_out, failed)}")
