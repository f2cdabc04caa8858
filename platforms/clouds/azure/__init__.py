"""Microsoft Azure for the platforms that run there (azureml): Blob Storage (blob.py, scheme `az://`), the
offline lookup of DefaultAzureCredential's sources (credentials.py) and the Azure Container Registry login
(image_login.py). Needs `pip install 'platbench[azure]'`."""
from platforms.core.api import Cloud

CLOUD = Cloud(name="azure", package=__name__, extra="azure", sdk_modules=("azure.identity", "azure.storage.blob"),
              stores={"az": "blob:BlobStore"})
