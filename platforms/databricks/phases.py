"""Databricks run states → platbench phases. A run's `state.life_cycle_state`
(https://docs.databricks.com/api/workspace/jobs/getrun, RunLifeCycleState): QUEUED, PENDING (the job
cluster is being created and the libraries installed), RUNNING, TERMINATING, TERMINATED, SKIPPED,
INTERNAL_ERROR, BLOCKED, WAITING_FOR_RETRY; the run also reports queue_duration, setup_duration (cluster
creation and library installation), execution_duration and cleanup_duration in milliseconds, which are the
phase seconds recorded."""

PHASES = {"QUEUED": "queued", "BLOCKED": "queued", "WAITING_FOR_RETRY": "queued", "PENDING": "provisioning",
          "RUNNING": "training", "TERMINATING": "stopping"}
TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
# the run's own durations (ms) → phase
DURATIONS = {"queue_duration": "queued", "setup_duration": "provisioning", "execution_duration": "training",
             "cleanup_duration": "stopping"}
