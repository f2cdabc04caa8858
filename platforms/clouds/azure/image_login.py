"""Azure Container Registry, where Azure platforms (Azure ML) pull a custom environment's image from, for
`platbench image push PLATFORM`: a Microsoft Entra token from azure-identity (DefaultAzureCredential, the ARM scope),
exchanged at the registry's /oauth2/exchange for an ACR refresh token, which `docker login` takes as the
password of the null-GUID user.
https://learn.microsoft.com/azure/container-registry/container-registry-authentication#az-acr-login-with---expose-token
https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md (POST /oauth2/exchange: grant_type=access_token,
service, access_token → refresh_token)
Azure ML takes the image as REGISTRY.azurecr.io/REPO@sha256:… (launcher: image)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from platforms.core.sdk import require
from platforms.core.settings import parse_settings
from platforms.errors import UserError
from platforms.image.push import Login

ARM_SCOPE = "https://management.azure.com/.default"
NULL_USER = "00000000-0000-0000-0000-000000000000"


class AcrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry: str = Field(..., pattern=r"^[a-zA-Z0-9]{5,50}(\.azurecr\.[a-z.]+)?$|^[\w.-]+:\d+$")  # NAME or its host
    repository: str = Field("platbench", pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")


def login(settings: dict[str, str], dry_run: bool = False, who: str = "azure registry") -> Login:
    """`who` names the registry in messages: the platform pushed for (PlatformSpec.login)."""
    if "registry" not in settings:
        raise UserError(f"{who}: --set registry=NAME (the Azure Container Registry, NAME.azurecr.io)")
    cfg = parse_settings(AcrSettings, settings, who)
    host = cfg.registry if "." in cfg.registry or ":" in cfg.registry else f"{cfg.registry.lower()}.azurecr.io"
    command = (f"az acr login --name {host.split('.')[0]} --expose-token --output tsv --query accessToken | "
               f"docker login {host} --username {NULL_USER} --password-stdin")
    if dry_run:
        return Login(f"{host}/{cfg.repository}", login_commands=(command,), setting="image")
    identity = require("azure.identity", "azure", "azure-identity")
    import requests
    from azure.core.exceptions import AzureError

    try:
        aad = identity.DefaultAzureCredential().get_token(ARM_SCOPE).token
    except AzureError as exc:
        raise UserError(f"{who}: no Azure credentials ({str(exc).splitlines()[0][:200]})") from None
    scheme = "http" if host.split(":")[0] in ("127.0.0.1", "localhost") else "https"
    try:
        r = requests.post(f"{scheme}://{host}/oauth2/exchange", timeout=30,
                          data={"grant_type": "access_token", "service": host, "access_token": aad})
    except requests.RequestException as exc:
        raise UserError(f"{who}: {host} cannot be reached ({exc})") from None
    if r.status_code != 200 or "refresh_token" not in r.text:
        raise UserError(f"{who}: {host} refused the token exchange ({r.status_code})")
    return Login(f"{host}/{cfg.repository}", username=NULL_USER, password=r.json()["refresh_token"],
                 login_commands=(command,), setting="image")
