"""Google Vertex AI AutoML image classification: an AutoML service (platforms/core/service.py) that trains a
model of its own on our labelled images. Images and a CSV import file go to Cloud Storage, the dataset,
training pipeline, endpoint and predictions through google-cloud-aiplatform's v1 service clients
(service.py); prices in prices.yaml. Needs `pip install 'platbench[vertex]'`."""
from platforms.core.api import Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="vertex_automl",
    title="Google Vertex AI AutoML image classification (google-cloud-aiplatform)",
    package=__name__,
    kind=Kind.SERVICE,
    launcher="service:VertexAutoMLService",
    extra="vertex",
    sdk_modules=("google.cloud.aiplatform_v1", "google.cloud.storage"),
    credentials="credentials:find",
    guide="docs/first-run-services.md",
    lacks={
        Feature.ENDPOINTS: "serves only the model it trained itself: deployed, evaluated and load-tested inside "
                           "`platbench launch vertex_automl`, never our model.pt",
        Feature.GPU: "the service picks the training and serving hardware",
        Feature.SPOT: "no preemptible AutoML training",
        Feature.MULTI_NODE: "the service decides how training is spread (the budget is in node hours)",
    },
)
