"""SkyPilot: the platbench image as one SkyPilot task on any GPU cloud SkyPilot reaches (AWS, GCP, Azure,
Lambda, RunPod, Kubernetes), the dataset staged into an s3:// or gs:// bucket by that scheme's store and
mounted (platforms/clouds/aws or gcp), launched and torn down through SkyPilot's Python API (train.py; the task itself: task.py).
Needs `pip install 'platbench[skypilot]'` and the cloud's own credentials (`sky check`)."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="skypilot", title="SkyPilot task or managed job on a GPU cloud (skypilot Python API)",
    launcher="train:SkyPilotPlatform", sdk_modules=("sky",),
    lacks={
        Feature.ENDPOINTS: "not built: SkyServe (`sky serve up`) could serve the model, platbench has no "
                           "SkyServe endpoint yet",
        Feature.MULTI_NODE: "not built: the task is one node (SkyPilot's num_nodes is left at 1)",
        Feature.REMOTE_STORAGE: "SkyPilot owns no object store: the dataset is staged into an s3:// or gs:// "
                                "bucket (--set bucket=…) by that cloud's store (platforms/clouds) and mounted into the task",
        Feature.BILLING: "the cost is an estimate: SkyPilot's catalog price × the cluster's uptime, not the "
                         "cloud's bill",
    },
)
