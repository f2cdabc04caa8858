"""A reproduced study's page (`platbench reproduce STUDY`, and a section of the report for each study with runs):
the study's protocol, each figure it published beside platbench's for the same quantity in the study's unit, with
n and intervals and one line saying what still differs, and every figure that has no platbench value with why."""
from __future__ import annotations

from typing import Optional

from platforms.report.sections.blocks import Para, Section, Table
from platforms.report.sections.context import ReportContext

PARETO = ("parameters_millions", "test_accuracy", "test_top5_accuracy", "test_images_per_s", "seconds_per_epoch")
PARETO_COLUMNS = ("Parameters (M)", "Test accuracy (%)", "Top-5 (%)", "Images/s", "Seconds per epoch")


def _num(v: Optional[float]) -> str:
    if v is None:
        return "–"
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:.2f}" if a >= 1 else f"{v:.4g}"


def _as_published(v: float) -> str:
    return format(v, ",.10g")


def published_text(f, unit: str) -> str:
    stat = "" if f.stat == "value" else f"{f.stat} "
    upper = f"–{_as_published(f.upper)}" if f.upper is not None else ""
    spread = f" ± {_as_published(f.spread)}" if f.spread is not None else ""
    n = f" (n = {f.n})" if f.n else ""
    return f"{stat}{_as_published(f.value)}{upper}{spread} {unit}{n}"


def measured_text(values: list[float], unit: str, stat: str = "mean") -> str:
    """Mean ± sd with n and the 95% interval; beside a published median, our median with n and the IQR."""
    from platforms.reproduce.measure import interval

    mean, sd, ci = interval(values)
    unit = f" {unit}" if unit else ""
    if mean is None:
        return "–"
    if stat == "median" and len(values) > 1:
        import statistics

        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return f"median {_num(statistics.median(values))}{unit} (n = {len(values)}; IQR {_num(q1)}–{_num(q3)})"
    if sd is None:
        return f"{_num(mean)}{unit} (n = 1)"
    return f"{_num(mean)} ± {_num(sd)}{unit} (n = {len(values)}; 95% CI {_num(ci[0])}–{_num(ci[1])})"


class StudySections(ReportContext):
    """The study pages: one section per study whose runs are in the store (study_section for any)."""

    def studies(self) -> list[Section]:
        from platforms.reproduce import measure, protocol

        out = []
        for name in protocol.names():
            if measure.study_runs(self.store, name)["training"] or measure.study_runs(self.store, name)["load"]:
                out.append(self.study_section(protocol.load(name)))
        return out

    def study_section(self, proto) -> Section:
        from platforms.reproduce import measure

        s = Section(f"study-{proto.study}", f"Reproduced study: {proto.title}")
        p = proto
        s.add(Para(f"Published by {p.by} ({p.when}), <{p.url}>. Every published figure below is the study's, quoted "
                   f"from it (the section is named in each row), never platbench's; platbench's figures come from "
                   f"the MLflow runs tagged `{measure.STUDY_TAG}={p.study}` (`platbench reproduce {p.study}`)."))
        s.add(Para("Protocol: " + self._protocol_text(p)))
        s.add(Para("Theirs: " + "; ".join(f"{k} — {v}" for k, v in p.theirs.items()) + "."))
        ran = measure.ran_platforms(self.store, p.study)
        runs = measure.study_runs(self.store, p.study)
        self.cite(runs["training"] + runs["load"])
        if not ran:
            s.add(Para(f"No runs of this study yet: `platbench reproduce {p.study}` makes them.", "empty"))
        else:
            n_unf = len(runs["unfinished"])
            s.add(Para(f"platbench ran it on {', '.join(ran)}: {len(runs['training'])} finished training run(s)"
                       + (f", {n_unf} not finished (left out)" if n_unf else "")
                       + f", {len(runs['load'])} load run(s); data "
                       + ", ".join(sorted({f'`{r.tags.get("platbench.dataset") or "?"}`' for r in runs['training']}) or ["–"])
                       + "."))
        if any(f.model for f in p.figures):
            self._pareto(s, p, ran)
        else:
            self._beside(s, p, ran)
        self._training(s, p, runs["training"])
        self._serving(s, p, runs["load"])
        self._not_measured(s, p, runs["load"])
        return s

    def _training(self, s: Section, p, runs: list) -> None:
        """platbench's training runs of the recipe, whether or not the study published a figure for them."""
        from platforms.reproduce.execute import LR_TAG

        groups: dict[tuple, list] = {}
        for r in runs:
            groups.setdefault((r.platform, r.model, r.tags.get(LR_TAG) or "", r.per_class), []).append(r)
        rows, ids = [], []
        for (platform, model, lr, pc), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                                 kv[0][3] is None, kv[0][3] or 0)):
            acc = [100 * r.m("final_test_accuracy") for r in rs if r.m("final_test_accuracy") is not None]
            secs = [r.m("seconds_train") for r in rs if r.m("seconds_train") is not None]
            rows.append([platform, model + (f" lr×{lr}" if lr else ""), "all" if pc is None else str(pc),
                         measured_text(acc, "%"), measured_text(secs, "s")])
            ids.append([r.run_id for r in self.cite(rs)])
        if rows:
            s.add(Table(["Platform", "Model", "Images per class", "Test accuracy", "Seconds training"], rows, ids,
                        id=f"study-{p.study}-training",
                        caption="platbench's training runs of the study's recipe (seeds pooled: mean ± std, n)."))

    def _serving(self, s: Section, p, runs: list) -> None:
        """platbench's request plans per platform, deployment target and model (a row each, never pooled),
        whether or not the study published a figure for them (Roboflow's per-target speeds are a chart)."""
        from platforms.reproduce.execute import PLAN_TAG
        from platforms.reproduce.measure import target_of

        order = {rp.id: i for i, rp in enumerate(p.requests)}
        groups: dict[tuple, list] = {}
        for r in runs:
            if r.finished:
                groups.setdefault((r.platform, target_of(r), r.model or "", r.tags.get(PLAN_TAG) or ""), []).append(r)
        rows, ids = [], []
        for (platform, target, model, plan), rs in sorted(groups.items(), key=lambda kv: (
                kv[0][0], kv[0][1], kv[0][2], order.get(kv[0][3], len(order)))):
            get = lambda name: [r.m(name) for r in rs if r.m(name) is not None]  # noqa: E731
            rows.append([f"{platform}/{target}", model or "–", plan, measured_text(get("load_latency_p50_ms"), "ms"),
                         measured_text(get("load_images_per_s"), "images/s"), measured_text(get("load_failed"), "")])
            ids.append([r.run_id for r in self.cite(rs)])
        if rows:
            s.add(Table(["Platform/target", "Model", "Request plan", "Median latency", "Images per second", "Failed"],
                        rows, ids, id=f"study-{p.study}-serving",
                        caption="platbench's request plans by deployment target (network included: loopback HTTP to "
                                "this machine's server, the platform's SDK to an endpoint); one row per target, model "
                                "and plan, runs pooled only within it."))

    # ------------------------------------------------------------------------------------------ parts
    @staticmethod
    def _protocol_text(p) -> str:
        parts = [p.recipe.what.rstrip(".") + f" (models {', '.join(p.recipe.models)}, {p.recipe.epochs} epochs"
                 + ("".join(f", --hp {k}={v}" for k, v in p.recipe.hp.items()))
                 + (f", lr × {' and × '.join(f'{x:g}' for x in p.recipe.lr_factors)}" if p.recipe.lr_factors else "") + ")"]
        if p.recipe.select_by:
            parts.append(f"per model: {p.recipe.select_by}")
        if p.ladder:
            parts.append(f"ladder {', '.join(map(str, p.ladder))} images per class")
        if p.validation:
            parts.append(f"validation: {p.validation}")
        parts += [f"requests `{r.id}`: {r.what} ({r.requests} at concurrency {r.concurrency}, {r.retries} retries; "
                  f"failure: {r.failure})" for r in p.requests]
        if p.requests:
            parts.append("served at " + ", ".join(p.targets) + " on this machine and on each platform's endpoint, "
                         "each target measured apart")
        if p.batch_unit:
            parts.append(f"batch unit: {p.batch_unit.images} images")
        if p.statistic:
            parts.append(f"statistic: {p.statistic.theirs}, on {p.statistic.values} — labelled as theirs, beside "
                         f"{p.statistic.ours}")
        if p.cost_horizon:
            parts.append("cost horizon (theirs): " + ", ".join(f"{k} = {v:g} h" for k, v in p.cost_horizon.hours.items())
                         + "; platbench's month is 730 h")
        local_hp = "".join(f", --hp {k}={v}" for k, v in p.local.hp.items()) + "".join(
            f", {m}: " + " ".join(f"--hp {k}={v}" for k, v in hp.items()) for m, hp in p.local.model_hp.items())
        parts.append(f"here: {'images per class ' + ', '.join(map(str, p.local.ladder)) if p.local.ladder else 'every image'}, "
                     f"{p.local.epochs} epoch(s){local_hp}, seeds {', '.join(map(str, p.local.seeds))} (the local small "
                     "version; `--full` runs the study's ladder and epochs)")
        return "; ".join(parts) + "."

    def _ours_platform(self, p, fig, ran: list[str]) -> Optional[str]:
        mapped = p.platforms.get(fig.platform)
        if mapped in ran:
            return mapped
        return ran[0] if ran else None

    def _beside(self, s: Section, p, ran: list[str]) -> None:
        from platforms.reproduce import measure
        from platforms.reproduce.protocol import QUANTITIES

        rows, ids = [], []
        for f in p.figures:
            if not f.measurable:
                continue
            label, unit = QUANTITIES[f.quantity]
            mapped = p.platforms.get(f.platform)
            if f.quantity in measure.HORIZON_UNIT:
                ours_p = mapped
                pool = [r for r in self.store.serving if r.platform == mapped] if mapped else []
            else:
                ours_p = self._ours_platform(p, f, ran)
                pool = None
            served = measure.served(self.store, p.study, ours_p, f.quantity) if ours_p else [(None, None)]
            several = len({t for t, _ in served}) > 1 or len(p.targets) > 1
            for target, model in served:  # a row per deployment target and model: never pooled
                got = measure.measure(p, f.quantity, self.store, ours_p, pool, model, target)  # no platform: a note
                where = ours_p and (f"{ours_p}/{target}" if target and several else ours_p)
                rows.append(self._row(p, f, label, unit, mapped, ours_p, where, model, got))
                ids.append([r.run_id for r in self.cite(got.runs)])
        if rows:
            s.add(Table(["Quantity", "Theirs", "Published (theirs)", "platbench", "What still differs", "Source"], rows,
                        ids, id=f"study-{p.study}-figures",
                        caption="Published figures are the study's own; platbench's are mean ± sample std over runs (or "
                                "batches), with n and the 95% t interval of the mean where n ≥ 2; beside a "
                                "published median, platbench's median with n and the interquartile range."))

    @staticmethod
    def _row(p, f, label: str, unit: str, mapped, ours_p, where, model, got) -> list[str]:
        from platforms.reproduce import measure

        differs = []
        if ours_p and mapped != ours_p and f.quantity not in measure.HORIZON_UNIT:
            differs.append(f"platbench ran on {ours_p}, not on {f.platform}")
        if f.differs:
            differs.append(f.differs)
        if got.note:
            differs.append(got.note)
        hours = measure.implied_hours(p, f)
        if hours is not None:
            differs.append(f"their figure implies {hours:.2f} h")
        if not got.n:
            differs.append(f"no priced endpoint run of {mapped}" if f.quantity in measure.HORIZON_UNIT and mapped
                           else "no platform for it in platbench" if f.quantity in measure.HORIZON_UNIT
                           else "no run of this study measured it yet")
        who = f"{where or '–'}" + (f" · {model}" if model else "")
        ours = f"{who}: {measured_text(got.values, unit, f.stat)}" if got.n else f"{who}: –"
        return [label, f.platform, published_text(f, unit), ours, "; ".join(differs) or "same protocol", f.section]

    def _pareto(self, s: Section, p, ran: list[str]) -> None:
        from platforms.core.stats import pareto
        from platforms.reproduce import measure

        theirs: dict[str, dict[str, float]] = {}
        for f in p.figures:
            if f.model:
                theirs.setdefault(f.model, {})[f.quantity] = f.value
        rows = [[m] + ["–" if v.get(q) is None else _as_published(v[q]) for q in PARETO] for m, v in theirs.items()]
        section = next(f.section for f in p.figures if f.model)
        s.add(Table(["Model (theirs)", *PARETO_COLUMNS], rows, id=f"study-{p.study}-published",
                    caption=f"Published: {p.by}, {section}; {p.theirs.get('dataset', '')}, {p.theirs.get('hardware', '')}. "
                            "Rows as the study sorts them (throughput up, accuracy down)."))
        for platform in ran:
            table = measure.per_model(p, self.store, platform)
            if not table:
                continue
            models = list(table)
            means = {m: {q: measure.interval(table[m][q].values)[0] for q in PARETO} for m in models}
            points = [(means[m]["test_accuracy"] or 0.0, means[m]["test_images_per_s"] or 0.0) for m in models]
            front = pareto(points)
            rows, ids = [], []
            for m, on in sorted(zip(models, front), key=lambda t: means[t[0]]["test_images_per_s"] or 0):
                cells = [measured_text(table[m][q].values, "") for q in PARETO]
                rows.append([m + (" (frontier)" if on else ""), *cells, table[m]["lr"].note or "the preset's"])
                ids.append([r.run_id for r in self.cite(table[m]["test_accuracy"].runs)])
            s.add(Table(["Model (platbench)", *PARETO_COLUMNS, "lr kept"], rows, ids, id=f"study-{p.study}-{platform}",
                        caption=f"platbench on {platform}: per model the run the recipe keeps, sorted as the study's (images/s up); frontier = pareto-efficient "
                                "in test accuracy × images/s. What still differs: their TensorFlow Hub models fine-tuned "
                                "on Caltech-256 on a T4 with data loading in the throughput; ours platbench's presets on "
                                "the data above, throughput of the plain network (no test-time augmentation) at the eval batch size, data already in memory."))

    @staticmethod
    def _targets_skipped(p, loads: list) -> list[tuple[str, str]]:
        """This machine's protocol targets that served no request plan, with why reproduce skips them (as this
        machine sees it: the page is written where the runs were made, by `platbench reproduce`)."""
        from platforms.core import registry
        from platforms.reproduce.measure import target_of
        from platforms.reproduce.plan import target_skipped

        here = registry.this_machine()
        ran = {target_of(r) for r in loads if r.platform == here}
        if not p.requests or not ran:
            return []
        return [(f"{here}/{t}", f"skipped: {target_skipped(t) or 'no run of this target recorded'}")
                for t in p.targets if t not in ran]

    def _not_measured(self, s: Section, p, loads: list) -> None:
        from platforms.reproduce.protocol import QUANTITIES

        rows = [[f"{QUANTITIES[f.quantity][0]} — {f.platform}", published_text(f, QUANTITIES[f.quantity][1]), f.why_not, f.section]
                for f in p.figures if not f.measurable]
        rows += [[u.what, "–", u.why, "–"] for u in p.unmeasured]
        rows += [[f"request plans at {where}", "–", why, "–"] for where, why in self._targets_skipped(p, loads)]
        rows += [[f"protocol step: {n}", "–", "not built in platbench yet", "–"] for n in p.not_built]
        if rows:
            s.add(Table(["Not measured here", "Published (theirs)", "Why", "Source"], rows, id=f"study-{p.study}-unmeasured"))
