"""Serving latency: every request drawn, one median per run tested."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import stats
from platforms.core.tracking import Tag
from platforms.report import figures
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import IPS, MS, fmt


class LatencySection(ReportContext):
    """Serving latency distributions."""

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
