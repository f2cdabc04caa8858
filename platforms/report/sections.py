"""The report's sections, computed once from the MLflow runs and rendered twice (report.md, index.html)
from the same objects, so both say the same numbers.

Metric names are the ones the launchers log (platforms/core/tracking.py RESULT_METRICS, platforms/core/launch.py,
platforms/core/staging.py, platforms/bench/loadtest.py, platforms/bench/batch.py); a section whose figures
no run has logged says so in one line and shows nothing made up."""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from platforms.report import data, figures, stats
from platforms.report.data import Run, Store
from platforms.report.stats import pm
from platforms.core.tracking import Tag

# number formats: one per kind of figure, the same in every table of both renderings
ACC, SEC, IPS, SPM, MS, USD, PRICE = "{:.4f}", "{:.2f}", "{:.1f}", "{:.4f}", "{:.2f}", "{:.4f}", "{:.4f}"

# time split by phase: (label, metrics summed). "train" falls back to the trainer's own wall time
# (seconds_total: data + training + evaluation) on platforms that report no phases (local).
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("upload", ("upload_seconds",)),
    ("queue/provisioning", ("phase_seconds_queued", "phase_seconds_provisioning")),
    ("image pull", ("phase_seconds_image_pull",)),
    ("data download", ("phase_seconds_downloading",)),
    ("train", ("phase_seconds_training",)),
    ("collect", ("phase_seconds_uploading", "collect_seconds")),
    ("spot interruption", ("phase_seconds_interrupted", "phase_seconds_restarting")),
]
TRAIN_FALLBACK = "seconds_total"
WALL = "seconds_wall"
OTHER = "other"

TRANSFER = [  # (metric, label, which runs)
    ("upload_s_per_mb", "upload s/MB (staging the dataset, over bytes sent)", "training"),
    ("download_s_per_mb", "download s/MB (the job reading it)", "training"),
    ("batch_seconds_per_mb", "batch inference s/MB", "batch"),
]
UPLOAD = "upload_s_per_mb"
MIB = 1024 * 1024  # staging's MB (platforms/core/staging.py counts 2^20 bytes)

# Inference speed two ways (trainer results): the plain model, one forward pass per image (what `serve`
# answers), and as evaluated, with the preset's test-time augmentation (what the accuracy is measured
# with). Runs from before the split logged one figure under the old name, timed through the module that
# applies TTA, so the old name is read as "as evaluated".
THROUGHPUT = {"plain": ("plain_throughput_images_per_s",),
              "evaluated": ("evaluated_throughput_images_per_s", "throughput_images_per_s")}
LATENCY = {"plain": ("plain_latency_ms_per_image",),
           "evaluated": ("evaluated_latency_ms_per_image", "latency_ms_per_image")}
SPEED_LABEL = {"plain": "plain model", "evaluated": "as evaluated, with TTA"}
# A managed endpoint's price per hour (platforms/bench/endpoint.py logs endpoint_usd_per_{hour,day,month,year}
# on its run, kind "endpoint", from the price table).
ENDPOINT_PRICE_METRIC = "endpoint_usd_per_hour"
HOURS = {"hour": 1, "day": 24, "month": 730, "year": 8760}  # month = 8760 / 12 h, the cloud billing convention
PRICE_ITEM = re.compile(r"(\S+) ([0-9]+(?:\.[0-9]+)?)/h ×(\d+)")
PRICE_ITEM_STATUS = re.compile(r"\S+ [0-9]+(?:\.[0-9]+)?/h ×\d+ \(([^()]*)\)")  # pricing.Quote.sources
UNVERIFIED = "†"  # beside every USD figure computed from a price-table entry with status: unverified
BASIS_TEXT = {"spot": "spot", "on-demand": "on-demand",
              "on-demand (no spot price)": "spot run priced at on-demand (no spot price in the table)"}


# ------------------------------------------------------------------------------------------------ blocks
@dataclass
class Para:
    text: str
    kind: str = "p"          # p | empty (no data yet) | verdict (a statistical finding) | note


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    run_ids: list[list[str]] = field(default_factory=list)  # per row: the runs behind it
    caption: str = ""
    id: str = ""


@dataclass
class Figure:
    id: str
    title: str
    svg: str
    caption: str
    runs: list[Run]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)

    def add(self, block) -> None:
        self.blocks.append(block)


def short(value: Optional[str], n: int = 12) -> str:
    if not value:
        return "–"
    return value if len(value) <= n else value[:n]


def short_commit(value: Optional[str]) -> str:
    """12 hex digits, keeping the "-dirty" mark (uncommitted changes) that tracking.code_commit adds."""
    if not value:
        return "–"
    head, dirty = (value[:-6], "-dirty") if value.endswith("-dirty") else (value, "")
    return head[:12] + dirty


def fmt(value: Optional[float], f: str) -> str:
    return "–" if value is None else f.format(value)


def pc_text(n: Optional[int]) -> str:
    return "all" if n is None else str(n)


def provenance_text(runs: Sequence[Run]) -> str:
    """The dataset fingerprints, image digests and code commits behind a figure or table."""
    def distinct(get: Callable[[Run], Optional[str]], none: str) -> str:
        values = sorted({get(r) or "" for r in runs})
        return ", ".join(f"`{short(v)}`" if v else none for v in values)

    return (f"dataset fingerprint {distinct(lambda r: r.fingerprint, 'none recorded')}; "
            f"image digest {distinct(lambda r: r.image_digest, 'none (not run from an image)')}; "
            "code commit " + ", ".join(f"`{short_commit(v)}`" if v else "none recorded"
                                       for v in sorted({r.commit or "" for r in runs})))


def first(run: Run, names: Sequence[str]) -> Optional[float]:
    """The first of these metrics the run logged (a new name, then the old one it replaces)."""
    for n in names:
        if run.m(n) is not None:
            return run.m(n)
    return None


def upload_cached(run: Run) -> bool:
    """Every shard was already staged: the run sent nothing, so its upload s/MB is scan time, not a transfer."""
    return run.m("upload_bytes_sent") == 0


def transfer_value(run: Run, metric: str) -> Optional[float]:
    """One s/MB figure per run. Upload: seconds over the MB actually sent (a partly staged dataset sends
    less than its size); None for a cached run; runs from before `upload_bytes_sent` keep their own figure."""
    if metric != UPLOAD:
        return run.m(metric)
    sent, seconds = run.m("upload_bytes_sent"), run.m("upload_seconds")
    if sent == 0:
        return None
    if sent is not None and seconds is not None:
        return seconds / (sent / MIB)
    return run.m(UPLOAD)


def to_target_text(runs: Sequence[Run]) -> str:
    """Train seconds to the target accuracy over the runs that had one: mean ± std of those that reached
    it, and how many did; "not reached" when none did, – when no run had a target."""
    targeted = [r for r in runs if r.target_accuracy is not None]
    reached = [r.m("seconds_to_target") for r in targeted if r.m("seconds_to_target") is not None]
    if not targeted:
        return "–"
    return f"{pm(reached, SEC)} ({len(reached)}/{len(targeted)} reached)" if reached else f"not reached (0/{len(targeted)})"


def train_images_per_s(run: Run, images: Optional[float]) -> Optional[float]:
    """Training throughput of the whole run: images trained on (all ranks) over the training clock
    (`seconds_train`: training steps only, every evaluation pass excluded; not the wall time)."""
    seconds = run.m("seconds_train")
    return images / seconds if images is not None and seconds else None


def price_status(run: Run) -> Optional[str]:
    """verified | unverified for the price the run's cost was computed with (the status each price-table
    entry had, recorded in the platbench.price_source tag); None for a run with no price. A quote whose
    status is not recorded counts as unverified."""
    text = run.tags.get(Tag.PRICE_SOURCE) or ""
    items = PRICE_ITEM.findall(text)
    if not items:
        return None
    statuses = [inner.rsplit(",", 1)[-1].strip() for inner in PRICE_ITEM_STATUS.findall(text)]
    return "verified" if len(statuses) == len(items) and all(x == "verified" for x in statuses) else "unverified"


def usd(value: Optional[float], runs: Sequence[Run], f: str = "{:.4f}") -> str:
    """A USD figure, marked when any price behind it is unverified."""
    if value is None:
        return "–"
    mark = any(price_status(r) == "unverified" for r in runs)
    return f.format(value) + (f" {UNVERIFIED}" if mark else "")


def billed_usd(run: Run) -> Optional[float]:
    """The run's cost as billed: only where the platform reported billed seconds. Launchers whose platform
    reports none (Vertex AI, Azure ML, Databricks) log their running-time estimate as cost_usd too; that
    belongs in the list-price column, never under 'billed'."""
    return run.m("cost_usd") if run.m("billed_seconds") is not None else None


def basis_text(run: Run) -> str:
    value = (run.tags.get(Tag.PRICE_BASIS) or "").strip()
    return BASIS_TEXT.get(value, value) or "–"


def price_per_hour(run: Run) -> Optional[float]:
    """The quote the launcher priced the run with (tag platbench.price_source: 'SKU P/h ×N (…)' per item)."""
    text = run.tags.get(Tag.PRICE_SOURCE) or ""
    items = PRICE_ITEM.findall(text)
    if not items:
        return None
    return sum(float(p) * int(n) for _, p, n in items)


# ------------------------------------------------------------------------------------------------ builder
class Report:
    def __init__(self, store: Store, alpha: float = 0.05, root: Optional[Path] = None):
        self.store, self.alpha, self.root = store, alpha, root
        platforms = _ordered({r.platform for r in store.training + store.unfinished + store.serving + store.batch})
        models = sorted({r.model for r in store.training + store.unfinished})
        self.platforms = platforms
        self.style = figures.Style(platforms, models)
        self.generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.sections: list[Section] = []
        self.cited: dict[str, Run] = {}

    def cite(self, runs: Sequence[Run]) -> list[Run]:
        for r in runs:
            self.cited[r.run_id] = r
        return list(runs)

    def build(self) -> list[Section]:
        self.sections = [self.summary(), self.time_accuracy(), self.scaling(), self.ablation(), self.pareto(), self.phases(),
                         self.transfer(), self.cold_transfers(), self.latency(), self.cost(), self.published(), self.usability(), self.runs(),
                         self.method()]
        return self.sections

    # -------------------------------------------------------------------------------------------- groups
    def groups(self, runs: Sequence[Run]) -> dict[tuple, list[Run]]:
        out: dict[tuple, list[Run]] = defaultdict(list)
        for r in runs:
            out[(r.platform, r.model, r.per_class)].append(r)
        order = {p: i for i, p in enumerate(self.platforms)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1],
                                                        kv[0][2] is None, kv[0][2] or 0)))

    # -------------------------------------------------------------------------------------------- sections
    def summary(self) -> Section:
        s = Section("summary", "What this report covers")
        st = self.store
        plats = ", ".join(self.platforms) or "none"
        s.add(Para(f"Generated {self.generated} from the MLflow store `{st.uri}`: {len(st.training)} finished "
                   f"training run(s), {len(st.unfinished)} not finished (failed, killed, preempted, lost or still "
                   f"running; listed under *Runs*, left out of every figure), {len(st.load)} load run(s), "
                   f"{len(st.endpoints)} endpoint run(s), {len(st.batch)} batch-inference run(s). Platforms: {plats}."))
        if st.excluded:
            s.add(Para(self.excluded_text(), "note"))
        if st.sweep_filter:
            s.add(Para("Training runs limited to the sweep(s) " + ", ".join(f"`{n}`" for n in st.sweep_filter)
                       + "; load, endpoint and batch-inference runs are all included.", "note"))
        if st.sweeps:
            rows, ids = [], []
            for r in st.sweeps:
                m = r.metrics
                rows.append([f"`{r.sweep}`", f"`{r.run_id}`", r.outcome, r.tags.get("platbench.sweep_matrix", "–"),
                             fmt(m.get("sweep_cells"), "{:.0f}"), fmt(m.get("sweep_finished"), "{:.0f}")])
                ids.append([r.run_id])
            s.add(Table(["Sweep", "Parent run", "Status", "Matrix", "Cells", "Finished (last session)"], rows, ids,
                        id="sweeps"))
        s.add(Para("Every figure names the MLflow runs behind it and their dataset fingerprint, image digest "
                   "and code commit; the *Runs* section lists each run with all three. Numbers are mean ± std "
                   "(sample standard deviation) wherever a group has repeats, and a difference between platforms "
                   f"is called only when the test in *Method* says so at α = {self.alpha}, with one value per run. "
                   f"To be able to call a difference at all, two platforms need {stats.min_runs_per_group(2, self.alpha)} "
                   f"runs each, three need {stats.min_runs_per_group(3, self.alpha)}; with fewer the report says "
                   "there are too few runs."))
        return s

    def excluded_text(self) -> str:
        ex = self.store.excluded
        reasons = "; ".join(f"`{r.run_id}` ({r.kind}, {r.platform}: {r.tags.get(Tag.CHECK_REASON) or 'no reason given'})"
                            for r in ex)
        return (f"{len(ex)} run(s) left out of every figure and test because the compliance check failed "
                f"(tag `{Tag.CHECK}` = failed): {reasons}.")

    def time_accuracy(self) -> Section:
        s = Section("time-accuracy", "Training time vs accuracy per platform")
        runs = self.store.training
        if not runs:
            s.add(Para("No finished training runs yet: run `platbench launch PLATFORM` or `platbench sweep`.", "empty"))
            return s
        pts = [{"platform": r.platform, "model": r.model, "train_s": r.m("seconds_train"), "wall_s": r.m(WALL),
                "accuracy": r.m("final_test_accuracy")} for r in runs if r.m("final_test_accuracy") is not None]
        used = self.cite([r for r in runs if r.m("final_test_accuracy") is not None])
        s.add(Figure("fig-time-accuracy", "Test accuracy against training time (log) and end-to-end time (log)",
                     figures.time_vs_accuracy(pts, self.style),
                     "One point per finished run. Left: the trainer's training seconds (evaluation excluded); right: "
                     "from `platbench launch` starting to the results being in MLflow (upload, queue, image pull "
                     "and collection included).", used))
        rows, ids = [], []
        for (p, model, pc), g in self.groups(runs).items():
            acc = [r.m("final_test_accuracy") for r in g if r.m("final_test_accuracy") is not None]
            tr = [r.m("seconds_train") for r in g if r.m("seconds_train") is not None]
            wall = [r.m(WALL) for r in g if r.m(WALL) is not None]
            rows.append([p, model, pc_text(pc), str(len(g)), pm(acc, ACC), pm(tr, SEC), pm(wall, SEC), to_target_text(g)])
            ids.append([r.run_id for r in g])
        s.add(Table(["Platform", "Model", "Images/class", "Runs", "Test accuracy", "Train s", "End-to-end s",
                     "Train s to target"], rows, ids, id="time-accuracy-table",
                    caption="mean ± std over the runs of each group (seeds); a lone run shows its own value"))
        mixed = [f"{p} · {model} · {pc_text(pc)}/class" for (p, model, pc), g in self.groups(runs).items()
                 if len({r.world_size for r in g}) > 1]
        if mixed:
            s.add(Para("These groups pool runs on different device counts, so their training seconds mix them: "
                       + "; ".join(mixed) + ". *Scaling* splits them by device count.", "note"))
        self._between_platforms(s, runs, [("final_test_accuracy", "test accuracy"), ("seconds_train", "train seconds"),
                                          (WALL, "end-to-end seconds")])
        return s

    def _between_platforms(self, s: Section, runs: Sequence[Run], metrics: list[tuple[str, str]]) -> None:
        """Platforms compared within each model × images-per-class group, one value per run (stats.compare)."""
        by_cell: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
        for r in runs:
            by_cell[(r.model, r.per_class)][r.platform].append(r)
        rows, ids = [], []
        for (model, pc), per_platform in sorted(by_cell.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or 0)):
            if len(per_platform) < 2:
                continue
            for metric, label in metrics:
                groups = {p: [r.m(metric) for r in g if r.m(metric) is not None] for p, g in per_platform.items()}
                cmp = stats.compare(f"{label}, {model}, {pc_text(pc)}/class", groups, self.alpha)
                sizes = ", ".join(f"{p} {len(v)}" for p, v in groups.items())
                rows.append([model, pc_text(pc), label, sizes, cmp.test_name,
                             stats.fmt_p(cmp.p) if cmp.p is not None else "–", cmp.finding()])
                ids.append([r.run_id for g in per_platform.values() for r in g])
        if rows:
            s.add(Table(["Model", "Images/class", "Figure", "Runs", "Test", "p", "Finding"], rows, ids,
                        id="time-accuracy-tests",
                        caption="between platforms, one value per run: exact Mann–Whitney (two platforms) or a "
                                "permutation Kruskal–Wallis then pairwise Mann–Whitney with Holm's adjustment; "
                                "effect: ratio of medians with a bootstrap 95% interval"))
        else:
            s.add(Para("No model × images-per-class group has runs on two or more platforms yet, so no difference "
                       "between platforms is tested or called here.", "note"))

    def scaling(self) -> Section:
        """Groups run at two or more device counts: training images/s in all and per device, the per-device
        efficiency against the group's smallest device count, time to target and accuracy per count."""
        s = Section("scaling", "Scaling: training images/s per device and time to target against device count")
        st = self.store
        by_group: dict[tuple, dict[int, list[Run]]] = {}
        for key, g in self.groups(data.scaling_runs(st.training)).items():
            by_group[key] = defaultdict(list)
            for r in g:
                by_group[key][r.world_size].append(r)
        if not by_group:
            s.add(Para("No platform × model × images-per-class group has finished runs at two or more device counts "
                       "yet: run it again on more devices, e.g. `platbench launch local --devices 2`.", "empty"))
            return s
        rows, ids, series = [], [], []
        for (p, model, pc), per_count in by_group.items():
            ips = {n: [v for r in g if (v := train_images_per_s(r, st.train_images.get(r.run_id))) is not None]
                   for n, g in per_count.items()}
            per_device = {n: [v / n for v in vals] for n, vals in ips.items()}
            counts = sorted(per_count)
            base = next((n for n in counts if per_device[n]), None)
            for n in counts:
                g = per_count[n]
                eff = (f"{_median(per_device[n]) / _median(per_device[base]):.2f}"
                       if base is not None and per_device[n] else "–")
                nodes = ", ".join(str(x) for x in sorted({r.nodes for r in g}))
                rows.append([p, model, pc_text(pc), str(n), nodes, str(len(g)),
                             pm(ips[n], IPS) if ips[n] else "–", pm(per_device[n], IPS) if per_device[n] else "–",
                             eff, to_target_text(g),
                             pm([r.m("final_test_accuracy") for r in g if r.m("final_test_accuracy") is not None], ACC)
                             if any(r.m("final_test_accuracy") is not None for r in g) else "–"])
                ids.append([r.run_id for r in g])
            with_ips = [n for n in counts if per_device[n]]
            if with_ips:
                series.append({"platform": p, "model": model, "per_class": pc, "x": with_ips,
                               "median": [_median(per_device[n]) for n in with_ips],
                               "runs": [(n, v) for n in with_ips for v in per_device[n]]})
        runs = self.cite([r for per_count in by_group.values() for g in per_count.values() for r in g])
        if series:
            s.add(Figure("fig-scaling", "Training images/s per device against device count",
                         figures.scaling(series, self.style),
                         "One line per platform × model × images-per-class group through the median over its runs at "
                         "each device count (data-parallel processes, one device each); small dots are the single "
                         "runs. A flat line is perfect scaling.", runs))
        s.add(Table(["Platform", "Model", "Images/class", "Devices", "Nodes", "Runs", "Train images/s",
                     "Train images/s per device", "Efficiency", "Train s to target", "Test accuracy"], rows, ids,
                    id="scaling-table",
                    caption="devices: `world_size` (runs from before results schema 3 logged none and count as 1); "
                            "train images/s: images trained on by all devices (results.json: epochs × steps per epoch "
                            "× global batch) over the training clock `seconds_train` (evaluation excluded), mean ± std "
                            "over runs; per device: that over the device count; efficiency: median per-device images/s "
                            "over the median at the group's smallest device count (1.00 = perfect scaling)"))
        missing = {rid: why for rid, why in st.train_images_missing.items() if rid in {r.run_id for r in runs}}
        if missing:
            s.add(Para("No training images/s for " + "; ".join(f"`{rid}` ({why})" for rid, why in missing.items())
                       + ".", "note"))
        return s

    def ablation(self) -> Section:
        s = Section("ablation", "Accuracy vs images per class")
        runs = [r for r in self.store.training if r.per_class is not None and r.m("final_test_accuracy") is not None]
        if len({r.per_class for r in runs}) < 2:
            s.add(Para("No runs at two or more images-per-class values yet: `platbench sweep --per-class 5,20,80,320,1280`.",
                       "empty"))
            return s
        series, rows, ids = [], [], []
        by_series: dict[tuple, dict[int, list[Run]]] = defaultdict(lambda: defaultdict(list))
        for (p, model, pc), g in self.groups(runs).items():
            by_series[(p, model)][pc] = g
        for (p, model), points in by_series.items():
            xs = sorted(points)
            accs = [[r.m("final_test_accuracy") for r in points[x]] for x in xs]
            ms = [stats.mean_std(a) for a in accs]
            series.append({"platform": p, "model": model, "x": xs, "mean": [m for m, _ in ms], "std": [sd for _, sd in ms],
                           "seeds": [(x, a) for x, al in zip(xs, accs) for a in al]})
            for x, a in zip(xs, accs):
                rows.append([p, model, str(x), str(len(a)), pm(a, ACC), ACC.format(min(a)), ACC.format(max(a))])
                ids.append([r.run_id for r in points[x]])
        s.add(Figure("fig-ablation", "Test accuracy against training images per class",
                     figures.ablation(series, self.style),
                     "Lines join the mean over seeds; the band is ± one standard deviation (drawn where a point has "
                     "two or more seeds); small dots are the single runs.", self.cite(runs)))
        s.add(Table(["Platform", "Model", "Images/class", "Seeds", "Test accuracy", "Min", "Max"], rows, ids,
                    id="ablation-table"))
        return s

    def pareto(self) -> Section:
        s = Section("pareto", "Accuracy × throughput pareto frontier")
        ev = THROUGHPUT["evaluated"]
        # the frontier pairs accuracy with the speed it was measured at: as evaluated, with TTA
        runs = [r for r in self.store.training if r.m("final_test_accuracy") is not None and first(r, ev) is not None]
        if not runs:
            s.add(Para("No finished runs with accuracy and throughput yet.", "empty"))
            return s
        groups = self.groups(runs)
        pts = []
        for (p, model, pc), g in groups.items():
            pts.append({"platform": p, "model": model, "per_class": pc, "runs": g,
                        "accuracy": stats.mean_std([r.m("final_test_accuracy") for r in g])[0],
                        "throughput": stats.mean_std([first(r, ev) for r in g])[0]})
        for pt, on in zip(pts, stats.pareto([(q["throughput"], q["accuracy"]) for q in pts])):
            pt["frontier"] = on
        s.add(Figure("fig-pareto", "Test accuracy against inference throughput as evaluated (with TTA), frontier marked",
                     figures.pareto(pts, self.style),
                     "One point per platform × model × images-per-class group (means over its runs). A point is on "
                     "the frontier when no other group is at least as accurate and at least as fast, and better in "
                     "one of the two. Throughput is the trainer's own timed pass over the test set as the accuracy "
                     "was measured: with the preset's test-time augmentation (`evaluated_throughput_images_per_s`); "
                     "the plain model's speed, what `serve` answers, is in the table.", self.cite(runs)))
        front = [q for q in pts if q["frontier"]]
        s.add(Para("On the frontier: " + "; ".join(
            f"**{q['platform']} · {q['model']} · {pc_text(q['per_class'])}/class** "
            f"(accuracy {ACC.format(q['accuracy'])}, {IPS.format(q['throughput'])} images/s as evaluated)"
            for q in front) + "."))
        rows, ids = [], []
        for q in pts:
            g = q["runs"]

            def col(names, f):
                vals = [first(r, names) for r in g if first(r, names) is not None]
                return pm(vals, f) if vals else "–"

            rows.append([q["platform"], q["model"], pc_text(q["per_class"]), str(len(g)),
                         pm([r.m("final_test_accuracy") for r in g], ACC),
                         col(THROUGHPUT["plain"], IPS), col(THROUGHPUT["evaluated"], IPS),
                         col(LATENCY["plain"], "{:.3f}"), col(LATENCY["evaluated"], "{:.3f}"),
                         "yes" if q["frontier"] else "no"])
            ids.append([r.run_id for r in g])
        s.add(Table(["Platform", "Model", "Images/class", "Runs", "Test accuracy",
                     f"Images/s ({SPEED_LABEL['plain']})", f"Images/s ({SPEED_LABEL['evaluated']})",
                     f"ms/image ({SPEED_LABEL['plain']})", f"ms/image ({SPEED_LABEL['evaluated']})", "Frontier"],
                    rows, ids, id="pareto-table",
                    caption="plain model: one forward pass per image, what `serve` answers "
                            "(`plain_throughput_images_per_s`, `plain_latency_ms_per_image`); as evaluated: with the "
                            "preset's test-time augmentation, as the accuracy was measured "
                            "(`evaluated_throughput_images_per_s`, `evaluated_latency_ms_per_image`; runs from before "
                            "the split: `throughput_images_per_s`, `latency_ms_per_image`); – : not logged"))
        return s

    def phase_values(self, r: Run) -> dict[str, float]:
        out = {}
        for label, names in PHASES:
            vals = [r.m(n) for n in names if r.m(n) is not None]
            if vals:
                out[label] = sum(vals)
        if "train" not in out and r.m(TRAIN_FALLBACK) is not None:
            out["train"] = r.m(TRAIN_FALLBACK)
        if r.m(WALL) is not None:
            rest = r.m(WALL) - sum(out.values())
            if rest > 0:
                out[OTHER] = rest
        return out

    def phases(self) -> Section:
        s = Section("phases", "Time split by phase per platform")
        runs = [r for r in self.store.training if r.m(WALL) is not None]
        if not runs:
            s.add(Para("No finished runs with an end-to-end time yet.", "empty"))
            return s
        names = [label for label, _ in PHASES] + [OTHER]
        per: dict[str, list[dict[str, float]]] = defaultdict(list)
        by_platform: dict[str, list[Run]] = defaultdict(list)
        for r in runs:
            per[r.platform].append(self.phase_values(r))
            by_platform[r.platform].append(r)
        plats = [p for p in self.platforms if p in per]
        means = {p: {n: stats.mean_std([v[n] for v in per[p] if n in v])[0] for n in names
                     if any(n in v for v in per[p])} for p in plats}
        s.add(Figure("fig-phases", "Where the time goes, per platform", figures.phases(plats, names, means),
                     "Mean seconds per phase over each platform's finished runs. upload: staging the dataset "
                     "(`upload_seconds`); queue/provisioning, image pull, data download, train: the platform's own "
                     "job phases (`phase_seconds_*`); train on a platform that reports no phases (local): the "
                     "trainer process (`seconds_total`: data, training, evaluation); collect: writing and fetching "
                     "outputs; other: the rest of the end-to-end time (`seconds_wall`).", self.cite(runs)))
        rows, ids = [], []
        for p in plats:
            rows.append([p, str(len(per[p]))] + [pm([v[n] for v in per[p] if n in v], SEC) if any(n in v for v in per[p])
                                                  else "–" for n in names]
                        + [pm([r.m(WALL) for r in by_platform[p]], SEC)])
            ids.append([r.run_id for r in by_platform[p]])
        s.add(Table(["Platform", "Runs"] + [f"{n} s" for n in names] + ["End-to-end s"], rows, ids, id="phases-table",
                    caption="– : the platform logged no such phase"))
        return s

    def transfer(self) -> Section:
        s = Section("transfer", "Upload and download seconds per MB")
        panels, rows, ids, cited, verdicts = [], [], [], [], []
        pools = {"training": self.store.training + self.store.unfinished, "batch": self.store.batch + self.store.endpoints}
        cached_total = 0
        for metric, label, pool in TRANSFER:
            runs = [r for r in pools[pool] if transfer_value(r, metric) is not None]
            cached = [r for r in pools[pool] if metric == UPLOAD and upload_cached(r)]
            if not runs and not cached:
                continue
            cached_total += len(cached)
            groups: dict[str, list[Run]] = defaultdict(list)
            for r in runs:
                groups[r.platform].append(r)
            by_cache: dict[str, list[Run]] = defaultdict(list)
            for r in cached:
                by_cache[r.platform].append(r)
            plats = [p for p in self.platforms if p in groups or p in by_cache]
            values = {p: [transfer_value(r, metric) for r in groups[p]] for p in plats if groups.get(p)}
            if values:
                panels.append((label, values))
            for p in plats:
                v = values.get(p, [])
                rows.append([label, p, str(len(v)), SPM.format(float(_median(v))) if v else "–", pm(v, SPM),
                             str(len(by_cache[p])) if metric == UPLOAD else "–"])
                ids.append([r.run_id for r in groups.get(p, []) + by_cache.get(p, [])])
            cited += runs
            if values:
                verdicts.append(stats.compare(label, values, self.alpha))
        if not rows:
            s.add(Para("No runs with upload or download s/MB yet: the cloud launchers log them when they stage the "
                       "dataset and when the job reads it (`platbench launch PLATFORM` of a platform with remote storage); batch inference logs "
                       "its own (`platbench predict`). Local runs read the data in place and move nothing.", "empty"))
            return s
        if panels:
            s.add(Figure("fig-transfer", "Seconds per MB moved, per platform", figures.boxes(panels, self.style),
                         "Box: quartiles and median; whiskers 1.5 × IQR; dots: the single runs. One observation per "
                         "run (upload: `upload_seconds` over the MB actually sent, `upload_bytes_sent` / 2^20; "
                         "`download_s_per_mb`, `batch_seconds_per_mb`); includes runs that failed after their data "
                         "moved; runs whose dataset was already staged sent nothing and are counted, not drawn.",
                         self.cite(cited)))
        s.add(Table(["Figure", "Platform", "Runs", "Median", "Mean ± std", "Cached (sent nothing)"], rows, ids,
                    id="transfer-table",
                    caption="Runs: the runs with a figure (the ones tested); cached: runs that found every shard "
                            "already staged (`upload_bytes_sent` = 0), in no s/MB figure"))
        if cached_total:
            s.add(Para(f"{cached_total} run(s) sent nothing because every shard of their dataset was already staged "
                       "(in a sweep only the first cell uploads): shown as cached above, left out of the upload "
                       "s/MB figures and tests, whose s/MB is over bytes actually sent.", "note"))
        for cmp in verdicts:
            s.add(Para(cmp.summary(), "verdict"))
        return s

    def cold_transfers(self) -> Section:
        """`platbench transfer`: cold upload/download per repeat, in batches of 1,024 images and whole. The
        per-batch distribution is drawn (as the AWS-vs-Azure paper showed it); the tests compare one value
        per repeat (its median batch s/MB, its whole-dataset s/MB), never batches pooled as if independent."""
        s = Section("cold-transfer", "Cold transfers, batch by batch (`platbench transfer`)")
        runs = self.store.transfers
        if not runs:
            s.add(Para("No `platbench transfer` runs yet: `platbench transfer PLATFORM --data DIR --repeats N` "
                       "uploads and downloads the dataset cold, in batches of 1,024 images and whole.", "empty"))
            return s
        by_platform: dict[str, list[Run]] = defaultdict(list)
        for r in runs:
            by_platform[r.platform].append(r)
        plats = _ordered(set(by_platform))
        panels = []
        for side in ("upload", "download"):
            dist = {p: [v for r in by_platform[p] for v in self.store.transfer_batches.get(r.run_id, {}).get(side, [])]
                    for p in plats}
            if any(dist.values()):
                panels.append((f"{side} s/MB per batch", {p: v for p, v in dist.items() if v}))
        if panels:
            s.add(Figure("fig-cold-transfer", "Seconds per MB, each batch of images (1,024 unless --batch), per platform",
                         figures.boxes(panels, self.style),
                         "Box: quartiles and median of every batch of every repeat; the comparisons below use one "
                         "value per repeat (its median batch), since batches of one repeat share its network path.",
                         self.cite(runs)))
        metrics = [("batch_upload_s_per_mb_median", "batch upload s/MB (median batch of a repeat)"),
                   ("batch_download_s_per_mb_median", "batch download s/MB (median batch of a repeat)"),
                   ("upload_s_per_mb", "whole upload s/MB (sharded, over bytes sent)"),
                   ("download_s_per_mb", "whole download s/MB (sharded)")]
        rows, ids = [], []
        for p in plats:
            rs = by_platform[p]
            cells = []
            for name, _ in metrics:
                v = [r.m(name) for r in rs if r.m(name) is not None]
                cells.append(SPM.format(float(_median(v))) if v else "–")
            rows.append([p, str(len(rs)), *cells])
            ids.append([r.run_id for r in rs])
        s.add(Table(["Platform", "Repeats", *[label for _, label in metrics]], rows, ids, id="cold-transfer-table",
                    caption="Medians over repeats; one MLflow run per repeat (kind `transfer`)"))
        if len(plats) > 1:
            for name, label in metrics:
                values = {p: [r.m(name) for r in by_platform[p] if r.m(name) is not None] for p in plats}
                values = {p: v for p, v in values.items() if v}
                if len(values) > 1:
                    s.add(Para(stats.compare(label, values, self.alpha).summary(), "verdict"))
        return s

    def latency(self) -> Section:
        s = Section("latency", "Serving latency distributions")
        st = self.store
        serving = st.serving
        if not serving:
            s.add(Para("No load or endpoint runs yet: `platbench load TARGET` measures a running server, "
                       "`platbench endpoint PLATFORM` deploys a managed endpoint, load-tests it and deletes it; "
                       "both log every request's latency to MLflow.", "empty"))
            return s
        with_samples = [r for r in serving if r.run_id in st.latency_samples]
        if with_samples:
            groups: dict[str, list[float]] = defaultdict(list)
            for r in with_samples:
                groups[r.platform] += st.latency_samples[r.run_id]
            groups = {p: groups[p] for p in self.platforms if p in groups}
            s.add(Figure("fig-latency", "Request latency per platform (successful requests)",
                         figures.boxes([("latency, ms (log scale)", groups)], self.style, log=True),
                         "Every successful request of the platform's load and endpoint runs (their `load.json` / "
                         "`endpoint.json` artifacts), pooled per platform to show the spread; failed requests are "
                         "counted under errors, not drawn. The test below takes one median per run, not the "
                         "requests.", self.cite(with_samples)))
        else:
            s.add(Para("No load or endpoint run has its per-request samples (load.json / endpoint.json), so no "
                       "distribution is drawn; the logged percentiles are below.", "empty"))
        # The unit is the run: its requests share a machine, a network path and a warm-up, so thousands of
        # them are not thousands of independent looks at a platform.
        per_run: dict[str, list[float]] = defaultdict(list)
        for r in serving:
            v = self.run_latency(r)
            if v is not None:
                per_run[r.platform].append(v)
        per_run = {p: per_run[p] for p in self.platforms if p in per_run}
        if per_run:
            cmp = stats.compare("request latency (one median per run)", per_run, self.alpha)
            s.add(Para(cmp.summary(), "verdict"))
        rows, ids = [], []
        for r in serving:
            rows.append([f"`{r.run_id}`", r.kind, r.platform, r.tags.get(Tag.MODEL) or "–", fmt(r.m("load_ok"), "{:.0f}"),
                         fmt(r.m("load_error_rate"), "{:.4f}"), fmt(r.m("load_latency_p50_ms"), MS),
                         fmt(r.m("load_latency_p90_ms"), MS), fmt(r.m("load_latency_p99_ms"), MS),
                         fmt(r.m("load_latency_mean_ms"), MS), fmt(r.m("load_requests_per_s"), IPS),
                         str(len(st.latency_samples.get(r.run_id, []))) if r.run_id in st.latency_samples
                         else st.latency_missing.get(r.run_id, "–"), fmt(self.run_latency(r), MS)])
            ids.append([r.run_id])
        self.cite(serving)
        s.add(Table(["Run", "Kind", "Platform", "Model", "OK", "Error rate", "p50 ms", "p90 ms", "p99 ms", "Mean ms",
                     "Req/s", "Samples drawn", "Run median ms (tested)"], rows, ids, id="latency-table",
                    caption="percentiles as the load tool logged them (`load_latency_*_ms`); run median: the median "
                            "of the run's successful requests, else its logged p50, the one value per run the "
                            "test uses"))
        return s

    def run_latency(self, r: Run) -> Optional[float]:
        samples = self.store.latency_samples.get(r.run_id)
        return _median(samples) if samples else r.m("load_latency_p50_ms")

    def cost(self) -> Section:
        s = Section("cost", "Cost")
        pool = self.store.training + self.store.unfinished
        billed = [r for r in pool if r.m("cost_usd") is not None or r.m("cost_list_estimate_usd") is not None]
        if not billed:
            s.add(Para("No runs with a cost yet: cloud launchers price each run from the price table "
                       "(platforms/<name>/prices.yaml); local runs are not billed.", "empty"))
        else:
            rows, ids = [], []
            for r in billed:
                rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class), str(r.seed),
                             r.tags.get(Tag.INSTANCE_TYPE, "–"), r.outcome, fmt(r.m("billed_seconds"), SEC),
                             usd(billed_usd(r), [r], USD), usd(r.m("cost_list_estimate_usd"), [r], USD),
                             usd(price_per_hour(r), [r], PRICE), price_status(r) or "–", basis_text(r)])
                ids.append([r.run_id])
            s.add(Table(["Run", "Platform", "Model", "Images/class", "Seed", "Instance", "Status", "Billed s",
                         "Billed USD", "List-price USD", "USD/h", "Price table", "Price basis"], rows, ids,
                        id="cost-runs",
                        caption="billed: billed seconds × list price; list-price estimate: the run's time on the "
                                "instance × the same price (platforms/core/pricing.py); USD/h: the quote in the run's "
                                "`platbench.price_source` tag; price table: the status its entries had; price "
                                "basis: the launcher's `platbench.price_basis` tag"))
            grouped: dict[tuple, list[Run]] = defaultdict(list)
            for r in billed:  # spot and on-demand runs are not averaged together
                grouped[(r.platform, r.model, r.tags.get(Tag.INSTANCE_TYPE, "–"), basis_text(r))].append(r)
            bars, rows, ids = [], [], []
            for (p, model, inst, basis), g in grouped.items():
                b = [billed_usd(r) for r in g if billed_usd(r) is not None]
                li = [r.m("cost_list_estimate_usd") for r in g if r.m("cost_list_estimate_usd") is not None]
                mark = f" {UNVERIFIED}" if any(price_status(r) == "unverified" for r in g) else ""
                rows.append([p, model, inst, basis, str(len(g)), pm(b, USD) + mark if b else "–",
                             pm(li, USD) + mark if li else "–"])
                ids.append([r.run_id for r in g])
                name = f"{p} · {model} · {inst}" + ("" if basis == "–" else f" · {basis}") + mark
                bars.append((name, stats.mean_std(b) if b else None, stats.mean_std(li) if li else None))
            s.add(Figure("fig-cost", "Cost per training run", figures.cost_bars(bars),
                         "Mean ± std per platform × model × instance × price basis over its runs (all statuses: a "
                         f"failed run is billed too); {UNVERIFIED}: priced from an unverified price-table entry.",
                         self.cite(billed)))
            s.add(Table(["Platform", "Model", "Instance", "Price basis", "Runs", "Billed USD", "List-price USD"], rows,
                        ids, id="cost-table"))
        # to target accuracy
        targeted = [r for r in self.store.training if r.target_accuracy is not None and price_per_hour(r) is not None
                    and (r.m("cost_usd") is not None or r.m("cost_list_estimate_usd") is not None)]  # priced runs only
        if not targeted:
            s.add(Para("No priced runs with a target accuracy yet (`--target-accuracy`), so no cost to target.", "empty"))
        else:
            rows, ids = [], []
            for r in targeted:
                t = r.m("seconds_to_target")
                rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class), ACC.format(r.target_accuracy),
                             fmt(t, SEC) if t is not None else "not reached", usd(price_per_hour(r), [r], PRICE),
                             usd(t * price_per_hour(r) / 3600 if t is not None else None, [r], USD)])
                ids.append([r.run_id])
            self.cite(targeted)
            agg, agg_ids = [], []
            for (p, model, pc), g in self.groups(targeted).items():
                for target in sorted({r.target_accuracy for r in g}):
                    gt = [r for r in g if r.target_accuracy == target]
                    spent = [r.m("seconds_to_target") * price_per_hour(r) / 3600 for r in gt
                             if r.m("seconds_to_target") is not None]
                    mark = f" {UNVERIFIED}" if any(price_status(r) == "unverified" for r in gt) else ""
                    agg.append([p, model, pc_text(pc), ACC.format(target), f"{len(spent)}/{len(gt)}",
                                pm(spent, USD) + mark if spent else "not reached"])
                    agg_ids.append([r.run_id for r in gt])
            s.add(Table(["Platform", "Model", "Images/class", "Target", "Reached", "USD to target"], agg, agg_ids,
                        id="cost-target-groups", caption="mean ± std over the runs that reached the target"))
            s.add(Table(["Run", "Platform", "Model", "Images/class", "Target", "Train s to target", "USD/h",
                         "USD to target"], rows, ids, id="cost-target",
                        caption="USD to target = train seconds until test accuracy ≥ target × USD/h ÷ 3600 (training "
                                "time only: provisioning and data are not included)"))
        # endpoints
        priced = [r for r in self.store.serving if r.m(ENDPOINT_PRICE_METRIC) is not None]
        if not priced:
            s.add(Para("No endpoint runs with a price yet: `platbench endpoint PLATFORM` prices the endpoint it "
                       f"deploys (`{ENDPOINT_PRICE_METRIC}` and per day, month, year).", "empty"))
        else:
            rows, ids = [], []
            for r in priced:
                h = r.m(ENDPOINT_PRICE_METRIC)
                rps = r.m("load_requests_per_s")
                per = [r.m(f"endpoint_usd_per_{unit}") if r.m(f"endpoint_usd_per_{unit}") is not None else h * n
                       for unit, n in HOURS.items()]
                inst = r.params.get("instance_type") or r.params.get("machine_type") or r.tags.get(Tag.INSTANCE_TYPE, "–")
                rows.append([f"`{r.run_id}`", r.platform, inst, fmt(r.m("endpoint_create_to_in_service_s"), SEC)]
                            + [usd(per[0], [r], PRICE)] + [usd(v, [r], "{:,.2f}") for v in per[1:]]
                            + [usd(h / (rps * 3600) * 1e6 if rps else None, [r], "{:,.2f}"),
                               self.store.endpoint_notes.get(r.run_id, "real-time inference price"),
                               price_status(r) or "–"])
                ids.append([r.run_id])
            self.cite(priced)
            s.add(Table(["Run", "Platform", "Instance", "Create → serving s", "USD/hour", "USD/day", "USD/month",
                         "USD/year", "USD per 1M requests (measured req/s)", "Price note", "Price table"], rows, ids,
                        id="cost-endpoints",
                        caption="an endpoint kept up around the clock (`endpoint_usd_per_*`); month = 730 h, year = "
                                "8,760 h; per 1M requests: USD/hour at the load test's measured requests/s"))
        priced_runs = billed + targeted + priced
        if any(price_status(r) == "unverified" for r in priced_runs):
            s.add(Para(f"{UNVERIFIED} marks a figure computed from a price-table entry with `status: unverified` "
                       "(platforms/<name>/prices.yaml: recorded without re-reading the live price page): confirm the price "
                       "on its source page before quoting the figure.", "note"))
        return s

    def _scorecards(self):
        """scoring.yaml, the records and the studies file (scenarios/published/studies.yaml), or the
        one-line reason there are none."""
        from platforms.errors import UserError
        from platforms.scorecard import loader

        try:
            project = _project(self.root)
            return project, loader.load_all(project, None, loader.registered_platforms()), None
        except UserError as exc:
            return None, None, str(exc)

    def published(self) -> Section:
        """The AutoML study's published latency, throughput and endpoint price beside platbench's own
        serving runs of the same service (runs tagged with the service's platform name)."""
        from platforms.scorecard.published import METRICS, PUBLISHED_FILE, date_text

        s = Section("published", "Published figures beside measured runs (AutoML services)")
        project, got, problem = self._scorecards()
        if problem is not None or got.published is None or not got.published.figures:
            s.add(Para("No published figures: " + (problem or "the project keeps no scenarios/published/studies.yaml")
                       + ".", "empty"))
            return s
        pub = got.published
        cols = list(METRICS)
        rows, ids, refs = [], [], {}
        for name in pub.platbench_names:
            figs = pub.figures_for(name)
            if not figs:
                continue
            for study in dict.fromkeys(f.study for f in figs):
                st = pub.studies[study]
                n = refs.setdefault(study, len(refs) + 1)
                by = {f.metric: f for f in figs if f.study == study}
                cells = [fmt(by[m].value, "{:g}") if m in by else "–" for m in cols]
                rows.append([name, f"**published** [{n}]: {by[next(iter(by))].platform}, {date_text(st)}", *cells, "–"])
                ids.append([])
            measured = [r for r in self.store.serving if r.tags.get(Tag.PLATFORM) == name]
            if not measured:
                rows.append([name, "measured: no runs yet", *(["–"] * len(cols)), "0"])
                ids.append([])
                continue
            self.cite(measured)
            medians = [v for r in measured if (v := self.run_latency(r)) is not None]
            study_load = [r.m("load_seconds") for r in measured
                          if self._closed_loop(r, 1000, 10) and r.m("load_seconds") is not None]
            hourly = [r.m(ENDPOINT_PRICE_METRIC) for r in measured if r.m(ENDPOINT_PRICE_METRIC) is not None]
            rows.append([name, "measured by platbench",
                         pm(medians, MS) if medians else "–", pm(study_load, SEC) if study_load else "–",
                         pm(hourly, PRICE) if hourly else "–", str(len(measured))])
            ids.append([r.run_id for r in measured])
        s.add(Table(["Platform", "Source", *[METRICS[m] for m in cols], "Runs"], rows, ids, id="published-figures",
                    caption="published rows: the study's own figures, attributed below, not platbench measurements; "
                            "measured rows: mean ± std over this platform's load and endpoint runs (median latency: "
                            "one median per run; 1,000 requests at 10: only runs of exactly 1,000 requests, closed loop "
                            "at concurrency 10, `load_seconds`; price: `endpoint_usd_per_hour`)"))
        for study, n in refs.items():
            st = pub.studies[study]
            s.add(Para(f"[{n}] {st.title}, {date_text(st)}; measured by {st.measured_by}; <{st.url}>; "
                       f"figures from its sections named per figure in `{PUBLISHED_FILE}`.",
                       "note"))
        notes = [f"{f.platform}, {METRICS[f.metric]}: {f.notes}" for f in pub.figures if f.notes]
        for text in notes:
            s.add(Para(text, "note"))
        return s

    def _closed_loop(self, run: Run, requests: int, concurrency: int) -> bool:
        """Was the run's load test closed loop, exactly `requests` at `concurrency` (the study's 1,000 at
        10)? From its params (load runs) or the load report's settings in its artifact (service runs)."""
        st = {**self.store.load_settings.get(run.run_id, {}), **run.params}
        try:
            return (int(st.get("requests", -1)) == requests and int(st.get("concurrency", -1)) == concurrency
                    and st.get("rate") in (None, "", "None"))
        except (TypeError, ValueError):
            return False

    def usability(self) -> Section:
        from platforms.scorecard import loader, table as table_mod
        from platforms.scorecard.published import date_text, one_line

        s = Section("usability", "Usability from the scenario scorecards, beside the studies' published ratings")
        project, got, problem = self._scorecards()
        if problem is not None:
            s.add(Para(f"No usability table: {problem}.", "empty"))
            return s
        show = project.relative
        rubric = got.rubric
        if not got.records:
            s.add(Para("No scenario records yet (scenarios/<platform>.yaml): record one with "
                       "`platbench scenario record PLATFORM`.", "empty"))
        kinds = ["usability"] + (["developer_experience"] if rubric.developer_experience is not None else [])
        statuses: dict[str, int] = {}
        refs: dict[str, int] = {}
        platforms = loader.registered_platforms()
        for which in kinds:
            scored = rubric if which == "usability" else rubric.developer_experience
            rows_in = table_mod.build(rubric, got.records, platforms, got.published, got.placeholders, which)
            rows = []
            for row in rows_in:
                source, *rest = table_mod.cells(scored, row, got.published, show, refs)
                name = f"*{row.label()}*" if row.published else row.label()
                rows.append([name, table_mod.status_cell(row, statuses), source, *rest])
            title = "usability (0–3)" if which == "usability" else (scored.title or which)
            s.add(Table(["Platform", "Status", "Source"] + [c.header for c in scored.criteria] + ["Total"], rows,
                        [[] for _ in rows], id="usability-table" if which == "usability" else "devex-table",
                        caption=f"{title}: platbench's records in {show(project.scenarios_dir)}/ scored by "
                                f"{show(project.rubric_path)}; rows marked published are the study's own "
                                "ratings, attributed below (`platbench scenario table`)"))
            for row in rows_in:
                if row.card is not None:
                    for sc in row.card.scores:
                        if sc.override is not None:
                            s.add(Para(f"{row.platform}, {sc.title}: override to {sc.override.rating} — "
                                       f"{sc.override.reason}", "note"))
        pub = got.published
        for study, n in refs.items():
            st = pub.studies[study]
            s.add(Para(f"[{n}] published by {st.measured_by}: {st.title}, {date_text(st)}, <{st.url}>.", "note"))
        for name, n in statuses.items():
            st = pub.platform(name).status
            s.add(Para(f"[s{n}] {name}: {one_line(st.what).rstrip('.')}; " + ", ".join(f"<{u}>" for u in st.sources)
                       + (f". Not confirmed: {one_line(st.unconfirmed)}" if st.unconfirmed else "") + ".", "note"))
        return s

    def runs(self) -> Section:
        s = Section("runs", "Runs: where every number comes from")
        st = self.store
        training = st.training + st.unfinished
        if not training and not st.serving and not st.batch and not st.excluded:
            s.add(Para(f"No runs in `{st.uri}` yet.", "empty"))
            return s
        rows, ids = [], []
        for r in sorted(training, key=lambda r: r.start_time or 0):
            rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class), fmt(r.seed, "{}"), r.outcome,
                         fmt(r.m("final_test_accuracy"), ACC), fmt(r.m("seconds_train"), SEC), fmt(r.m(WALL), SEC),
                         fmt(first(r, THROUGHPUT["plain"]), IPS), fmt(first(r, THROUGHPUT["evaluated"]), IPS),
                         f"`{short(r.fingerprint)}`",
                         f"`{short(r.image_digest, 19)}`" if r.image_digest else "–", f"`{short_commit(r.commit)}`",
                         r.tags.get(Tag.SWEEP_CELL) and f"{r.sweep} {r.tags.get(Tag.SWEEP_CELL)}" or "–"])
            ids.append([r.run_id])
        s.add(Table(["Run", "Platform", "Model", "Images/class", "Seed", "Status", "Test accuracy", "Train s",
                     "End-to-end s", f"Images/s ({SPEED_LABEL['plain']})", f"Images/s ({SPEED_LABEL['evaluated']})",
                     "Dataset", "Image", "Commit", "Sweep cell"], rows, ids, id="runs-table",
                    caption="training runs; only status `finished` enters the figures"))
        in_training = {r.run_id for r in st.services}  # service runs are in the training table above
        others = [r for r in st.serving if r.run_id not in in_training] + st.batch
        if others:
            rows, ids = [], []
            for r in others:
                rows.append([f"`{r.run_id}`", r.kind, r.platform, r.tags.get(Tag.MODEL) or "–", r.outcome,
                             f"`{short(r.image_digest, 19)}`" if r.image_digest else "–", f"`{short_commit(r.commit)}`"])
                ids.append([r.run_id])
            s.add(Table(["Run", "Kind", "Platform", "Model", "Status", "Image", "Commit"], rows, ids,
                        id="runs-serving"))
        if st.excluded:
            rows = [[f"`{r.run_id}`", r.kind, r.platform, r.model, r.outcome,
                     r.tags.get(Tag.CHECK_REASON) or "no reason given"] for r in st.excluded]
            s.add(Table(["Run", "Kind", "Platform", "Model", "Status", "Why the check failed"], rows,
                        [[r.run_id] for r in st.excluded], id="runs-excluded",
                        caption=f"left out of every figure and test: the compliance check failed (`{Tag.CHECK}` = failed)"))
        prov = []
        all_runs = training + others + st.excluded
        for label, get in (("Dataset fingerprint", lambda r: r.fingerprint), ("Image digest", lambda r: r.image_digest),
                           ("Code commit", lambda r: r.commit)):
            counts: dict[str, int] = defaultdict(int)
            for r in all_runs:
                if get(r):
                    counts[get(r)] += 1
            for value, n in sorted(counts.items()):
                prov.append([label, f"`{value}`", str(n)])
        if prov:
            s.add(Table(["Provenance", "Value (full)", "Runs"], prov, [[] for _ in prov], id="provenance"))
        return s

    def method(self) -> Section:
        s = Section("method", "Method")
        s.add(Para("Runs: every run of the `platbench` MLflow experiment (the sweeps' children and plain launches); "
                   "a training run enters the figures when MLflow says FINISHED and its `platbench.status` tag says "
                   "finished. Accuracy is the trainer's final test accuracy (`final_test_accuracy`); training seconds "
                   "exclude evaluation (`seconds_train`); end-to-end seconds run from the launcher starting to the "
                   "results being in MLflow (`seconds_wall`); throughput and latency are the trainer's timed "
                   "inference over the test set, twice: the plain model, one forward pass per image, what `serve` "
                   "answers (`plain_throughput_images_per_s`, `plain_latency_ms_per_image`), and as evaluated, with "
                   "the preset's test-time augmentation (`evaluated_throughput_images_per_s`, "
                   "`evaluated_latency_ms_per_image`; runs from before the split logged only that one, as "
                   "`throughput_images_per_s` and `latency_ms_per_image`). A run the compliance checker failed "
                   f"(`{Tag.CHECK}` = failed) enters no figure; the summary names it."))
        s.add(Para("Repeats: groups are platform × model × images per class; their runs differ by seed. Tables show "
                   "mean ± sample standard deviation (n − 1); a group with one run shows that run's value."))
        two, three = stats.min_runs_per_group(2, self.alpha), stats.min_runs_per_group(3, self.alpha)
        s.add(Para("Unit of observation: the run. Every test takes one value per run (its accuracy, train seconds, "
                   "upload s/MB, or the median of its requests' latencies), never the requests of a run pooled: "
                   "requests of one run share a machine, a network path and a warm-up, so they are not independent "
                   "looks at a platform."))
        s.add(Para(f"Tests, valid at a handful of runs: two platforms: two-sided Mann–Whitney with its exact p "
                   f"(every relabelling of the runs enumerated over the joint mid-ranks, so ties are exact too; "
                   f"`scipy.stats.permutation_test`, equal to `scipy.stats.mannwhitneyu(method='exact')` without "
                   f"ties). More platforms: Kruskal–Wallis H with its permutation p (not the χ² approximation, which "
                   f"is wrong at small n), then pairwise Mann–Whitney as above with Holm's step-down adjustment over "
                   f"all pairs. Where there are more than {stats.EXACT_LIMIT:,} relabellings, p comes from "
                   f"{stats.RESAMPLES:,} seeded random ones. A difference is called only when the omnibus p and the "
                   f"pair's Holm-adjusted p are < α = {self.alpha}. Groups with fewer than {stats.MIN_PER_GROUP} runs "
                   f"are left out and named. Effect size: ratio of medians (higher / lower) with a percentile "
                   f"bootstrap 95% interval ({stats.BOOTSTRAP:,} seeded resamples, `scipy.stats.bootstrap`; only from "
                   f"{stats.BOOTSTRAP_MIN} runs a group: resampling 2 or 3 values gives an interval too narrow to "
                   "trust). "
                   f"Every draw is seeded ({stats.SEED}): the same runs give the same report."))
        s.add(Para(f"Too few runs: with n runs per group even fully separated groups have a smallest possible p "
                   f"(two groups of 3: 0.1). When no outcome at the groups' sizes could reach α after Holm's "
                   f"adjustment, the report says there are too few runs and how many per group would be needed, read "
                   f"off the exact distributions: at α = {self.alpha}, {two} runs per platform for two platforms, "
                   f"{three} for three (`platforms.report.stats.min_runs_per_group`)."))
        s.add(Para("Upload s/MB: the staging's seconds over the MB actually sent (`upload_seconds` ÷ "
                   "`upload_bytes_sent` / 2^20); a run that sent nothing (every shard already staged, "
                   "`upload_bytes_sent` = 0) is counted as cached and in no s/MB figure."))
        s.add(Para("Scaling: a run's device count is its `world_size` (data-parallel processes, one device each, "
                   "over `nodes` machines; a run from before results schema 3 logged neither and was one process). Its "
                   "training images/s is the images its optimizer steps trained on, all devices together (from its "
                   "`results.json` artifact: epochs completed × steps per epoch × the global batch, which the devices "
                   "split), over its training clock `seconds_train` (evaluation excluded); per device is that over "
                   "`world_size`. Efficiency at N devices is the median per-device images/s at N over the median at "
                   "the group's smallest device count. Time to target is `seconds_to_target` on the same training "
                   "clock; a run that never reached its target counts as not reached."))
        s.add(Para("Pareto frontier: over the group means of test accuracy and inference throughput as evaluated "
                   "(with TTA, as the accuracy was measured), a group is on the frontier when no other group is at "
                   "least as good in both and better in one."))
        s.add(Para("Cost: billed USD and list-price USD are the launchers' own figures (`cost_usd`, "
                   "`cost_list_estimate_usd`); USD/h is the price quote recorded on the run; endpoints are priced "
                   f"per hour × 24 (day), × 730 (month), × 8,760 (year). {UNVERIFIED} marks a figure computed from a "
                   "price-table entry whose status, as recorded on the run's `platbench.price_source` tag, is "
                   f"unverified; the price basis (`{Tag.PRICE_BASIS}`: spot, on-demand, or a spot run priced at "
                   "on-demand because the table has no spot price) is shown where the launcher set it."))
        return s


def _project(root: Optional[Path]):
    """--root, else $PLATBENCH_ROOT or the nearest folder up from here with scoring.yaml, else the
    checkout this platbench runs from."""
    from platforms.errors import UserError
    from platforms.scorecard.loader import Project

    try:
        return Project.find(root)
    except UserError:
        checkout = Path(__file__).resolve().parents[2]
        if root is None and not __import__("os").environ.get("PLATBENCH_ROOT") and (checkout / "scoring.yaml").is_file():
            return Project(checkout)
        raise


def _ordered(platforms: set[str]) -> list[str]:
    return sorted(platforms, key=lambda p: (p != "local", p))


def _median(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.median(values))
