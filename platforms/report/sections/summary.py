"""The report's opening: what it covers (runs, platforms, sweeps, runs left out) and how to read it."""
from __future__ import annotations

from platforms.core import stats
from platforms.core.tracking import Tag
from platforms.report.sections.blocks import Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import fmt


class SummarySection(ReportContext):
    """What this report covers."""

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
