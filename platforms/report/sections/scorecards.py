"""The scenario scorecards and the published studies: published figures beside measured runs, and
the usability tables."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from platforms.core import registry
from platforms.core.stats import pm
from platforms.core.tracking import Tag
from platforms.report.data import Run
from platforms.report.sections.blocks import Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import MS, PRICE, SEC, fmt
from platforms.report.sections.prices import ENDPOINT_PRICE_METRIC


class ScorecardSections(ReportContext):
    """Published figures and usability, from scoring.yaml, the records and the studies file."""

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
        from platforms.scorecard.published import METRICS, PROTOCOL_TEXT, PUBLISHED_FILE, date_text, protocol_differences

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
                gone = name in registry.specs() and registry.spec(name).not_measurable
                rows.append([name, "measured: not measurable (`platbench platforms`)" if gone else "measured: no runs yet",
                             *(["–"] * len(cols)), "0"])
                ids.append([])
                continue
            self.cite(measured)
            # beside the study: only figures measured as the study measured them
            same = {"latency_p50_ms": [r for r in measured if self._as_study(r, "latency_p50_ms")
                                       and self.run_latency(r) is not None],
                    "seconds_1000_requests_at_10": [r for r in measured if self._as_study(r, "seconds_1000_requests_at_10")
                                                    and r.m("load_seconds") is not None],
                    "endpoint_usd_per_hour": [r for r in measured if r.m(ENDPOINT_PRICE_METRIC) is not None]}
            cells = {"latency_p50_ms": (lambda r: self.run_latency(r), MS),
                     "seconds_1000_requests_at_10": (lambda r: r.m("load_seconds"), SEC),
                     "endpoint_usd_per_hour": (lambda r: r.m(ENDPOINT_PRICE_METRIC), PRICE)}
            used = [r for r in measured if any(r in g for g in same.values())]
            rows.append([name, "measured by platbench as the study measured",
                         *[pm([cells[m][0](r) for r in same[m]], cells[m][1]) if same[m] else "–" for m in cols],
                         str(len(used))])
            ids.append([r.run_id for r in used])
            # the other latencies: shown apart, with how their load test differs from the study's
            other = [r for r in measured if r not in same["latency_p50_ms"] and self.run_latency(r) is not None]
            if other:
                why: dict[str, int] = {}
                for r in other:
                    text = ", ".join(protocol_differences(self._settings(r), "latency_p50_ms"))
                    why[text] = why.get(text, 0) + 1
                rows.append([name, "measured by platbench, not comparable: "
                             + "; ".join(f"{t} ({n} run{'s' if n > 1 else ''})" for t, n in why.items())
                             + f" (the study: {PROTOCOL_TEXT['latency_p50_ms']})",
                             pm([self.run_latency(r) for r in other], MS), *(["–"] * (len(cols) - 1)), str(len(other))])
                ids.append([r.run_id for r in other])
        s.add(Table(["Platform", "Source", *[METRICS[m] for m in cols], "Runs"], rows, ids, id="published-figures",
                    caption="published rows: the study's own figures, attributed below, not platbench measurements; "
                            "measured as the study measured: mean ± std over this platform's load and endpoint runs "
                            "whose load test matched the study's (median latency, one median per run: "
                            f"{PROTOCOL_TEXT['latency_p50_ms']}; 1,000 requests at 10: "
                            f"{PROTOCOL_TEXT['seconds_1000_requests_at_10']}, `load_seconds`; without retries a "
                            "connection reset counts as a failed request, as in the study; price: "
                            "`endpoint_usd_per_hour`); not comparable: the latencies of the other runs, with how their "
                            "load test differs, never set beside the study's figure"))
        for study, n in refs.items():
            st = pub.studies[study]
            s.add(Para(f"[{n}] {st.title}, {date_text(st)}; measured by {st.measured_by}; <{st.url}>; "
                       f"figures from its sections named per figure in `{PUBLISHED_FILE}`.",
                       "note"))
        notes = [f"{f.platform}, {METRICS[f.metric]}: {f.notes}" for f in pub.figures if f.notes]
        for text in notes:
            s.add(Para(text, "note"))
        return s

    def _settings(self, run: Run) -> dict:
        """A serving run's load-test settings: its params (load runs) over the load report's settings in its
        artifact (service and endpoint runs)."""
        return {**self.store.load_settings.get(run.run_id, {}), **run.params}

    def _as_study(self, run: Run, metric: str) -> bool:
        """Was the run's load test the study's for this figure (platforms/scorecard/published.py PROTOCOLS)?"""
        from platforms.scorecard.published import protocol_differences

        return not protocol_differences(self._settings(run), metric)

    def usability(self) -> Section:
        from platforms.scorecard import loader
        from platforms.scorecard import table as table_mod
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


def _project(root: Optional[Path]):
    """--root, else $PLATBENCH_ROOT or the nearest folder up from here with scoring.yaml, else the
    checkout this platbench runs from."""
    from platforms.errors import UserError
    from platforms.scorecard.loader import Project

    try:
        return Project.find(root)
    except UserError:
        checkout = Path(__file__).resolve().parents[3]
        if root is None and not os.environ.get("PLATBENCH_ROOT") and (checkout / "scoring.yaml").is_file():
            return Project(checkout)
        raise
