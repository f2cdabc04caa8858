"""The scenario scorecards and the published studies: published figures beside measured runs, and
the usability tables."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

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
