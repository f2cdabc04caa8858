"""What every section reads: the runs, α, the project root, the platforms in report order, the
figure style, and the runs cited so far."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from platforms.core import registry
from platforms.report import figures
from platforms.report.data import Run, Store
from platforms.report.sections.blocks import Section
from platforms.report.sections.metrics import median


class ReportContext:
    def __init__(self, store: Store, alpha: float = 0.05, root: Optional[Path] = None):
        self.store, self.alpha, self.root = store, alpha, root
        platforms = ordered_platforms({r.platform for r in store.training + store.unfinished + store.serving + store.batch})
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

    def groups(self, runs: Sequence[Run]) -> dict[tuple, list[Run]]:
        """Runs by platform × model × images per class, platforms in report order."""
        out: dict[tuple, list[Run]] = defaultdict(list)
        for r in runs:
            out[(r.platform, r.model, r.per_class)].append(r)
        order = {p: i for i, p in enumerate(self.platforms)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1],
                                                        kv[0][2] is None, kv[0][2] or 0)))

    def run_latency(self, r: Run) -> Optional[float]:
        """A serving run's one latency figure (latency and published sections): the median of its
        requests, else the p50 the load tool logged."""
        samples = self.store.latency_samples.get(r.run_id)
        return median(samples) if samples else r.m("load_latency_p50_ms")


def ordered_platforms(platforms: set[str]) -> list[str]:
    """The order platforms appear in every figure and table: this machine's (the in-process platform, the
    reference the others are compared with) first, then by name."""
    first = registry.this_machine()
    return sorted(platforms, key=lambda p: (p != first, p))
