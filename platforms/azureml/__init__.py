"""Azure Machine Learning (SDK v2): command jobs (train.py), managed online endpoints running the image's
`serve` as a custom container (endpoint.py), local mode natively under the command-job contract
(emulator.py) and its price table (prices.yaml); Blob Storage staging (`az://CONTAINER/path`, the account
from the settings or AZURE_STORAGE_ACCOUNT), credentials and the ACR login are Azure's
(platforms/clouds/azure). Needs `pip install 'platbench[azureml]'`."""
from platforms.clouds import azure
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="azureml", cloud=azure.CLOUD, title="Azure Machine Learning command job (azure-ai-ml v2 + azure-storage-blob)",
    launcher="train:AzureMLPlatform", endpoint="endpoint:AzureMLEndpoint", sdk_modules=("azure.ai.ml",),
    lacks={Feature.BILLING: ("Azure ML reports no billed seconds per job (the bill arrives later, in Azure Cost "
                               "Management); cost is node seconds x the VM's list price")},
)
