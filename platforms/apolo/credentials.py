"""Where Apolo credentials would come from, looked up without a network call (`platbench platforms`).

The SDK reads its login from a config directory (`apolo login` / `apolo config login-with-token` write
<dir>/db; the directory is $APOLO_CONFIG, else ~/.apolo, else the old ~/.neuro), or from
APOLO_PASSED_CONFIG (a base64 JSON login handed to jobs with pass_config), which it turns into a config
directory on first use (apolo_sdk Factory.get / login_with_passed_config).
https://docs.apolo.us/index/apolo-cli/commands/config (login, login-with-token)
https://apolo-sdk.readthedocs.io/stable/factory_reference.html"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def config_dir(explicit: Optional[str] = None) -> Path:
    """The directory the SDK would use (apolo_sdk._config_factory._choose_path), without importing it."""
    if explicit:
        return Path(explicit).expanduser()
    paths = [Path(os.environ.get("APOLO_CONFIG", "~/.apolo")).expanduser(),
             Path(os.environ.get("NEUROMATION_CONFIG", "~/.neuro")).expanduser()]
    return next((p for p in paths if (p / "db").exists()), paths[0])


def find(explicit: Optional[str] = None) -> tuple[bool, str]:
    path = config_dir(explicit)
    if (path / "db").is_file():
        return True, f"apolo login in {path}"
    for var in ("APOLO_PASSED_CONFIG", "NEURO_PASSED_CONFIG"):
        if os.environ.get(var):
            return True, f"{var} (a passed login)"
    return False, (f"none found in {path} (run `apolo login`, or `apolo config login-with-token TOKEN URL`; "
                   "or set APOLO_PASSED_CONFIG)")
