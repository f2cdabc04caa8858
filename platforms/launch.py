"""`platbench launch PLATFORM`: the same steps for every platform, and the run's MLflow record.

check → (plan | stage → submit → wait → collect → import into MLflow) → teardown, always."""
from __future__ import annotations

import time
from pathlib import Path

from platforms import registry, tracking
from platforms.base import Job, Outcome
from platforms.errors import UserError
from platforms.progress import JobProgress

MLFLOW_STATUS = {"finished": "FINISHED", "preempted": "KILLED", "killed": "KILLED", "failed": "FAILED"}


def plan_text(platform_name: str, job: Job, settings: dict[str, str]) -> str:
    platform = registry.get(platform_name)(settings)
    platform.check(job)
    lines = [f"Plan for {platform.name} ({platform.title}) — nothing is created:"]
    for i, step in enumerate(platform.plan(job), 1):
        lines.append(f"{i:2d}. {step.title}")
        if step.command:
            lines.append(f"      $ {step.command}")
    if platform.lacks:
        lines.append("Not available on this platform: " + "; ".join(f"{f.value} ({why})" for f, why in platform.lacks.items()))
    return "\n".join(lines)


def launch(platform_name: str, job: Job, settings: dict[str, str], progress: JobProgress) -> tuple[Outcome, str]:
    """Run the job; returns the outcome and the MLflow run id. The run is never left RUNNING."""
    platform = registry.get(platform_name)(settings)
    platform.check(job)
    job.out.mkdir(parents=True, exist_ok=True)
    params = {"model": job.model, "epochs": job.epochs, "per_class": job.per_class, "seed": job.seed,
              "target_accuracy": job.target_accuracy, "data": str(job.data), **platform.settings}
    tags = {tracking.Tag.PLATFORM: platform.name, tracking.Tag.MODEL: job.model, **platform.run_tags(job)}
    handle = None
    with tracking.tracked_run(f"{platform.name}-{job.model}", params, tags) as run:
        try:
            t0 = time.time()
            progress.phase("staging")
            staged = platform.stage(job)
            # numbers (upload s/MB, bytes, retries …) are metrics; strings (staging mode, fingerprint) tags
            run.metrics({k: v for k, v in staged.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            run.tags({k if k.startswith("platbench.") else f"platbench.{k}": v
                      for k, v in staged.items() if isinstance(v, str)})
            progress.phase("submitting")
            handle = platform.submit(job, staged)
            outcome = platform.wait(handle, progress)
            if outcome.status in ("finished", "preempted", "killed"):
                out = platform.collect(handle, outcome, job.out)
                run.import_outputs(out)
                if outcome.status == "finished":
                    run.log_model_dir(out / "model")
            run.metrics({"seconds_wall": time.time() - t0, "billed_seconds": outcome.billed_seconds,
                         "cost_usd": outcome.cost_usd, "cost_list_estimate_usd": outcome.list_estimate_usd,
                         **{f"phase_seconds_{k}": v for k, v in outcome.phases.items()}, **outcome.metrics})
            run.tags({tracking.Tag.STATUS: outcome.status, **outcome.tags})
            run.end(MLFLOW_STATUS[outcome.status])
            return outcome, run.run_id
        finally:
            if handle is not None:
                platform.teardown(handle)


def default_out(platform_name: str, model: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{platform_name}-{model}"


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{option} takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
