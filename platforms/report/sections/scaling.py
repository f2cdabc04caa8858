"""Training images/s per device and time to target against device count (world_size)."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import registry
from platforms.core.stats import pm
from platforms.report import data, figures
from platforms.report.data import Run
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import ACC, IPS, pc_text, to_target_text
from platforms.report.sections.metrics import median, train_images_per_s


class ScalingSection(ReportContext):
    """Groups run at two or more device counts."""

    def scaling(self) -> Section:
        """Groups run at two or more device counts: training images/s in all and per device, the per-device
        efficiency against the group's smallest device count, time to target and accuracy per count."""
        s = Section("scaling", "Scaling: training images/s per device and time to target against device count")
        st = self.store
        by_group: dict[tuple, dict[int, list[Run]]] = {}
        for key, g in self.groups(data.scaling_runs(st.training), across=(data.SCALED,)).items():
            by_group[key] = defaultdict(list)
            for r in g:
                by_group[key][r.world_size].append(r)
        if not by_group:
            s.add(Para("No platform × model × images-per-class group has finished runs at two or more device counts "
                       f"yet: run it again on more devices, e.g. `platbench launch {registry.this_machine()} "
                       "--devices 2`.", "empty"))
            return s
        rows, ids, series = [], [], []
        fields = self.condition_fields(k[3] for k in by_group)
        cond_col = bool(fields)
        for (p, model, pc, cond), per_count in by_group.items():
            ips = {n: [v for r in g if (v := train_images_per_s(r, st.train_images.get(r.run_id))) is not None]
                   for n, g in per_count.items()}
            per_device = {n: [v / n for v in vals] for n, vals in ips.items()}
            counts = sorted(per_count)
            base = next((n for n in counts if per_device[n]), None)
            for n in counts:
                g = per_count[n]
                eff = (f"{median(per_device[n]) / median(per_device[base]):.2f}"
                       if base is not None and per_device[n] else "–")
                nodes = ", ".join(str(x) for x in sorted({r.nodes for r in g}))
                rows.append([p, model, pc_text(pc), *([self.condition_text(cond, fields)] if cond_col else []), str(n), nodes,
                             str(len(g)),
                             pm(ips[n], IPS) if ips[n] else "–", pm(per_device[n], IPS) if per_device[n] else "–",
                             eff, to_target_text(g),
                             pm([r.m("final_test_accuracy") for r in g if r.m("final_test_accuracy") is not None], ACC)
                             if any(r.m("final_test_accuracy") is not None for r in g) else "–"])
                ids.append([r.run_id for r in g])
            with_ips = [n for n in counts if per_device[n]]
            if with_ips:
                series.append({"platform": p, "model": model, "per_class": pc, "x": with_ips,
                               "median": [median(per_device[n]) for n in with_ips],
                               "runs": [(n, v) for n in with_ips for v in per_device[n]]})
        runs = self.cite([r for per_count in by_group.values() for g in per_count.values() for r in g])
        if series:
            s.add(Figure("fig-scaling", "Training images/s per device against device count",
                         figures.scaling(series, self.style),
                         "One line per platform and condition but for the device count, through the median over its runs at "
                         "each device count (data-parallel processes, one device each); small dots are the single "
                         "runs. A flat line is perfect scaling.", runs))
        s.add(Table(["Platform", "Model", "Images/class", *(["Condition"] if cond_col else []), "Devices", "Nodes", "Runs", "Train images/s",
                     "Train images/s per device", "Efficiency", "Train s to target", "Test accuracy"], rows, ids,
                    id="scaling-table",
                    caption="devices: `world_size` (runs from before results schema 3 logged none and count as 1); "
                            "train images/s: images trained on by all devices (results.json: epochs × steps per epoch "
                            "× global batch) over the training clock `seconds_train` (evaluation excluded), mean ± std "
                            "over runs; per device: that over the device count; efficiency: median per-device images/s "
                            "over the median at the group's smallest device count (1.00 = perfect scaling)"))
        missing = {rid: why for rid, why in st.train_images_missing.items() if rid in {r.run_id for r in runs}}
        if missing:
            s.add(Para("No training images/s for " + "; ".join(f"`{rid}` ({why})" for rid, why in missing.items())
                       + ".", "note"))
        return s
