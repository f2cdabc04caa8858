"""Where Databricks credentials would come from, looked up without a network call (`platbench platforms`).

The SDK's unified authentication (https://docs.databricks.com/en/dev-tools/auth/unified-auth.html and
https://docs.databricks.com/en/dev-tools/auth/config-profiles.html) reads, in order: explicit settings, the
environment (DATABRICKS_HOST with DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID + DATABRICKS_CLIENT_SECRET for
OAuth machine-to-machine), then a profile of the configuration file (DATABRICKS_CONFIG_FILE, default
~/.databrickscfg; the profile DATABRICKS_CONFIG_PROFILE, default DEFAULT) holding host and token, client id
and secret, or auth_type=databricks-cli (a `databricks auth login` token cache, ~/.databricks/token-cache.json)."""
from __future__ import annotations

import configparser
import os
from pathlib import Path

CREDENTIAL_KEYS = (("token", "personal access token"), ("client_secret", "OAuth client secret"),
                   ("azure_client_secret", "Azure service principal"))


def _environment() -> str | None:
    env = os.environ
    if env.get("DATABRICKS_HOST") and env.get("DATABRICKS_TOKEN"):
        return f"environment (DATABRICKS_HOST {env['DATABRICKS_HOST']} with DATABRICKS_TOKEN)"
    if env.get("DATABRICKS_HOST") and env.get("DATABRICKS_CLIENT_ID") and env.get("DATABRICKS_CLIENT_SECRET"):
        return "environment (DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET, OAuth M2M)"
    return None


def _profile(profile: str | None = None) -> tuple[bool, str] | None:
    path = Path(os.environ.get("DATABRICKS_CONFIG_FILE") or "~/.databrickscfg").expanduser()
    name = profile or os.environ.get("DATABRICKS_CONFIG_PROFILE") or "DEFAULT"
    parser = configparser.ConfigParser()
    try:
        if not parser.read(path):
            return None
    except configparser.Error as exc:
        return False, f"{path} cannot be read: {str(exc).splitlines()[0]}"
    section = parser.defaults() if name == "DEFAULT" else (parser[name] if parser.has_section(name) else None)
    if not section:
        return False, f"{path} has no profile [{name}]"
    if not section.get("host"):
        return False, f"{path} profile [{name}] has no host"
    for key, what in CREDENTIAL_KEYS:
        if section.get(key):
            return True, f"{path} profile [{name}] ({what}, host {section['host']})"
    if section.get("auth_type") == "databricks-cli":
        cache = Path("~/.databricks/token-cache.json").expanduser()
        return cache.is_file(), (f"{path} profile [{name}] (databricks-cli login, host {section['host']})"
                                 + ("" if cache.is_file() else "; no token cache: run `databricks auth login`"))
    return False, f"{path} profile [{name}] holds no token or client secret"


def find(profile: str | None = None) -> tuple[bool, str]:
    where = _environment()
    if where:
        return True, where
    found = _profile(profile)
    if found:
        return found
    return False, ("none found (DATABRICKS_HOST + DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID/SECRET, or a profile in "
                   "~/.databrickscfg: `databricks configure` / `databricks auth login`)")
