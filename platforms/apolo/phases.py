"""Apolo job statuses and pending reasons → platbench phases.

Statuses (apolo_sdk.JobStatus): pending ("being created and scheduled. This includes finding (and possibly
waiting for) sufficient amount of resources, pulling an image from a registry etc."), suspended, running,
succeeded, failed, cancelled — https://apolo-sdk.readthedocs.io/stable/jobs_reference.html#jobstatus.
A pending job's `reason` tells which part of pending it is in; the reason strings are the platform API's
(job status history, `apolo status JOB` shows them); those below are the ones that mean a phase, any other
pending reason counts as plain "pending"."""

SCHEDULING = {"Scheduling", "ClusterScalingUp", "ClusterScaleUp", "Collected"}
PULLING = {"Pulling", "PullingImage", "ContainerCreating"}
PREEMPTED_EXIT = 143  # 128 + SIGTERM: the trainer checkpointed and stopped (its contract, docs/design.md)


def phase(status: str, reason: str) -> str:
    if status == "pending":
        return "scheduling" if reason in SCHEDULING else "pulling" if reason in PULLING else "pending"
    return {"running": "training", "suspended": "suspended"}.get(status, status)
