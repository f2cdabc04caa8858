"""Google Vertex AI AutoML image classification: an AutoML service (platforms/core/service.py) that trains a
model of its own on our labelled images. Images and a CSV import file go to Cloud Storage, the dataset,
training pipeline, endpoint and predictions through google-cloud-aiplatform's v1 service clients
(service.py); prices in prices.yaml. Runs on Google Cloud (platforms/clouds/gcp: Cloud Storage, credentials).
Needs `pip install 'platbench[vertex_automl]'`."""
from platforms.clouds import gcp
from platforms.core.api import SERVICE_LACKS, Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="vertex_automl", cloud=gcp.CLOUD, kind=Kind.SERVICE,
    title="Google Vertex AI AutoML image classification (google-cloud-aiplatform)",
    launcher="service:VertexAutoMLService", sdk_modules=("google.cloud.aiplatform_v1",),
    guide="docs/first-run-services.md",
    lacks={Feature.ENDPOINTS: "serves only the model it trained itself: deployed, evaluated and load-tested inside "
                              "`platbench launch vertex_automl`, never our model.pt", **SERVICE_LACKS,
           Feature.MULTI_NODE: "the service decides how training is spread (the budget is in node hours)"},
)
