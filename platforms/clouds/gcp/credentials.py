"""Where Google Cloud credentials would come from, looked up without a network call (`platbench platforms`).

google.auth.default() ends at the Compute Engine metadata server, a network call; this checks the
sources on this machine in its order: https://cloud.google.com/docs/authentication/application-default-credentials"""
from __future__ import annotations

import os
from pathlib import Path


def find() -> tuple[bool, str]:
    explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return (Path(explicit).is_file(),
                f"GOOGLE_APPLICATION_CREDENTIALS={explicit}" + ("" if Path(explicit).is_file() else " (no such file)"))
    config = os.environ.get("CLOUDSDK_CONFIG") or str(Path("~/.config/gcloud").expanduser())
    adc = Path(config) / "application_default_credentials.json"
    if adc.is_file():
        return True, f"gcloud application-default credentials ({adc})"
    return False, "none found (run `gcloud auth application-default login`); a metadata server is not checked offline"
