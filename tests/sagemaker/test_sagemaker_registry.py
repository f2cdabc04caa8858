"""`platbench image push sagemaker`'s login: ECR's GetAuthorizationToken through boto3, against moto's ECR
API on loopback (the push itself goes to a loopback registry in scripts/image-test)."""
from __future__ import annotations

import base64

import pytest
from conftest_clouds import aws, moto_server  # noqa: F401  (fixtures)

from platforms.errors import UserError


def test_ecr_login_decodes_the_token_and_creates_the_repository(aws):
    import boto3

    from platforms.core import registry

    login = registry.spec("sagemaker").login  # the AWS cloud's ECR login, named for the platform
    got = login({"region": "us-east-1", "repository": "team/platbench"})
    ecr = boto3.client("ecr", region_name="us-east-1")
    (repo,) = ecr.describe_repositories(repositoryNames=["team/platbench"])["repositories"]
    (data,) = ecr.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].split("://", 1)[1]
    assert got.username == user == "AWS" and got.password == password and password
    assert got.repository == f"{host}/team/platbench" == repo["repositoryUri"]
    assert got.auth() == {"username": "AWS", "password": got.password, "serveraddress": host}
    assert login({"region": "us-east-1", "repository": "team/platbench"}).repository == got.repository  # exists now
    assert login({"repository": "pb", "registry": "127.0.0.1:5000"}).repository == "127.0.0.1:5000/pb"


def test_ecr_login_without_credentials_is_one_line(aws, monkeypatch):
    from platforms.core import registry

    login = registry.spec("sagemaker").login
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match=r"^sagemaker registry \(ECR, us-east-1\): Unable to locate credentials"):
        login({"region": "us-east-1"})
