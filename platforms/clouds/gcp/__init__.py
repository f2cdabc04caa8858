"""Google Cloud for the platforms that run there (vertex, vertex_automl; skypilot's gs:// staging): Cloud
Storage (gcs.py), the offline lookup of application default credentials (credentials.py) and the Artifact
Registry login (image_login.py). Needs `pip install 'platbench[gcp]'`."""
from platforms.core.api import Cloud

CLOUD = Cloud(name="gcp", package=__name__, extra="gcp", sdk_modules=("google.cloud.storage",),
              stores={"gs": "gcs:GCSStore"})
