"""platbench's figure for each quantity a study published, from the MLflow runs tagged with the study (and, for
an endpoint's price, the platform's priced endpoint runs): the values (one per run, or per model for a pareto
table), the runs behind them, and how the measurement differs from the study's."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from platforms.reproduce.execute import LR_TAG, PLAN_TAG, STUDY_TAG, TARGET_TAG
from platforms.reproduce.protocol import Protocol

HOURS_PER_MONTH = 730.0       # platbench's month (platforms/core/pricing.py's hourly prices × 730)
HORIZON_UNIT = {"endpoint_usd_per_hour": "hour", "endpoint_usd_per_day": "day", "endpoint_usd_per_month": "month",
                "endpoint_usd_per_year": "year"}
OUR_HOURS = {"hour": 1.0, "day": 24.0, "month": HOURS_PER_MONTH, "year": 8760.0}



@dataclass
class Measured:
    values: list[float] = field(default_factory=list)
    runs: list = field(default_factory=list)          # report Run objects behind the values
    note: str = ""                                    # how it was measured, when it differs from the study

    @property
    def n(self) -> int:
        return len(self.values)


def study_runs(store, study: str) -> dict[str, list]:
    tagged = lambda runs: [r for r in runs if r.tags.get(STUDY_TAG) == study]  # noqa: E731
    return {"training": tagged(store.training), "unfinished": tagged(store.unfinished), "load": tagged(store.load)}


def ran_platforms(store, study: str) -> list[str]:
    runs = study_runs(store, study)
    return sorted({r.platform for r in runs["training"] + runs["load"]})


def interval(values: list[float]) -> tuple[Optional[float], Optional[float], Optional[tuple[float, float]]]:
    """(mean, sample std, 95% t interval of the mean); std and interval need two values."""
    if not values:
        return None, None, None
    from platforms.core.stats import mean_std

    mean, sd = mean_std(values)
    if sd is None:
        return mean, None, None
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, sd, (mean - half, mean + half)


# quantities measured by a request plan: one figure per served model
PLAN_OF = {"latency_p50_ms": "latency", "seconds_1000_requests_at_10": "thousand_at_10",
           "failed_requests": "thousand_at_10", "frames_per_s_at_100_parallel": "parallel_100"}


def target_of(run) -> str:
    """Where a load run was served; a run from before deployment targets was the trainer's server on the CPU."""
    return run.tags.get(TARGET_TAG) or "torch-cpu"


def served(store, study: str, platform: str, quantity: str) -> list[tuple[Optional[str], Optional[str]]]:
    """The (target, model) pairs a request plan served on `platform`, each a figure of its own: two deployment
    targets (torch and ONNX, CPU and GPU) are never pooled. [(None, None)]: not a request-plan quantity, or none."""
    if quantity not in PLAN_OF:
        return [(None, None)]
    runs = study_runs(store, study)
    return sorted({(target_of(r), r.model) for r in _loads(runs, platform, PLAN_OF[quantity])}) or [(None, None)]


def _loads(runs, platform: str, plan: str, model: Optional[str] = None, target: Optional[str] = None) -> list:
    return [r for r in runs["load"] if r.platform == platform and r.tags.get(PLAN_TAG) == plan and r.finished
            and (model is None or r.model == model) and (target is None or target_of(r) == target)]


def selected(proto: Protocol, runs: list) -> dict[str, list]:
    """Model → the runs standing for it: with an lr pair, per seed the run of the better validation accuracy
    (JumpStart's tuning job keeps the best of its two), else every run."""
    by_model: dict[str, list] = {}
    for r in runs:
        by_model.setdefault(r.model, []).append(r)
    if not proto.recipe.lr_factors:
        return by_model
    out = {}
    for model, rs in by_model.items():
        best: dict[tuple, object] = {}
        for r in rs:
            key = (r.seed, r.per_class)
            val = r.m("final_val_accuracy")
            cur = best.get(key)
            if cur is None or (val is not None and (cur.m("final_val_accuracy") or -1) < val):
                best[key] = r
        out[model] = list(best.values())
    return out


def per_model(proto: Protocol, store, platform: str) -> dict[str, dict[str, Measured]]:
    """The pareto table's columns per model on `platform` (test figures of the selected runs)."""
    runs = [r for r in study_runs(store, proto.study)["training"] if r.platform == platform]
    out = {}
    for model, rs in selected(proto, runs).items():
        cols = {}
        for q, get in (("test_accuracy", lambda r: _pct(r.m("final_test_accuracy"))),
                       ("test_top5_accuracy", lambda r: _pct(r.m("final_test_top5_accuracy"))),
                       ("test_images_per_s", lambda r: r.m("plain_throughput_images_per_s")),
                       ("seconds_per_epoch", _seconds_per_epoch),
                       ("parameters_millions", lambda r: None if r.m("params_total") is None else r.m("params_total") / 1e6)):
            vals = [(get(r), r) for r in rs]
            vals = [(v, r) for v, r in vals if v is not None]
            cols[q] = Measured([v for v, _ in vals], [r for _, r in vals])
        lrs = sorted({r.tags.get(LR_TAG) for r in rs if r.tags.get(LR_TAG)})
        cols["lr"] = Measured(note=", ".join(f"lr×{x}" for x in lrs))
        out[model] = cols
    return out


def _pct(v: Optional[float]) -> Optional[float]:
    return None if v is None else 100.0 * v


def _seconds_per_epoch(r) -> Optional[float]:
    secs, epochs = r.m("seconds_train"), r.m("schedule_epochs")
    return None if secs is None or not epochs else secs / epochs


def measure(proto: Protocol, quantity: str, store, platform: str, all_runs_of_platform: list | None = None,
            model: Optional[str] = None, target: Optional[str] = None) -> Measured:
    """platbench's values of `quantity` on `platform` (and served `model` at deployment `target`; a request-plan
    quantity is asked per target, from `served`) by the study's protocol (empty: none)."""
    from platforms.reproduce import pipeline_figures

    m = pipeline_figures.measure(proto, quantity, store, platform)  # the paper's per-batch pipeline answers its own
    if m is not None:
        return Measured(*m)
    runs = study_runs(store, proto.study)
    if quantity == "latency_p50_ms":
        rs = [r for r in _loads(runs, platform, "latency", model, target) if r.m("load_latency_p50_ms") is not None]
        return Measured([r.m("load_latency_p50_ms") for r in rs], rs, "median of single invokes, one run each")
    if quantity in ("seconds_1000_requests_at_10", "failed_requests"):
        rs = _loads(runs, platform, "thousand_at_10", model, target)
        if quantity == "failed_requests":
            rs = [r for r in rs if r.m("load_failed") is not None]
            return Measured([r.m("load_failed") for r in rs], rs)
        vals, used, sizes = [], [], set()
        for r in rs:
            n = (r.m("load_ok") or 0) + (r.m("load_failed") or 0)
            if r.m("load_seconds") is None or not n:
                continue
            sizes.add(int(n))
            vals.append(r.m("load_seconds") * 1000.0 / n)
            used.append(r)
        note = "" if sizes <= {1000} else f"scaled to 1,000 from {', '.join(map(str, sorted(sizes)))} requests"
        return Measured(vals, used, note)
    if quantity == "frames_per_s_at_100_parallel":
        rs = [r for r in _loads(runs, platform, "parallel_100", model, target) if r.m("load_images_per_s") is not None]
        return Measured([r.m("load_images_per_s") for r in rs], rs)
    if quantity == "mean_accuracy_at_5_per_class":
        rs = [r for r in runs["training"] if r.platform == platform and r.per_class == 5
              and r.m("final_test_accuracy") is not None]
        return Measured([100 * r.m("final_test_accuracy") for r in rs], rs)
    if quantity == "train_time_ratio_accurate_to_fast":
        fast, accurate = proto.recipe.models[0], proto.recipe.models[-1]
        secs = {m: [r.m("seconds_train") for r in runs["training"] if r.platform == platform and r.model == m
                    and r.m("seconds_train")] for m in (fast, accurate)}
        if not secs[fast] or not secs[accurate]:
            return Measured()
        rs = [r for r in runs["training"] if r.platform == platform and r.model in (fast, accurate)]
        ratio = (sum(secs[accurate]) / len(secs[accurate])) / (sum(secs[fast]) / len(secs[fast]))
        return Measured([ratio], rs, f"mean seconds training {accurate} / {fast}")
    if quantity in HORIZON_UNIT:
        rs = [r for r in (all_runs_of_platform or []) if r.m("endpoint_usd_per_hour") is not None]
        hours = OUR_HOURS[HORIZON_UNIT[quantity]]
        return Measured([r.m("endpoint_usd_per_hour") * hours for r in rs], rs,
                        f"platbench's {HORIZON_UNIT[quantity]} is {hours:g} h" if hours != 1 else "")
    return Measured()


def implied_hours(proto: Protocol, fig) -> Optional[float]:
    """The hours a published per-day/month/year price implies from the same row's hourly price."""
    unit = HORIZON_UNIT.get(fig.quantity)
    if unit in (None, "hour"):
        return None
    hourly = next((f.value for f in proto.figures if f.quantity == "endpoint_usd_per_hour" and f.platform == fig.platform), None)
    return None if not hourly else fig.value / hourly
