"""This machine: the trainer in-process, data read in place (platforms/local/train.py)."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="local", title="This machine (in-process)", launcher="train:LocalPlatform", in_process=True,
    lacks={
        Feature.SPOT: "a local run is not preemptible capacity (SIGTERM still checkpoints and resumes)",
        Feature.MULTI_NODE: "one machine (--devices N runs N data-parallel processes on it, under torchrun)",
        Feature.ENDPOINTS: "no managed endpoints; serve the model with the image's `serve`",
        Feature.BILLING: "no price per second for your own machine",
        Feature.REMOTE_STORAGE: "data is read in place",
    },
)
