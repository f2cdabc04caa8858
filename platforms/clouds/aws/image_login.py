"""Amazon ECR, the registry AWS platforms (SageMaker) pull training and serving images from, for `platbench
image push PLATFORM`: an authorization token from boto3 (GetAuthorizationToken: base64 "AWS:password", valid 12
hours, for the registry at proxyEndpoint), the repository created when missing.
https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html
https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html
https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html
SageMaker takes the image as REPO@sha256:… in AlgorithmSpecification.TrainingImage (launcher: image_uri)."""
from __future__ import annotations

import base64
import os
from typing import Optional
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from platforms.clouds.aws.sdk import boto3_module
from platforms.core.settings import parse_settings
from platforms.errors import UserError
from platforms.image.push import Login


class EcrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str = Field(default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    repository: str = Field("platbench", pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
    # the registry host to push to; default: the token's proxyEndpoint (ACCOUNT.dkr.ecr.REGION.amazonaws.com)
    registry: Optional[str] = None


def login(settings: dict[str, str], dry_run: bool = False, who: str = "aws registry") -> Login:
    """`who` names the registry in messages: the platform pushed for (PlatformSpec.login)."""
    cfg = parse_settings(EcrSettings, settings, who)
    if dry_run:
        host = cfg.registry or f"ACCOUNT.dkr.ecr.{cfg.region}.amazonaws.com"
        return Login(f"{host}/{cfg.repository}", setting="image_uri", login_commands=(
            f"aws ecr create-repository --region {cfg.region} --repository-name {cfg.repository}   # once",
            f"aws ecr get-login-password --region {cfg.region} | docker login --username AWS --password-stdin {host}"))
    boto3 = boto3_module("boto3")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ecr = boto3.session.Session(region_name=cfg.region).client("ecr")
        try:
            ecr.describe_repositories(repositoryNames=[cfg.repository])
        except ecr.exceptions.RepositoryNotFoundException:
            ecr.create_repository(repositoryName=cfg.repository)
        (data,) = ecr.get_authorization_token()["authorizationData"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"{who} (ECR, {cfg.region}): {str(exc).splitlines()[0]}") from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = cfg.registry or urlparse(data["proxyEndpoint"]).netloc
    return Login(f"{host}/{cfg.repository}", username=username, password=password, setting="image_uri",
                 login_commands=(f"aws ecr get-login-password --region {cfg.region} | docker login --username AWS "
                                 f"--password-stdin {host}",))
