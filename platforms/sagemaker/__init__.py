"""Amazon SageMaker AI: training jobs (train.py), real-time endpoints (endpoint.py), local mode natively
(emulator.py) or through the SDK's Docker local mode (sdk_local.py), and its price table (prices.yaml);
S3 staging, credentials and the ECR login are AWS's (platforms/clouds/aws). Needs `pip install 'platbench[sagemaker]'`."""
from platforms.clouds import aws
from platforms.core.api import PlatformSpec

SPEC = PlatformSpec(
    name="sagemaker", cloud=aws.CLOUD, title="Amazon SageMaker training job (sagemaker SDK + boto3)",
    launcher="train:SageMakerPlatform", endpoint="endpoint:SageMakerEndpoint", sdk_modules=("sagemaker",),
    # multi-node: --set instance_count=N distribution=torch_distributed (each instance runs torchrun)
    lacks={},
)
