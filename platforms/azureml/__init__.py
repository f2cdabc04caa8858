"""Azure Machine Learning (SDK v2): command jobs (train.py), managed online endpoints running the image's
`serve` as a custom container (endpoint.py), Azure Blob Storage staging (storage.py, scheme
`az://CONTAINER/path`, the account from the settings or AZURE_STORAGE_ACCOUNT), local mode natively under
the command-job contract (emulator.py), offline credential lookup (credentials.py) and its price table
(prices.yaml). Needs `pip install 'platbench[azureml]'`."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="azureml",
    title="Azure Machine Learning command job (azure-ai-ml v2 + azure-storage-blob)",
    package=__name__,
    launcher="train:AzureMLPlatform",
    endpoint="endpoint:AzureMLEndpoint",
    stores={"az": "storage:BlobStore"},
    extra="azureml",
    sdk_modules=("azure.ai.ml", "azure.identity", "azure.storage.blob"),
    credentials="credentials:find",
    registry="registry:login",
    guide="docs/first-run-azureml.md",
    lacks={
        Feature.BILLING: "Azure ML reports no billed seconds per job; cost is node seconds x the VM's list price",
    },
)
