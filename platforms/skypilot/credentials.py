"""Whether a cloud SkyPilot can launch on has credentials on this machine, looked up offline (`sky check`
calls the clouds). The files are the ones SkyPilot's cloud setup writes or reads:
https://docs.skypilot.co/en/latest/getting-started/installation.html#cloud-account-setup"""
from __future__ import annotations

import os
from pathlib import Path

FILES = {
    "aws": "~/.aws/credentials",
    "gcp": "~/.config/gcloud/application_default_credentials.json",
    "azure": "~/.azure/msal_token_cache.json",
    "lambda": "~/.lambda_cloud/lambda_keys",
    "runpod": "~/.runpod/config.toml",
    "kubernetes": "~/.kube/config",
}


def clouds_with_credentials() -> list[str]:
    found = [cloud for cloud, path in FILES.items() if Path(path).expanduser().is_file()]
    if "aws" not in found and os.environ.get("AWS_ACCESS_KEY_ID"):
        found.insert(0, "aws")
    if "kubernetes" not in found and os.environ.get("KUBECONFIG") and Path(os.environ["KUBECONFIG"]).is_file():
        found.append("kubernetes")
    return found


def find() -> tuple[bool, str]:
    found = clouds_with_credentials()
    if found:
        return True, "credentials for " + ", ".join(found) + " (`sky check` confirms them online)"
    return False, "no cloud credentials found (" + ", ".join(FILES.values()) + "); see `sky check`"
