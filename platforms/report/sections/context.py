"""What every section reads: the runs, α, the project root, the platforms in report order, the
figure style, and the runs cited so far."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from platforms.core import condition, registry
from platforms.report import figures
from platforms.report.data import Run, Store
from platforms.report.sections.blocks import Para, Section
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

    def groups(self, runs: Sequence[Run], across: Sequence[str] = ()) -> dict[tuple, list[Run]]:
        """Runs by platform and condition (platforms/core/condition.py), keyed (platform, model, images per
        class, condition), platforms in report order: the runs of a group differ only by seed. `across`:
        condition fields left out of the key because the section compares along them (scaling: devices)."""
        out: dict[tuple, list[Run]] = defaultdict(list)
        for r in runs:
            out[(r.platform, r.model, r.per_class, r.condition.without(*across))].append(r)
        order = {p: i for i, p in enumerate(self.platforms)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1],
                                                        kv[0][2] is None, kv[0][2] or 0, kv[0][3].key)))

    @property
    def varying(self) -> list[str]:
        """The condition fields that differ between the report's training runs (model and images per
        class have columns of their own): the Runs table's extra columns."""
        runs = self.store.training + self.store.unfinished
        return [f for f in condition.varying(r.condition for r in runs) if f not in SHOWN]

    @staticmethod
    def condition_fields(conds) -> list[str]:
        """The condition fields that differ between a table's groups: what its Condition column names
        (none: the table has no such column, its groups differ only in the columns it has)."""
        return [f for f in condition.varying(conds) if f not in SHOWN]

    @staticmethod
    def condition_text(cond: condition.Condition, fields: list[str]) -> str:
        """A group's condition as its table cell: the fields that differ between the table's groups."""
        return " · ".join(f"{condition.label(f)} {_short(f, cond.get(f))}" for f in fields
                          if f in dict(cond.values)) or "–"

    def split_note(self, groups: dict[tuple, list[Run]]) -> Optional[Para]:
        """Names every platform × model × images-per-class whose runs ran under more than one condition,
        and the fields that differ: those runs are not pooled into one row."""
        conds: dict[tuple, list] = defaultdict(list)
        for (p, model, pc, cond) in groups:
            conds[(p, model, pc)].append(cond)
        split = [f"{p} · {model} · {'all' if pc is None else pc}/class ({len(cs)} rows: they differ in "
                 + ", ".join(condition.label(f) for f in condition.varying(cs)) + ")"
                 for (p, model, pc), cs in conds.items() if len(cs) > 1]
        if not split:
            return None
        return Para("Not pooled: runs of one platform, model and images per class that differ in anything but the "
                    "seed are different experiments, so each condition has its own row: " + "; ".join(split) + ".",
                    "note")

    def run_latency(self, r: Run) -> Optional[float]:
        """A serving run's one latency figure (latency and published sections): the median of its
        requests, else the p50 the load tool logged."""
        samples = self.store.latency_samples.get(r.run_id)
        return median(samples) if samples else r.m("load_latency_p50_ms")


SHOWN = ("model", "per_class")  # condition fields every group table has a column for


def _short(field: str, value: Optional[str]) -> str:
    if value is None:
        return "none recorded"
    return value.split(":")[-1][:12] if field in ("dataset", "image") else value


def ordered_platforms(platforms: set[str]) -> list[str]:
    """The order platforms appear in every figure and table: this machine's (the in-process platform, the
    reference the others are compared with) first, then by name."""
    first = registry.this_machine()
    return sorted(platforms, key=lambda p: (p != first, p))
