"""Seconds per MiB moved: the launches' staging and download, batch inference, and `platbench transfer`'s
cold transfers batch by batch."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import stats
from platforms.core.stats import pm
from platforms.report import figures
from platforms.report.data import Run
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext, ordered_platforms
from platforms.report.sections.formats import SPM
from platforms.report.sections.metrics import TRANSFER, UPLOAD, median, transfer_value, upload_cached


class TransferSections(ReportContext):
    """Upload and download s/MiB; cold transfers."""

    def transfer(self) -> Section:
        s = Section("transfer", "Upload and download seconds per MiB")
        panels, rows, ids, cited, verdicts = [], [], [], [], []
        pools = {"training": self.store.training + self.store.unfinished, "batch": self.store.batch + self.store.endpoints}
        cached_total = 0
        for metric, label, pool in TRANSFER:
            runs = [r for r in pools[pool] if transfer_value(r, metric) is not None]
            cached = [r for r in pools[pool] if metric == UPLOAD and upload_cached(r)]
            if not runs and not cached:
                continue
            cached_total += len(cached)
            groups: dict[str, list[Run]] = defaultdict(list)
            for r in runs:
                groups[r.platform].append(r)
            by_cache: dict[str, list[Run]] = defaultdict(list)
            for r in cached:
                by_cache[r.platform].append(r)
            plats = [p for p in self.platforms if p in groups or p in by_cache]
            values = {p: [transfer_value(r, metric) for r in groups[p]] for p in plats if groups.get(p)}
            if values:
                panels.append((label, values))
            for p in plats:
                v = values.get(p, [])
                rows.append([label, p, str(len(v)), SPM.format(float(median(v))) if v else "–", pm(v, SPM),
                             str(len(by_cache[p])) if metric == UPLOAD else "–"])
                ids.append([r.run_id for r in groups.get(p, []) + by_cache.get(p, [])])
            cited += runs
            if values:
                verdicts.append(stats.compare(label, values, self.alpha))
        if not rows:
            s.add(Para("No runs with upload or download s/MiB yet: the cloud launchers log them when they stage the "
                       "dataset and when the job reads it (`platbench launch PLATFORM` of a platform with remote storage); batch inference logs "
                       "its own (`platbench predict`). Local runs read the data in place and move nothing.", "empty"))
            return s
        if panels:
            s.add(Figure("fig-transfer", "Seconds per MiB moved, per platform", figures.boxes(panels, self.style),
                         "Box: quartiles and median; whiskers 1.5 × IQR; dots: the single runs. One observation per "
                         "run, in MiB (2^20 bytes) throughout (upload: `upload_seconds` over the MiB actually sent, "
                         "`upload_bytes_sent` / 2^20; `download_s_per_mb`; batch inference `batch_seconds_per_mib`, "
                         "or a run from before it, `batch_seconds_per_mb` of 10^6 bytes converted); includes runs that failed after their data "
                         "moved; runs whose dataset was already staged sent nothing and are counted, not drawn.",
                         self.cite(cited)))
        s.add(Table(["Figure", "Platform", "Runs", "Median", "Mean ± std", "Cached (sent nothing)"], rows, ids,
                    id="transfer-table",
                    caption="Runs: the runs with a figure (the ones tested); cached: runs that found every shard "
                            "already staged (`upload_bytes_sent` = 0), in no s/MiB figure"))
        if cached_total:
            s.add(Para(f"{cached_total} run(s) sent nothing because every shard of their dataset was already staged "
                       "(in a sweep only the first cell uploads): shown as cached above, left out of the upload "
                       "s/MiB figures and tests, whose s/MiB is over bytes actually sent.", "note"))
        for cmp in verdicts:
            s.add(Para(cmp.summary(), "verdict"))
        return s

    def cold_transfers(self) -> Section:
        """`platbench transfer`: cold upload/download per repeat, in batches of 1,024 images and whole. The
        per-batch distribution is drawn (as the AWS-vs-Azure paper showed it); the tests compare one value
        per repeat (its median batch s/MiB, its whole-dataset s/MiB), never batches pooled as if independent."""
        s = Section("cold-transfer", "Cold transfers, batch by batch (`platbench transfer`)")
        runs = self.store.transfers
        if not runs:
            s.add(Para("No `platbench transfer` runs yet: `platbench transfer PLATFORM --data DIR --repeats N` "
                       "uploads and downloads the dataset cold, in batches of 1,024 images and whole.", "empty"))
            return s
        by_platform: dict[str, list[Run]] = defaultdict(list)
        for r in runs:
            by_platform[r.platform].append(r)
        plats = ordered_platforms(set(by_platform))
        panels = []
        for side in ("upload", "download"):
            dist = {p: [v for r in by_platform[p] for v in self.store.transfer_batches.get(r.run_id, {}).get(side, [])]
                    for p in plats}
            if any(dist.values()):
                panels.append((f"{side} s/MiB per batch", {p: v for p, v in dist.items() if v}))
        if panels:
            s.add(Figure("fig-cold-transfer", "Seconds per MiB, each batch of images (1,024 unless --batch), per platform",
                         figures.boxes(panels, self.style),
                         "Box: quartiles and median of every batch of every repeat; the comparisons below use one "
                         "value per repeat (its median batch), since batches of one repeat share its network path.",
                         self.cite(runs)))
        metrics = [("batch_upload_s_per_mb_median", "batch upload s/MiB (median batch of a repeat)"),
                   ("batch_download_s_per_mb_median", "batch download s/MiB (median batch of a repeat)"),
                   ("upload_s_per_mb", "whole upload s/MiB (sharded, over bytes sent)"),
                   ("download_s_per_mb", "whole download s/MiB (sharded)")]
        rows, ids = [], []
        for p in plats:
            rs = by_platform[p]
            cells = []
            for name, _ in metrics:
                v = [r.m(name) for r in rs if r.m(name) is not None]
                cells.append(SPM.format(float(median(v))) if v else "–")
            rows.append([p, str(len(rs)), *cells])
            ids.append([r.run_id for r in rs])
        s.add(Table(["Platform", "Repeats", *[label for _, label in metrics]], rows, ids, id="cold-transfer-table",
                    caption="Medians over repeats; one MLflow run per repeat (kind `transfer`)"))
        if len(plats) > 1:
            for name, label in metrics:
                values = {p: [r.m(name) for r in by_platform[p] if r.m(name) is not None] for p in plats}
                values = {p: v for p, v in values.items() if v}
                if len(values) > 1:
                    s.add(Para(stats.compare(label, values, self.alpha).summary(), "verdict"))
        return s
