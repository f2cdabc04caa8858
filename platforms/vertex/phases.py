"""Vertex AI job states → platbench phases (JobState:
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState)."""

PHASES = {"JOB_STATE_QUEUED": "queued", "JOB_STATE_PENDING": "provisioning", "JOB_STATE_RUNNING": "training",
          "Uploading": "uploading", "JOB_STATE_CANCELLING": "stopping", "Stopping": "stopping",
          "JOB_STATE_PAUSED": "paused", "JOB_STATE_UPDATING": "updating"}
TERMINAL = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
                      "JOB_STATE_PARTIALLY_SUCCEEDED"})
QUEUED = frozenset({"JOB_STATE_QUEUED"})  # short of quota: bounded by max_queue
