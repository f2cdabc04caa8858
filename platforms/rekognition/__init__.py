"""Amazon Rekognition Custom Labels (image classification): an AutoML service that trains a model of its own
on our labelled images (platforms/core/service.py). Images and Ground Truth manifests go to S3, the project,
datasets and model version through boto3's `rekognition` client (service.py); prices in prices.yaml.
Runs on AWS (platforms/clouds/aws: S3, credentials). Needs `pip install 'platbench[rekognition]'`."""
from platforms.clouds import aws
from platforms.core.api import SERVICE_LACKS, Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="rekognition", cloud=aws.CLOUD, kind=Kind.SERVICE, title="Amazon Rekognition Custom Labels (boto3)",
    launcher="service:RekognitionService", guide="docs/first-run-services.md",
    lacks={Feature.ENDPOINTS: "serves only the model it trained itself: deployed, evaluated and load-tested inside "
                              "`platbench launch rekognition`, never our model.pt", **SERVICE_LACKS},
)
