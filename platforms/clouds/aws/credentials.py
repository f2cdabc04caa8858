"""Where AWS credentials would come from, looked up without a network call (`platbench platforms`).

botocore's own chain ends at the EC2/ECS metadata services, which are network calls; this checks the
providers that live on this machine, in the chain's order:
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html#configuring-credentials"""
from __future__ import annotations

import configparser
import os
from pathlib import Path


def find() -> tuple[bool, str]:
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return True, "environment (AWS_ACCESS_KEY_ID)"
    if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True, "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"
    profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"
    files = (("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", profile),
             ("AWS_CONFIG_FILE", "~/.aws/config", profile if profile == "default" else f"profile {profile}"))
    for var, default, section in files:
        path = Path(os.environ.get(var) or default).expanduser()
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_section(section) and any(parser.has_option(section, k) for k in (
                "aws_access_key_id", "role_arn", "sso_session", "sso_start_url", "credential_process",
                "web_identity_token_file")):
            return True, f"profile {profile!r} in {path}"
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return True, "container credentials (ECS/EKS)"
    return False, f"none found (environment, profile {profile!r}); an EC2 instance role is not checked offline"
