"""Google Vertex AI: custom jobs (train.py), endpoints (endpoint.py), Cloud Storage staging (storage.py),
local mode natively (emulator.py), and its price table (prices.yaml).
Needs `pip install 'platbench[vertex]'`."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="vertex",
    title="Google Vertex AI custom job (google-cloud-aiplatform + google-cloud-storage)",
    package=__name__,
    launcher="train:VertexPlatform",
    endpoint="endpoint:VertexEndpoint",
    stores={"gs": "storage:GCSStore"},
    extra="vertex",
    sdk_modules=("google.cloud.aiplatform_v1", "google.cloud.storage"),
    credentials="credentials:find",
    registry="registry:login",
    guide="docs/first-run-vertex.md",
    lacks={
        Feature.BILLING: "Vertex reports no billed time; cost is running time × list price",
    },
)
