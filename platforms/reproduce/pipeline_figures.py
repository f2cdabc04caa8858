"""platbench's figures for the AWS-vs-Azure paper's quantities, from the study's pipeline runs (pipeline.py): each
batch's s/MiB and throughput as recorded (one value per batch, as the paper's Tables 2–5), the paper's
Kruskal–Wallis H on OUR per-batch values of two platforms (statistic.py) beside platbench's run-level test, and the
deployment's cost per hour and day from the endpoint's price. Returns (values, runs, note) for measure.py to wrap,
or None for a quantity that is not the pipeline's."""
from __future__ import annotations

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
        mine = [(r, h) for r, h in runs if r.platform == platform]
        values = [v for _, h in mine for v in h.get(METRICS[quantity], [])]
        if not values:
            return [], [], f"no pipeline run of this study on {platform} yet" if platform else ""
        return values, [r for r, _ in mine], _per_batch_note(mine, values)
    if quantity in COST:
        return _cost(proto, quantity, runs, platform)
    return _kruskal(proto, quantity, runs)


def _per_batch_note(mine: list, values: list[float]) -> str:
    sizes = sorted({int(x) for _, h in mine for x in h.get("pipeline_batch_images", [])}, reverse=True)
    errors = sum(int(x) for _, h in mine for x in h.get("pipeline_errors", []))
    images = sum(x for _, h in mine for x in h.get("pipeline_batch_images", []))
    size = sum(x for _, h in mine for x in h.get("pipeline_batch_mib", [])) * 2 ** 20 / images if images else 0
    where = "; ".join(sorted({f"store {r.tags.get(STORE_TAG)}, endpoint {r.tags.get(ENDPOINT_TAG)}" for r, _ in mine}))
    return (f"n = batches of {', '.join(map(str, sizes))} images, median {statistics.median(values):.4g}; MiB (the "
            f"paper's text says mebibyte, its tables MB); images of {size:,.0f} B on average; {errors} failed; {where}")


def _cost(proto, quantity: str, runs: list, platform: Optional[str]) -> Figure:
    from platforms.core.tracking import Tag

    unit = COST[quantity]
    hours = (proto.cost_horizon.hours.get(unit) if proto.cost_horizon else None) or {"hour": 1.0, "day": 24.0}[unit]
    mine = [r for r, _ in runs if r.platform == platform]
    priced = [r for r in mine if r.m("endpoint_usd_per_hour") is not None]
    if not priced:
        why = ("the trainer's server on this machine is not billed" if platform and on_this_machine(platform)
               else "no priced pipeline run" if platform else "no platform")
        return [], [], f"{platform or '–'}: {why}"
    mib = max((r.m("pipeline_mib_total") or 0) for r in priced)
    note = (f"the endpoint's price ({priced[-1].tags.get(Tag.PRICE_SOURCE) or 'its price table'}) × {hours:g} h; "
            f"the store's {mib:.2f} MiB left out: no storage price in platforms/{platform}/prices.yaml; "
            "the client VM not included (the client is this machine)")
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
    q = KW[quantity]
    groups = {p: [v for _, h in by_platform[p] for v in h.get(METRICS[q], [])] for p in names}
    if not all(groups.values()):
        return [], [], f"no per-batch {q} values on " + ", ".join(p for p, g in groups.items() if not g)
    h, p = kruskal_wallis(list(groups.values()))
    per_run = {name: [statistics.fmean(hh[METRICS[q]]) for _, hh in by_platform[name] if hh.get(METRICS[q])]
               for name in names}
    run_level = stats.compare(f"platbench's run-level test of {q}", per_run).summary()
    sizes = " + ".join(f"{len(g)}" for g in groups.values())
    return ([h], [r for name in names for r, _ in by_platform[name]],
            f"H = {h:.3f}, p = {stats.fmt_p(p)} on {sizes} batches ({' vs '.join(names)}); {run_level}")
