"""Every run with its status, dataset fingerprint, image digest and code commit: where every number comes from."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import condition
from platforms.core.tracking import Tag
from platforms.report.sections.blocks import Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import ACC, IPS, SEC, fmt, pc_text, short, short_commit
from platforms.report.sections.metrics import SPEED_LABEL, THROUGHPUT, WALL, first


class RunsSection(ReportContext):
    """Runs: where every number comes from."""

    def runs(self) -> Section:
        s = Section("runs", "Runs: where every number comes from")
        st = self.store
        training = st.training + st.unfinished
        if not training and not st.serving and not st.batch and not st.excluded:
            s.add(Para(f"No runs in `{st.uri}` yet.", "empty"))
            return s
        # the condition's fields that differ between runs (dataset and image have columns already)
        extra = [f for f in self.varying if f not in ("dataset", "image")]
        rows, ids = [], []
        for r in sorted(training, key=lambda r: r.start_time or 0):
            cond = r.condition
            rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class),
                         *[cond.get(f) or "–" for f in extra], f"`{cond.key}`", fmt(r.seed, "{}"), r.outcome,
                         fmt(r.m("final_test_accuracy"), ACC), fmt(r.m("seconds_train"), SEC), fmt(r.m(WALL), SEC),
                         fmt(first(r, THROUGHPUT["plain"]), IPS), fmt(first(r, THROUGHPUT["evaluated"]), IPS),
                         f"`{short(r.fingerprint)}`",
                         f"`{short(r.image_digest, 19)}`" if r.image_digest else "–", f"`{short_commit(r.commit)}`",
                         r.tags.get(Tag.SWEEP_CELL) and f"{r.sweep} {r.tags.get(Tag.SWEEP_CELL)}" or "–"])
            ids.append([r.run_id])
        s.add(Table(["Run", "Platform", "Model", "Images/class", *[condition.label(f).capitalize() for f in extra],
                     "Condition", "Seed", "Status", "Test accuracy", "Train s",
                     "End-to-end s", f"Images/s ({SPEED_LABEL['plain']})", f"Images/s ({SPEED_LABEL['evaluated']})",
                     "Dataset", "Image", "Commit", "Sweep cell"], rows, ids, id="runs-table",
                    caption="training runs; only status finished enters the figures; condition: the short hash of "
                            "everything that must be equal for two runs to be compared (see Method), with the fields "
                            "that differ between these runs in columns of their own"))
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
