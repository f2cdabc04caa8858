"""The dry-run plan of `launch skypilot`: the `sky` and bucket CLI commands that do what the launcher does
through SkyPilot's Python API, with the task YAML it would send (offline: no SkyPilot import)."""
from __future__ import annotations

from pathlib import Path

import yaml

from platforms.core.api import Job, PlanStep
from platforms.core.staging_plan import staging_steps
from platforms.skypilot.pull_login import login_step
from platforms.skypilot.task import NAME, SkyPilotSettings, job_task


def plan_steps(cfg: SkyPilotSettings, job: Job) -> list[PlanStep]:
    from platforms.image import pinning

    name = cfg.job_name or cfg.run_name or NAME.placeholder(f"pb-{job.model}")
    out = cfg.run_key(name)
    root = f"{cfg.scheme}://{cfg.bucket_name}/{cfg.prefix.strip('/')}"
    data_rel = ("datasets/<fingerprint>/platbench-manifest.json" if cfg.staging == "sharded"
                else f"naive/{Path(job.data).resolve().name}")
    text = yaml.safe_dump(job_task(cfg, job, name, f"jobs/{out}", data_rel), sort_keys=False).rstrip()
    cli = "aws s3" if cfg.scheme == "s3" else "gcloud storage"
    steps = [PlanStep("check the task with SkyPilot's schema and loader, that the cloud is enabled and that "
                      "SkyPilot's optimizer finds the accelerators in its catalog, before anything is uploaded",
                      f"sky check {cfg.cloud or 'CLOUD'} && sky launch --dryrun task.yaml")]
    steps += pinning.plan_steps(cfg.image, "image") + login_step(cfg.image)
    steps += staging_steps(job.data, cfg.staging, root, lambda a, b: f"{cli} cp {a} {b}",
                           lambda a, b: f"{cli} cp --recursive {a} {b}", store=f"the {cfg.scheme}:// bucket",
                           reads="the task mounts the bucket")
    steps.append(PlanStep("write the SkyPilot task: the image as the runtime, the staged data and the output "
                          "folder mounted from the bucket", f"cat > task.yaml <<'EOF'\n{text}\nEOF"))
    if cfg.use_spot:
        steps += [
            PlanStep("launch it as a managed job (spot: SkyPilot recovers it after a preemption and the trainer "
                     "resumes from its checkpoint); stream its log", f"sky jobs launch -n {name} -y task.yaml"),
            PlanStep("on an error or Ctrl-C: cancel the managed job (its cluster goes with it)",
                     f"sky jobs cancel -n {name} -y"),
        ]
    else:
        steps += [
            PlanStep("launch the cluster and run the task; stream its log",
                     f"sky launch -c {name} --down -y task.yaml && sky logs {name} 1"),
            PlanStep("always (also on an error or Ctrl-C): tear the cluster down", f"sky down -y {name}"),
        ]
    return steps + [
        PlanStep("collect results.json, metrics.jsonl, train.log and model/ from the output folder",
                 f"{cli} cp --recursive {root}/jobs/{out} ."),
        PlanStep("record the MLflow run; cost = SkyPilot's catalog price of the launched resources × the "
                 "cluster's uptime, labelled estimate" + (" (not estimated for a managed job)" if cfg.use_spot else "")),
    ]
