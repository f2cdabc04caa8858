"""Artifact Registry, where Google Cloud platforms (Vertex AI) pull custom containers from, for `platbench image
push PLATFORM`: an
OAuth access token from google-auth's application default credentials, user "oauth2accesstoken".
https://cloud.google.com/artifact-registry/docs/docker/authentication#token
https://cloud.google.com/artifact-registry/docs/docker/names (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE)
The repository is not created here (a Docker-format repository: `gcloud artifacts repositories create`).
Vertex AI takes the image as REPO@sha256:… in ContainerSpec.imageUri (launcher: image_uri)."""
from __future__ import annotations

import os
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from platforms.core.sdk import require
from platforms.core.settings import parse_settings
from platforms.errors import UserError
from platforms.image.push import Login

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class ArtifactRegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Optional[str] = Field(default_factory=lambda: os.environ.get("GOOGLE_CLOUD_PROJECT")
                                   or os.environ.get("CLOUDSDK_CORE_PROJECT"))
    region: str = Field("us-central1", pattern=r"^[a-z0-9-]+$")  # the repository's location
    repository: str = Field("platbench", pattern=r"^[a-z0-9-]+$")
    image: str = Field("platbench", pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    registry: Optional[str] = None  # the host to push to; default LOCATION-docker.pkg.dev


def login(settings: dict[str, str], dry_run: bool = False, who: str = "gcp registry") -> Login:
    """`who` names the registry in messages: the platform pushed for (PlatformSpec.login)."""
    cfg = parse_settings(ArtifactRegistrySettings, settings, who)
    host = cfg.registry or f"{cfg.region}-docker.pkg.dev"
    command = f"gcloud auth print-access-token | docker login -u oauth2accesstoken --password-stdin https://{host}"
    if dry_run:
        return Login(f"{host}/{cfg.project or 'PROJECT'}/{cfg.repository}/{cfg.image}", login_commands=(command,))
    if not cfg.project:
        raise UserError(f"{who}: no project: --set project=… (or GOOGLE_CLOUD_PROJECT)")
    google_auth = require("google.auth", "gcp", "google-auth")
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import Request

    try:
        credentials, _ = google_auth.default(scopes=[SCOPE])
        credentials.refresh(Request())
    except GoogleAuthError as exc:
        raise UserError(f"{who}: no Google credentials ({str(exc).splitlines()[0]})") from None
    return Login(f"{host}/{cfg.project}/{cfg.repository}/{cfg.image}", username="oauth2accesstoken",
                 password=credentials.token, login_commands=(command,))
