"""Amazon SageMaker AI: training jobs (train.py), real-time endpoints (endpoint.py), S3 staging
(storage.py), local mode natively (emulator.py) or through the SDK's Docker local mode (sdk_local.py),
and its price table (prices.yaml). Needs `pip install 'platbench[sagemaker]'`."""
from platforms.core.api import PlatformSpec

SPEC = PlatformSpec(
    name="sagemaker",
    title="Amazon SageMaker training job (sagemaker SDK + boto3)",
    package=__name__,
    launcher="train:SageMakerPlatform",
    endpoint="endpoint:SageMakerEndpoint",
    stores={"s3": "storage:S3Store"},
    extra="sagemaker",
    sdk_modules=("boto3", "sagemaker"),
    credentials="credentials:find",
    registry="registry:login",
    guide="docs/first-run-sagemaker.md",
    # multi-node: --set instance_count=N distribution=torch_distributed (each instance runs torchrun)
    lacks={},
)
