"""Amazon Web Services for the platforms that run there (sagemaker, rekognition; skypilot's s3:// staging
and ECR login): boto3 clients that retry and count alike (sdk.py), S3 (s3.py), the offline credential
lookup (credentials.py) and the ECR login (image_login.py). Needs `pip install 'platbench[aws]'`."""
from platforms.core.api import Cloud

CLOUD = Cloud(name="aws", package=__name__, extra="aws", sdk_modules=("boto3",), stores={"s3": "s3:S3Store"})
