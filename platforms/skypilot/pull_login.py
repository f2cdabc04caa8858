"""The login with which SkyPilot's cluster pulls a private image: three task envs SkyPilot reads before it
pulls image_id (https://docs.skypilot.co/en/latest/examples/docker-containers.html#private-registries)."""
from __future__ import annotations

import os
import re
from typing import Optional

from platforms.core.api import PlanStep
from platforms.errors import UserError

ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")
DOCKER_LOGIN = ("SKYPILOT_DOCKER_USERNAME", "SKYPILOT_DOCKER_PASSWORD", "SKYPILOT_DOCKER_SERVER")


def registry_login(image: str) -> dict[str, str]:
    """The task envs for `image`'s registry. Amazon ECR: a 12-hour token from GetAuthorizationToken (what `aws
    ecr get-login-password` prints), user AWS (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html);
    another registry: the three variables from platbench's own environment when they are set; else none (a
    public image)."""
    host = image.split("/", 1)[0]
    ecr = ECR_HOST.match(host)
    if ecr is None:
        return {k: os.environ[k] for k in DOCKER_LOGIN} if all(os.environ.get(k) for k in DOCKER_LOGIN) else {}
    import base64

    from platforms.clouds.aws.sdk import boto3_module

    boto3 = boto3_module("boto3 (the ECR login)")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (data,) = boto3.session.Session(region_name=ecr.group(1)).client("ecr").get_authorization_token()[
            "authorizationData"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"skypilot: no login for the image's registry (ECR {host}): {str(exc).splitlines()[0]}") from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return dict(zip(DOCKER_LOGIN, (username, password, host)))


def login_step(image: Optional[str]) -> list[PlanStep]:
    """The dry-run's step for an ECR image's login (none for another registry: its variables are the user's)."""
    ecr = ECR_HOST.match((image or "").split("/", 1)[0])
    if not ecr:
        return []
    return [PlanStep("the cluster's login to the image's registry, added to the task's envs at launch (not printed: "
                     "a 12-hour ECR token)", f"SKYPILOT_DOCKER_USERNAME=AWS SKYPILOT_DOCKER_SERVER={ecr.group(0)} "
                     f"SKYPILOT_DOCKER_PASSWORD=$(aws ecr get-login-password --region {ecr.group(1)})")]
