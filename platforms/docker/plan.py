"""The dry-run plan of `launch docker`: the commands of the Docker CLI that do what the launcher does through
the SDK, all from the one RunSpec the launch would create."""
from __future__ import annotations

import shlex

from platforms.core.api import PlanStep
from platforms.docker.container import RunSpec


def plan_steps(spec: RunSpec, job_name: str, stop_grace: int) -> list[PlanStep]:
    shown = spec.shown_image
    steps = [PlanStep(f"check the engine (DOCKER_HOST, else the default socket) holds {shown}; its identity (the "
                      "registry digest once pushed, else the image ID) goes into the container and the MLflow run",
                      f"docker image inspect -f '{{{{.Id}}}} {{{{.RepoDigests}}}}' {shown}")]
    if spec.gpus.requested:
        steps.append(PlanStep(f"ask the engine for the GPUs on a throwaway container first (--gpus {spec.gpus.text})",
                              shlex.join(["docker", "run", "--rm", "--network", "none", *spec.gpus.cli(), shown, "true"])))
    return steps + [
        PlanStep(f"run the trainer as {spec.user} (never root), no network: {spec.data} read-only, outputs to "
                 f"{spec.out}, checkpoints in {spec.checkpoints} (a later launch with --set job_name="
                 f"{job_name} resumes from them)", spec.docker_run()),
        PlanStep("follow the container's log: each `- Epoch: N` moves the progress bar; queue seconds = "
                 "created → started; Ctrl-C stops it with SIGTERM (the trainer checkpoints), SIGKILL after "
                 f"{stop_grace} s, and the MLflow run ends KILLED", f"docker logs -f {spec.name}"),
        PlanStep("record the run in MLflow (params, per-epoch metrics, results, model, the image's digest); no "
                 "cost: your own machine; then remove the container", f"docker rm {spec.name}"),
    ]
