"""Where the end-to-end time goes, phase by phase, per platform."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import stats
from platforms.core.stats import pm
from platforms.report import figures
from platforms.report.data import Run
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import SEC
from platforms.report.sections.metrics import OTHER, PHASES, TRAIN_FALLBACK, WALL


class PhasesSection(ReportContext):
    """Time split by phase."""

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
