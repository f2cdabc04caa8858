"""The cloud layer: what the platforms on one cloud provider share — its credential lookup, its object store,
the login to its container registry and its SDK's extra — written once per cloud (docs/design.md, "The cloud
layer"). Between core and the platforms: a cloud imports core only and names no platform; a platform names
its cloud once in its SPEC (`cloud=aws.CLOUD`) or imports it openly (`platforms.clouds.aws.s3`).

  aws/    boto3: s3:// (S3Store), credentials, ECR login          extra `aws`
  gcp/    google-cloud-storage, google-auth: gs:// (GCSStore), credentials, Artifact Registry login   extra `gcp`
  azure/  azure-storage-blob, azure-identity: az:// (BlobStore), credentials, ACR login   extra `azure`

Each package's `__init__.py` declares its `CLOUD` (platforms.core.api.Cloud) and imports no SDK."""
