"""Training time against accuracy, the tests between platforms, accuracy against images per class,
and the accuracy × throughput pareto frontier."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from platforms.core import stats
from platforms.core.stats import pm
from platforms.report import figures
from platforms.report.data import Run
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import ACC, IPS, SEC, pc_text, seeds_text, to_target_text
from platforms.report.sections.metrics import LATENCY, SPEED_LABEL, THROUGHPUT, WALL, first


class AccuracySections(ReportContext):
    """Time vs accuracy, ablation over images per class, pareto frontier."""

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
        groups = self.groups(runs)
        fields = self.condition_fields(k[3] for k in groups)
        cond_col = bool(fields)
        rows, ids = [], []
        for (p, model, pc, cond), g in groups.items():
            acc = [r.m("final_test_accuracy") for r in g if r.m("final_test_accuracy") is not None]
            tr = [r.m("seconds_train") for r in g if r.m("seconds_train") is not None]
            wall = [r.m(WALL) for r in g if r.m(WALL) is not None]
            rows.append([p, model, pc_text(pc), *([self.condition_text(cond, fields)] if cond_col else []), str(len(g)),
                         seeds_text(g), pm(acc, ACC), pm(tr, SEC), pm(wall, SEC), to_target_text(g)])
            ids.append([r.run_id for r in g])
        s.add(Table(["Platform", "Model", "Images/class", *(["Condition"] if cond_col else []), "Runs", "Seeds",
                     "Test accuracy", "Train s", "End-to-end s", "Train s to target"], rows, ids,
                    id="time-accuracy-table",
                    caption="one row per platform and condition (what must be equal for runs to be compared: "
                            "see Method); mean ± std over its runs, which differ only by seed; a lone run shows its "
                            "own value; seeds: distinct seeds"))
        note = self.split_note(groups)
        if note is not None:
            s.add(note)
        self._between_platforms(s, runs, [("final_test_accuracy", "test accuracy"), ("seconds_train", "train seconds"),
                                          (WALL, "end-to-end seconds")])
        return s

    def _between_platforms(self, s: Section, runs: Sequence[Run], metrics: list[tuple[str, str]]) -> None:
        """Platforms compared within each condition (model and images per class included), one value per
        run (stats.compare): never across two conditions."""
        by_cell: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
        for (p, model, pc, cond), g in self.groups(runs).items():
            by_cell[(model, pc, cond)][p] += g
        fields = self.condition_fields(k[2] for k in by_cell)  # over every condition: which one a row tested
        cond_col = bool(fields)
        rows, ids = [], []
        for (model, pc, cond), per_platform in sorted(by_cell.items(), key=lambda kv: (kv[0][0], kv[0][1] is None,
                                                                                      kv[0][1] or 0, kv[0][2].key)):
            if len(per_platform) < 2:
                continue
            where = f", {self.condition_text(cond, fields)}" if cond_col else ""
            for metric, label in metrics:
                groups = {p: [r.m(metric) for r in g if r.m(metric) is not None] for p, g in per_platform.items()}
                cmp = stats.compare(f"{label}, {model}, {pc_text(pc)}/class{where}", groups, self.alpha)
                sizes = ", ".join(f"{p} {len(v)}" for p, v in groups.items())
                rows.append([model, pc_text(pc), *([self.condition_text(cond, fields)] if cond_col else []), label, sizes,
                             cmp.test_name, stats.fmt_p(cmp.p) if cmp.p is not None else "–", cmp.finding()])
                ids.append([r.run_id for g in per_platform.values() for r in g])
        if rows:
            s.add(Table(["Model", "Images/class", *(["Condition"] if cond_col else []), "Figure", "Runs", "Test", "p",
                         "Finding"], rows, ids, id="time-accuracy-tests",
                        caption="between platforms within one condition, one value per run: exact Mann–Whitney (two "
                                "platforms) or a permutation Kruskal–Wallis then pairwise Mann–Whitney with Holm's "
                                "adjustment; effect: ratio of medians with a bootstrap 95% interval"))
        else:
            s.add(Para("No condition (model, images per class and the rest, see Method) has runs on two or more "
                       "platforms yet, so no difference between platforms is tested or called here.", "note"))

    def ablation(self) -> Section:
        s = Section("ablation", "Accuracy vs images per class")
        runs = [r for r in self.store.training if r.per_class is not None and r.m("final_test_accuracy") is not None]
        if len({r.per_class for r in runs}) < 2:
            s.add(Para("No runs at two or more images-per-class values yet: `platbench sweep --per-class 5,20,80,320,1280`.",
                       "empty"))
            return s
        series, rows, ids = [], [], []
        by_series: dict[tuple, dict[int, list[Run]]] = defaultdict(lambda: defaultdict(list))
        groups = self.groups(runs, across=("per_class",))
        for (p, model, _, cond), g in groups.items():  # one line per platform and condition, images per class along it
            for r in g:
                by_series[(p, model, cond)][r.per_class].append(r)
        fields = self.condition_fields(k[2] for k in by_series)
        cond_col = bool(fields)
        for (p, model, cond), points in by_series.items():
            xs = sorted(points)
            accs = [[r.m("final_test_accuracy") for r in points[x]] for x in xs]
            ms = [stats.mean_std(a) for a in accs]
            series.append({"platform": p, "model": model, "condition": self.condition_text(cond, fields) if cond_col else None,
                           "x": xs, "mean": [m for m, _ in ms], "std": [sd for _, sd in ms],
                           "seeds": [(x, a) for x, al in zip(xs, accs) for a in al]})
            for x, a in zip(xs, accs):
                rows.append([p, model, *([self.condition_text(cond, fields)] if cond_col else []), str(x),
                             seeds_text(points[x]), str(len(a)), pm(a, ACC), ACC.format(min(a)), ACC.format(max(a))])
                ids.append([r.run_id for r in points[x]])
        s.add(Figure("fig-ablation", "Test accuracy against training images per class",
                     figures.ablation(series, self.style),
                     "Lines join the mean over seeds; the band is ± one standard deviation (drawn where a point has "
                     "two or more seeds); small dots are the single runs.", self.cite(runs)))
        s.add(Table(["Platform", "Model", *(["Condition"] if cond_col else []), "Images/class", "Seeds", "Runs",
                     "Test accuracy", "Min", "Max"], rows, ids, id="ablation-table",
                    caption="one line per platform and condition but for images per class; seeds: distinct seeds"))
        note = self.split_note(self.groups(runs))
        if note is not None:
            s.add(note)
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
        fields = self.condition_fields(k[3] for k in groups)
        cond_col = bool(fields)
        for (p, model, pc, cond), g in groups.items():
            pts.append({"platform": p, "model": model, "per_class": pc, "runs": g,
                        "condition": self.condition_text(cond, fields) if cond_col else None,
                        "accuracy": stats.mean_std([r.m("final_test_accuracy") for r in g])[0],
                        "throughput": stats.mean_std([first(r, ev) for r in g])[0]})
        for pt, on in zip(pts, stats.pareto([(q["throughput"], q["accuracy"]) for q in pts])):
            pt["frontier"] = on
        s.add(Figure("fig-pareto", "Test accuracy against inference throughput as evaluated (with TTA), frontier marked",
                     figures.pareto(pts, self.style),
                     "One point per platform and condition (means over its runs, which differ only by seed). A point is on "
                     "the frontier when no other group is at least as accurate and at least as fast, and better in "
                     "one of the two. Throughput is the trainer's own timed pass over the test set as the accuracy "
                     "was measured: with the preset's test-time augmentation (`evaluated_throughput_images_per_s`); "
                     "the plain model's speed, what `serve` answers, is in the table.", self.cite(runs)))
        front = [q for q in pts if q["frontier"]]
        s.add(Para("On the frontier: " + "; ".join(
            f"**{q['platform']} · {q['model']} · {pc_text(q['per_class'])}/class"
            f"{' · ' + q['condition'] if q['condition'] else ''}** "
            f"(accuracy {ACC.format(q['accuracy'])}, {IPS.format(q['throughput'])} images/s as evaluated)"
            for q in front) + "."))
        rows, ids = [], []
        for q in pts:
            g = q["runs"]

            def col(names, f):
                vals = [first(r, names) for r in g if first(r, names) is not None]
                return pm(vals, f) if vals else "–"

            rows.append([q["platform"], q["model"], pc_text(q["per_class"]),
                         *([q["condition"]] if cond_col else []), str(len(g)),
                         pm([r.m("final_test_accuracy") for r in g], ACC),
                         col(THROUGHPUT["plain"], IPS), col(THROUGHPUT["evaluated"], IPS),
                         col(LATENCY["plain"], "{:.3f}"), col(LATENCY["evaluated"], "{:.3f}"),
                         "yes" if q["frontier"] else "no"])
            ids.append([r.run_id for r in g])
        s.add(Table(["Platform", "Model", "Images/class", *(["Condition"] if cond_col else []), "Runs", "Test accuracy",
                     f"Images/s ({SPEED_LABEL['plain']})", f"Images/s ({SPEED_LABEL['evaluated']})",
                     f"ms/image ({SPEED_LABEL['plain']})", f"ms/image ({SPEED_LABEL['evaluated']})", "Frontier"],
                    rows, ids, id="pareto-table",
                    caption="plain model: one forward pass per image, what `serve` answers "
                            "(`plain_throughput_images_per_s`, `plain_latency_ms_per_image`); as evaluated: with the "
                            "preset's test-time augmentation, as the accuracy was measured "
                            "(`evaluated_throughput_images_per_s`, `evaluated_latency_ms_per_image`; runs from before "
                            "the split: `throughput_images_per_s`, `latency_ms_per_image`); – : not logged"))
        return s
