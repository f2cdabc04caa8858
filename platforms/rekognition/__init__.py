"""Amazon Rekognition Custom Labels (image classification): an AutoML service that trains a model of its own
on our labelled images (platforms/core/service.py). Images and Ground Truth manifests go to S3, the project,
datasets and model version through boto3's `rekognition` client (service.py); prices in prices.yaml.
Needs boto3: `pip install 'platbench[sagemaker]'` (the extra that brings it)."""
from platforms.core.api import Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="rekognition",
    title="Amazon Rekognition Custom Labels (boto3)",
    package=__name__,
    kind=Kind.SERVICE,
    launcher="service:RekognitionService",
    extra="sagemaker",
    sdk_modules=("boto3",),
    credentials="credentials:find",
    guide="docs/first-run-services.md",
    lacks={
        Feature.ENDPOINTS: "serves only the model it trained itself: deployed, evaluated and load-tested inside "
                           "`platbench launch rekognition`, never our model.pt",
        Feature.GPU: "the service picks the training and inference hardware",
        Feature.SPOT: "no spot or preemptible training",
        Feature.MULTI_NODE: "the service decides how training is spread",
    },
)
