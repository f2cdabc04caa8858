"""This machine's Docker engine: the platbench image run as one container through the Docker SDK for Python
(train.py; the container itself: container.py), GPUs by device request (`--gpus`), the dataset mounted
read-only, outputs and checkpoints on mounted folders. Needs `pip install 'platbench[docker]'`, a running
engine and an image (`platbench image build`)."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="docker", title="This machine's Docker engine (the image, through the Docker SDK)",
    launcher="train:DockerPlatform", sdk_modules=("docker",),
    lacks={
        Feature.SPOT: "your own machine is not preemptible capacity (a `docker stop` still checkpoints, and a "
                      "launch with the same --set job_name resumes)",
        Feature.MULTI_NODE: "one machine (--devices N runs N data-parallel processes in the one container)",
        Feature.ENDPOINTS: "no managed endpoints; serve the model with the image's `serve` (docker run IMAGE serve)",
        Feature.BILLING: "your own machine: no price per second, so no cost is recorded",
        Feature.REMOTE_STORAGE: "the dataset is mounted read-only from this machine; nothing is uploaded",
    },
)
