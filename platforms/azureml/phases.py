"""Azure ML job statuses → platbench phases (JobStatus:
https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.entities.job and the REST JobStatus enum,
https://learn.microsoft.com/rest/api/azureml/jobs/get#jobstatus)."""

PHASES = {"NotStarted": "queued", "Queued": "queued", "Provisioning": "provisioning", "Preparing": "image_pull",
          "Starting": "provisioning", "Running": "training", "Finalizing": "uploading",
          "CancelRequested": "stopping", "Paused": "paused", "Uploading": "uploading", "Stopping": "stopping"}
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding"}
