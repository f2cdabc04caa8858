"""How the figures are computed and tested, in the report's own words."""
from __future__ import annotations

from platforms.core import condition, stats
from platforms.core.tracking import Tag
from platforms.report.sections.blocks import Para, Section
from platforms.report.sections.context import ReportContext
from platforms.report.sections.prices import UNVERIFIED


class MethodSection(ReportContext):
    """Method."""

    def method(self) -> Section:
        s = Section("method", "Method")
        s.add(Para("Runs: every run of the `platbench` MLflow experiment (the sweeps' children and plain launches); "
                   "a training run enters the figures when MLflow says FINISHED and its `platbench.status` tag says "
                   "finished. Accuracy is the trainer's final test accuracy (`final_test_accuracy`); training seconds "
                   "exclude evaluation (`seconds_train`); end-to-end seconds run from the launcher starting to the "
                   "results being in MLflow (`seconds_wall`); throughput and latency are the trainer's timed "
                   "inference over the test set, twice: the plain model, one forward pass per image, what `serve` "
                   "answers (`plain_throughput_images_per_s`, `plain_latency_ms_per_image`), and as evaluated, with "
                   "the preset's test-time augmentation (`evaluated_throughput_images_per_s`, "
                   "`evaluated_latency_ms_per_image`; runs from before the split logged only that one, as "
                   "`throughput_images_per_s` and `latency_ms_per_image`). A run the compliance checker failed "
                   f"(`{Tag.CHECK}` = failed) enters no figure; the summary names it."))
        fields = ", ".join(condition.label(f) for f in condition.FIELDS)
        s.add(Para(f"Groups: a run's condition is everything that must be equal for two runs to be compared ({fields}; "
                   f"`platforms/core/condition.py`, recorded on the run as the tag `{Tag.CONDITION}`, its short hash, "
                   "and the params `condition.*`). A group is the runs of one platform under one condition, so they "
                   "differ only by seed; runs of one platform, model and images per class under two conditions are "
                   "two rows, and the table's note names the fields that differ. Platforms are compared only within "
                   "one condition; the ablation compares along images per class and scaling along the device count, "
                   "the rest of the condition equal. Seeds counts distinct seeds, runs counts runs. Tables show mean ± "
                   "sample standard deviation (n − 1); a group with one run shows that run's value."))
        two, three = stats.min_runs_per_group(2, self.alpha), stats.min_runs_per_group(3, self.alpha)
        s.add(Para("Unit of observation: the run. Every test takes one value per run (its accuracy, train seconds, "
                   "upload s/MiB, or the median of its requests' latencies), never the requests of a run pooled: "
                   "requests of one run share a machine, a network path and a warm-up, so they are not independent "
                   "looks at a platform."))
        s.add(Para(f"Tests, valid at a handful of runs: two platforms: two-sided Mann–Whitney with its exact p "
                   f"(every relabelling of the runs enumerated over the joint mid-ranks, so ties are exact too; "
                   f"`scipy.stats.permutation_test`, equal to `scipy.stats.mannwhitneyu(method='exact')` without "
                   f"ties). More platforms: Kruskal–Wallis H with its permutation p (not the χ² approximation, which "
                   f"is wrong at small n), then pairwise Mann–Whitney as above with Holm's step-down adjustment over "
                   f"all pairs. Where there are more than {stats.EXACT_LIMIT:,} relabellings, p comes from "
                   f"{stats.RESAMPLES:,} seeded random ones. A difference is called only when the omnibus p and the "
                   f"pair's Holm-adjusted p are < α = {self.alpha}. Groups with fewer than {stats.MIN_PER_GROUP} runs "
                   f"are left out and named. Effect size: ratio of medians (higher / lower) with a percentile "
                   f"bootstrap 95% interval ({stats.BOOTSTRAP:,} seeded resamples, `scipy.stats.bootstrap`; only from "
                   f"{stats.BOOTSTRAP_MIN} runs a group: resampling 2 or 3 values gives an interval too narrow to "
                   "trust). "
                   f"Every draw is seeded ({stats.SEED}): the same runs give the same report."))
        s.add(Para(f"Too few runs: with n runs per group even fully separated groups have a smallest possible p "
                   f"(two groups of 3: 0.1). When no outcome at the groups' sizes could reach α after Holm's "
                   f"adjustment, the report says there are too few runs and how many per group would be needed, read "
                   f"off the exact distributions: at α = {self.alpha}, {two} runs per platform for two platforms, "
                   f"{three} for three (`platforms.core.stats.min_runs_per_group`)."))
        s.add(Para("Units: every transfer and batch-inference figure is in MiB (2^20 bytes); batch-inference runs "
                   "from before that logged `batch_seconds_per_mb` over 10^6 bytes, converted (× 2^20 / 10^6). "
                   "Upload s/MiB: the staging's seconds over the MiB actually sent (`upload_seconds` ÷ "
                   "`upload_bytes_sent` / 2^20); a run that sent nothing (every shard already staged, "
                   "`upload_bytes_sent` = 0) is counted as cached and in no s/MiB figure."))
        s.add(Para("Scaling: a run's device count is its `world_size` (data-parallel processes, one device each, "
                   "over `nodes` machines; a run from before results schema 3 logged neither and was one process). Its "
                   "training images/s is the images its optimizer steps trained on, all devices together (from its "
                   "`results.json` artifact: epochs completed × steps per epoch × the global batch, which the devices "
                   "split), over its training clock `seconds_train` (evaluation excluded); per device is that over "
                   "`world_size`. Efficiency at N devices is the median per-device images/s at N over the median at "
                   "the group's smallest device count. Time to target is `seconds_to_target` on the same training "
                   "clock; a run that never reached its target counts as not reached."))
        s.add(Para("Pareto frontier: over the group means of test accuracy and inference throughput as evaluated "
                   "(with TTA, as the accuracy was measured), a group is on the frontier when no other group is at "
                   "least as good in both and better in one."))
        s.add(Para("Cost: billed USD and list-price USD are the launchers' own figures (`cost_usd`, "
                   "`cost_list_estimate_usd`); USD/h is the price quote recorded on the run; endpoints are priced "
                   f"per hour × 24 (day), × 730 (month), × 8,760 (year). {UNVERIFIED} marks a figure computed from a "
                   "price-table entry whose status, as recorded on the run's `platbench.price_source` tag, is "
                   f"unverified; the price basis (`{Tag.PRICE_BASIS}`: spot, on-demand, or a spot run priced at "
                   "on-demand because the table has no spot price) is shown where the launcher set it."))
        return s
