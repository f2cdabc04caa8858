"""SageMaker training job statuses → platbench phases (DescribeTrainingJob SecondaryStatus:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html)."""

# SecondaryStatus → platbench phase (API_SecondaryStatusTransition.html; "subject to change": unknown
# values keep their own lower-cased name).
PHASES = {
    "Pending": "queued", "Starting": "queued", "LaunchingMLInstances": "provisioning",
    "PreparingTrainingStack": "provisioning", "DownloadingTrainingImage": "image_pull",
    "Downloading": "downloading", "Training": "training", "Uploading": "uploading",
    "Interrupted": "interrupted", "Restarting": "restarting", "Updating": "updating", "Stopping": "stopping",
}
TERMINAL_SECONDARY = {"Completed", "Failed", "Stopped", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"}
