"""How a container ended, from its ContainerInspect: the exit code read the trainer's way (README
"Outputs": SIGTERM → epoch-end checkpoint, exit 143; started again with the same checkpoint folder it
resumes), and queue time = the engine's Created → State.StartedAt. Cost: none (your own machine).

ContainerInspect: Created, State.StartedAt / FinishedAt / ExitCode / OOMKilled (RFC 3339, nanoseconds):
https://docs.docker.com/reference/api/engine/version/v1.45/#tag/Container/operation/ContainerInspect"""
from __future__ import annotations

from typing import Optional

from platforms.core import tracking
from platforms.core.api import Outcome
from platforms.core.cloud_job import timestamp
from platforms.docker.jobs import DockerHandle

EXIT_SIGTERM = 143  # the trainer after SIGTERM: checkpointed (trainer/train.py EXIT_PREEMPTED)


def engine_time(text: Optional[str]) -> Optional[float]:
    """An engine timestamp (RFC 3339 with nanoseconds, 'Z') as epoch seconds; None for the zero time."""
    return None if not text or text.startswith("0001-") else timestamp(text).timestamp()


def container_outcome(handle: DockerHandle, info: dict, stop_grace: int) -> Outcome:
    from trainer.results import RESULTS_FILE

    state = info.get("State") or {}
    code = state.get("ExitCode")
    created, started, finished = (engine_time(info.get("Created")), engine_time(state.get("StartedAt")),
                                  engine_time(state.get("FinishedAt")))
    phases = {}
    if created is not None and started is not None:
        phases["queued"] = max(0.0, started - created)
    if started is not None and finished is not None:
        phases["training"] = max(0.0, finished - started)
    resume = f"launch again with --set job_name={handle.job_name} to resume from {handle.spec.checkpoints}"
    if code == 0 and (handle.spec.out / RESULTS_FILE).is_file():
        status, message = "finished", ""
    elif handle.stopped:
        status = "killed"
        message = (f"interrupted (Ctrl-C): stopped with SIGTERM, checkpointed; {resume}" if code == EXIT_SIGTERM
                   else f"interrupted (Ctrl-C): the container exited {code} (SIGKILL after "
                        f"{stop_grace} s: no checkpoint of the last epoch); {resume}")
    elif code == EXIT_SIGTERM:
        status, message = "preempted", f"the container was stopped (SIGTERM) from outside: checkpointed; {resume}"
    else:
        status = "failed"
        why = ("out of memory (the engine killed it)" if state.get("OOMKilled") else
               "exited 0 without results.json" if code == 0 else f"exited {code}")
        last = " | ".join(line.strip()[:200] for line in list(handle.tail)[-3:] if line.strip())
        message = f"the container {why}" + (f": {last}" if last else "")
    return Outcome(status, handle.spec.out, phases=phases, message=message,
                   metrics={"container_exit_code": code} if code is not None else {},
                   tags={tracking.Tag.JOB_ID: handle.job_name, "platbench.container": handle.container[:12]})
