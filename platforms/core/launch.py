"""`platbench launch PLATFORM`: the same steps for every platform, and the run's MLflow record.

check → (plan | stage → submit → wait → collect → import into MLflow) → teardown, always.

`--baseline RUN` compares the new run with an earlier one, and only when both ran the same image: the
image digest (MLflow tag platbench.image_digest, results.json's image_digest; none for a run not made from
an image) is checked before anything is created when the launch knows its digest up front, and always
against the digest the trainer recorded; a difference is refused unless --allow-image-mismatch."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from platforms.core import registry, tracking
from platforms.core.api import Feature, Job, Kind, Outcome, render_plan
from platforms.core.emulator import RUNNER_TAG
from platforms.core.progress import JobProgress
from platforms.core.settings import typed_overrides
from platforms.errors import UserError

MLFLOW_STATUS = {"finished": "FINISHED", "preempted": "KILLED", "killed": "KILLED", "failed": "FAILED"}
NO_IMAGE = "none (not run from an image)"
BASELINE_TAG = "platbench.baseline_run_id"
MISMATCH_TAG = "platbench.image_mismatch_allowed"
# what a baseline comparison shows: label, MLflow metric of the baseline, results.json path of the new run
COMPARED = (
    ("test accuracy", "final_test_accuracy", ("test_accuracy",)),
    ("train seconds", "seconds_train", ("seconds", "train")),
    ("seconds to target", "seconds_to_target", ("seconds", "to_target")),
    ("total seconds", "seconds_total", ("seconds", "total")),
    ("throughput images/s, plain model", "plain_throughput_images_per_s", ("plain_throughput_images_per_s",)),
    ("latency ms/image, plain model", "plain_latency_ms_per_image", ("plain_latency_ms_per_image",)),
    ("throughput images/s, as evaluated", "evaluated_throughput_images_per_s", ("evaluated_throughput_images_per_s",)),
    ("latency ms/image, as evaluated", "evaluated_latency_ms_per_image", ("evaluated_latency_ms_per_image",)),
)


def find_run(ref: str, what: str = "--baseline"):
    """An MLflow run by id or by a unique prefix of it (`platbench runs` shows 6-character prefixes), or by the
    run_id of its results.json (the trainer's, recorded as a tag): one run, two ids, either finds it."""
    c = tracking.client()
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    runs = [r for r in c.search_runs([exp.experiment_id], max_results=50_000)
            if r.info.run_id.startswith(ref) or r.data.tags.get(tracking.Tag.RESULTS_RUN_ID, "").startswith(ref)] \
        if ref and exp is not None else []
    if len(runs) != 1:
        raise UserError(f"{what} {ref!r} matches {'no' if not runs else len(runs)} runs in "
                        f"{tracking.tracking_uri()} (give more of the run id, MLflow's or results.json's: "
                        "`platbench runs`)")
    return runs[0]


def image_mismatch(baseline, digest: Optional[str], image_id: Optional[str] = None) -> Optional[str]:
    """Why `baseline` and a run made with image `digest` (and image ID `image_id`) must not be compared, or
    None. When both runs know their image ID (the config digest) it decides: a cloud run records the
    manifest digest it pulled, a compose or `launch docker` run the image ID, and the same image then has
    two different digests."""
    their_id = baseline.data.tags.get(tracking.Tag.IMAGE_ID) or None
    if their_id and image_id:
        if their_id == image_id:
            return None
        digest, theirs = image_id, their_id
    else:
        theirs = baseline.data.tags.get(tracking.Tag.IMAGE_DIGEST) or None
    if theirs == (digest or None):
        return None
    return (f"baseline run {baseline.info.run_id[:8]} ({baseline.data.tags.get(tracking.Tag.PLATFORM, '?')}) was "
            f"made with image {theirs or NO_IMAGE}, this run with {digest or NO_IMAGE}: comparing them would mix "
            "two builds of the trainer; run both from the same image, or pass --allow-image-mismatch to compare "
            "anyway")


def software_mismatch(baseline, results) -> Optional[str]:
    """Why `baseline` and `results` (a new run's results.json) ran different software, or None. A baseline
    recorded before versions were (no platbench.software.* tags) cannot be shown to match: refused too."""
    mine = results.software.model_dump()
    theirs = {k[len(tracking.Tag.SOFTWARE):]: v for k, v in baseline.data.tags.items()
              if k.startswith(tracking.Tag.SOFTWARE)}
    differ = [f"{k} {theirs.get(k) or 'unknown'} vs {mine[k] or 'none'}" for k in mine
              if (theirs.get(k) or None) != (str(mine[k]) if mine[k] is not None else None)]
    if not differ:
        return None
    return (f"baseline run {baseline.info.run_id[:8]} ran other software ({'; '.join(differ)}): the difference would "
            "mix the platform with the software stack; pass --allow-version-mismatch to compare anyway")


def compare(baseline, results) -> list[tuple[str, Optional[float], Optional[float], Optional[float]]]:
    """(label, baseline, this run, this/baseline) for the figures in COMPARED."""
    data, rows = results.model_dump(), []
    for label, metric, path in COMPARED:
        mine = data
        for key in path:
            mine = mine.get(key) if isinstance(mine, dict) else None
        theirs = baseline.data.metrics.get(metric)
        ratio = mine / theirs if mine is not None and theirs else None
        rows.append((label, theirs, mine, ratio))
    return rows


def refuse_nodes(platform, job: Job) -> None:
    """--nodes N (N > 1) on a platform that lacks multi-node: one line naming why."""
    if job.nodes > 1 and Feature.MULTI_NODE in platform.lacks:
        raise UserError(f"--nodes {job.nodes}: {platform.name} lacks multi-node: {platform.lacks[Feature.MULTI_NODE]}")
    if job.nodes > 1:  # a multi-node platform counts its machines in its own setting
        setting = getattr(platform, "nodes_setting", None) or "its instance count setting"
        raise UserError(f"--nodes {job.nodes}: {platform.name} takes the node count as --set "
                        f"{setting.format(n=job.nodes)}")


def plan_text(platform_name: str, job: Job, settings: dict[str, str], max_usd: Optional[float] = None) -> str:
    """The plan and its cost (platforms/core/cost_plan.py); with max_usd, refused as launch() would refuse it."""
    from platforms.core import cost_plan

    if registry.spec(platform_name).kind == Kind.SERVICE:  # an AutoML service: platforms/core/service_launch.py
        from platforms.core import service_launch

        refuse_service_budget(platform_name, max_usd)
        return (service_launch.plan_text(platform_name, job, settings) + "\n"
                + cost_plan.render([cost_plan.line(platform_name, job, settings)]))
    platform = registry.get(platform_name)(settings)
    refuse_nodes(platform, job)
    typed_overrides(job.hyperparameters)  # a wrong --hp is refused in a dry run as in the launch
    needs = platform.preflight(job)
    cost = [cost_plan.for_platform(platform, job)]
    cost_plan.hold(cost, max_usd)
    return render_plan([f"Plan for {platform.name} ({platform.title}) — nothing is created:"], platform.plan(job),
                     platform.lacks, needs) + "\n" + cost_plan.render(cost, max_usd)


def refuse_service_budget(platform_name: str, max_usd: Optional[float]) -> None:
    if max_usd is not None:
        raise UserError(f"--max-usd: {platform_name} is an AutoML service whose cost is known only after the run; "
                        "a budget is held for training platforms only")


def launch(platform_name: str, job: Job, settings: dict[str, str], progress: JobProgress, baseline=None,
           allow_image_mismatch: bool = False, max_usd: Optional[float] = None) -> tuple[Outcome, str]:
    """Run the job; returns the outcome and the MLflow run id. The run is never left RUNNING.

    baseline: an MLflow run (find_run) this one will be compared with: refused here, before anything is
    created, when this launch's image digest is known and differs (unless allow_image_mismatch).
    max_usd: a budget: refused before anything is created when the cost plan's upper bound exceeds it, and
    held while the job runs (platforms/core/cloud_job.py stops it before its spend crosses the budget)."""
    if registry.spec(platform_name).kind == Kind.SERVICE:  # trains its own model: core/service_launch.py
        if baseline is not None:
            raise UserError(f"{platform_name} trains a model of its own: there is no image run to compare with --baseline")
        refuse_service_budget(platform_name, max_usd)
        from platforms.core import service_launch

        return service_launch.launch_service(platform_name, job, settings, progress)
    return launch_platform(registry.get(platform_name)(settings), job, progress, baseline, allow_image_mismatch,
                           max_usd)


def launch_platform(platform, job: Job, progress: JobProgress, baseline=None,
                    allow_image_mismatch: bool = False, max_usd: Optional[float] = None) -> tuple[Outcome, str]:
    """launch() for a training platform's launcher (a core.api.Platform made with its settings)."""
    refuse_nodes(platform, job)
    platform.check(job)
    if max_usd is not None:
        from platforms.core import cost_plan

        cost_plan.hold([cost_plan.for_platform(platform, job)], max_usd)
        platform.max_usd = max_usd  # the cloud-job template's wait() holds it while the job runs
    params = {"model": job.model, "epochs": job.epochs, "per_class": job.per_class, "seed": job.seed,
              "target_accuracy": job.target_accuracy, "data": str(job.data), **platform.settings}
    tags = {tracking.Tag.PLATFORM: platform.name, tracking.Tag.MODEL: job.model, **platform.run_tags(job)}
    if baseline is not None:
        digest = tags.get(tracking.Tag.IMAGE_DIGEST)
        # a cloud launcher may not know its image's digest before the job (no ECR access): then the
        # trainer's own record decides, after the run; an in-process platform always knows (env or none)
        why = (image_mismatch(baseline, digest, tags.get(tracking.Tag.IMAGE_ID))
               if digest or platform.spec.in_process else None)
        if why and not allow_image_mismatch:
            raise UserError(why)
        tags[BASELINE_TAG] = baseline.info.run_id
        if why:
            tags[MISMATCH_TAG] = "true"
    job.out.mkdir(parents=True, exist_ok=True)
    handle = None
    with tracking.tracked_run(f"{platform.name}-{job.model}", params, tags) as run:
        try:
            t0 = time.time()
            progress.phase("staging")
            staged = platform.stage(job)
            # numbers (upload s/MiB, bytes, retries …) are metrics; strings (staging mode, fingerprint) tags
            run.metrics({k: v for k, v in staged.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            run.tags({k if k.startswith("platbench.") else f"platbench.{k}": v
                      for k, v in staged.items() if isinstance(v, str)})
            progress.phase("submitting")
            handle = platform.submit(job, staged)
            outcome = platform.wait(handle, progress)
            if outcome.status in ("finished", "preempted", "killed"):
                out = platform.collect(handle, outcome, job.out)
                # a cloud launcher's native local mode runs the trainer outside the image: no digest to demand
                native = outcome.tags.get(RUNNER_TAG) == "native"
                run.import_outputs(out, container=False if native else None)
                if outcome.status == "finished":
                    run.log_model_dir(out / "model")
            run.metrics({"seconds_wall": time.time() - t0, "billed_seconds": outcome.billed_seconds,
                         "cost_usd": outcome.cost_usd, "cost_list_estimate_usd": outcome.list_estimate_usd,
                         **{f"phase_seconds_{k}": v for k, v in outcome.phases.items()}, **outcome.metrics})
            run.tags({tracking.Tag.STATUS: outcome.status, **outcome.tags})
            run.end(MLFLOW_STATUS[outcome.status])
            return outcome, run.run_id
        finally:
            # a platform that declares teardown_without_job (the cloud-job template) also cleans up after a
            # failed stage() or submit(): teardown(None)
            if handle is not None or platform.teardown_without_job:
                platform.teardown(handle)


def default_out(platform_name: str, model: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{platform_name}-{model}"

