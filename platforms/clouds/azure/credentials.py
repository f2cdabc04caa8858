"""Where Azure credentials would come from, looked up without a network call (`platbench platforms`).

DefaultAzureCredential tries, in order: EnvironmentCredential (AZURE_TENANT_ID + AZURE_CLIENT_ID with
AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_USERNAME/AZURE_PASSWORD), WorkloadIdentity
(AZURE_FEDERATED_TOKEN_FILE), ManagedIdentity (IDENTITY_ENDPOINT + IDENTITY_HEADER where App Service,
Azure ML compute and Azure Arc set them; otherwise an IMDS network call, not checked offline), the shared token
cache, Azure CLI (`az login`: ~/.azure, or AZURE_CONFIG_DIR), Azure PowerShell, Azure Developer CLI:
https://learn.microsoft.com/python/api/azure-identity/azure.identity.defaultazurecredential
https://learn.microsoft.com/python/api/azure-identity/azure.identity.environmentcredential
https://learn.microsoft.com/cli/azure/azure-cli-configuration (AZURE_CONFIG_DIR, default ~/.azure)
https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference
(IDENTITY_ENDPOINT, IDENTITY_HEADER)"""
from __future__ import annotations

import json
import os
from pathlib import Path


def _environment() -> str | None:
    env = os.environ
    if env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID"):
        for var in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"):
            if env.get(var):
                return f"environment (AZURE_CLIENT_ID with {var})"
        if env.get("AZURE_FEDERATED_TOKEN_FILE"):
            return "workload identity (AZURE_FEDERATED_TOKEN_FILE)"
    if env.get("AZURE_CLIENT_ID") and env.get("AZURE_USERNAME") and env.get("AZURE_PASSWORD"):
        return "environment (AZURE_USERNAME/AZURE_PASSWORD)"
    if env.get("IDENTITY_ENDPOINT") and env.get("IDENTITY_HEADER"):
        return f"managed identity (IDENTITY_ENDPOINT {env['IDENTITY_ENDPOINT']})"
    return None


def _cli_login() -> str | None:
    """`az login` leaves the signed-in accounts in azureProfile.json (and tokens in msal_token_cache.*)."""
    config = Path(os.environ.get("AZURE_CONFIG_DIR") or "~/.azure").expanduser()
    profile = config / "azureProfile.json"
    try:
        data = json.loads(profile.read_text(encoding="utf-8-sig"))  # the CLI writes a BOM
    except (OSError, ValueError):
        return None
    subs = data.get("subscriptions") if isinstance(data, dict) else None
    if not subs:
        return None
    default = next((s for s in subs if isinstance(s, dict) and s.get("isDefault")), subs[0])
    token_cache = any(config.glob("msal_token_cache.*"))
    return (f"Azure CLI login ({profile}, subscription {default.get('name') or default.get('id')!r})"
            + ("" if token_cache else "; no token cache: run `az login` again"))


def find() -> tuple[bool, str]:
    where = _environment()
    if where:
        return True, where
    where = _cli_login()
    if where:
        return "no token cache" not in where, where
    return False, ("none found (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, `az login`, or "
                   "IDENTITY_ENDPOINT/IDENTITY_HEADER); a managed identity behind IMDS is not checked offline")
