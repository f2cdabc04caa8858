"""Google Vertex AI: custom jobs (train.py), endpoints (endpoint.py), local mode natively (emulator.py), and
its price table (prices.yaml); Cloud Storage staging, credentials and the Artifact Registry login are
Google Cloud's (platforms/clouds/gcp).
Needs `pip install 'platbench[vertex]'`."""
from platforms.clouds import gcp
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="vertex", cloud=gcp.CLOUD, title="Google Vertex AI custom job (google-cloud-aiplatform + google-cloud-storage)",
    launcher="train:VertexPlatform", endpoint="endpoint:VertexEndpoint", sdk_modules=("google.cloud.aiplatform_v1",),
    lacks={Feature.BILLING: ("Vertex reports no billed time (the bill arrives later, in the Cloud Billing export); "
                               "cost is running time × list price")},
)
