"""Fixtures for the SageMaker training control plane on 127.0.0.1 (sagemaker_server.py), next to moto (S3, IAM, ECR):
boto3 and the SageMaker SDK reach it through botocore's service-specific endpoint setting
(AWS_ENDPOINT_URL_SAGEMAKER; everything else keeps AWS_ENDPOINT_URL, the recording proxy in front of moto).
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html

A test module imports them: `from sagemaker_fixtures import job_runner, sagemaker_server, sm_api`."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# a cloud launch runs its image by digest (platforms/image/pinning.py): this one stands for the platbench
# image, run natively: PATH finds the image's own `train` script (docker/train) and the lock's Python, with
# the Dockerfile's ENV
PLATBENCH_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@sha256:" + "a" * 64
PLATBENCH_IMAGE_SPEC = {"env": {"PATH": f"{REPO / 'docker'}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                                "PLATBENCH_CACHE": "/tmp/platbench-cache"}}


@pytest.fixture(scope="module")
def sagemaker_server(moto_server, tmp_path_factory):
    """One control plane per module (jobs keep their names: each test names its own)."""
    from sagemaker_server import SageMakerServer

    host, port = moto_server
    server = SageMakerServer(f"http://{host}:{port}", tmp_path_factory.mktemp("sagemaker-jobs"), stop_grace=20)
    yield server
    server.close()


@pytest.fixture
def sm_api(sagemaker_server, aws, monkeypatch):
    """The control plane for this test: the platbench image registered, no calls or faults of another test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker_server.url)
    with sagemaker_server.lock:
        sagemaker_server.calls.clear()
    sagemaker_server.images.clear()
    sagemaker_server.images[PLATBENCH_IMAGE] = PLATBENCH_IMAGE_SPEC
    sagemaker_server.spot_savings = 0.0
    sagemaker_server.runtime_env.clear()
    yield sagemaker_server
    with sagemaker_server.lock:
        sagemaker_server.faults.clear()


@pytest.fixture(scope="session")
def job_runner():
    """Tests whose job runs an image need a private /opt/ml: root and mount namespaces (CI runs as root)."""
    from sagemaker_jobs import unshare_works

    why = unshare_works()
    if why:
        pytest.skip(why)
