"""`uv pip ARGS` into the environment of the Python that runs this, with this machine's pip settings.

    ENV/bin/python scripts/uv_pip.py install -c constraints.txt -e ".[dev]"

uv (https://docs.astral.sh/uv/pip/) installs what pip installs, from the same indexes, several times faster
(parallel downloads and unpacking, a cache it links from). It is bootstrapped with pip at the version
constraints.txt pins, into the same environment. uv reads no pip configuration, so the machine's (index-url,
extra-index-url, find-links, no-index, cert, timeout: scripts/pip_config.py) become uv's options, and
uv searches all indexes for the best match as pip does (its default takes a package from the first index that
has it). Byte-code is compiled at install, as pip does, so an environment made by either holds the same files.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pip_config import pip_settings, timeout

REPO = Path(__file__).resolve().parents[1]


def pinned_uv() -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        m = re.fullmatch(r"uv==(\S+)", line.strip())
        if m:
            return m[1]
    sys.exit("scripts/uv_pip.py: constraints.txt pins no uv (a line uv==VERSION)")


def ensure_uv(bin_dir: Path) -> Path:
    """The env's uv at the pinned version, installed with pip (from the lock) when missing or another."""
    uv = bin_dir / "uv"
    want = pinned_uv()
    have = subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout if uv.exists() else ""
    if have.split()[1:2] != [want]:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-c", str(REPO / "constraints.txt"), "uv"], check=True)
    return uv


def uv_options(settings: dict[str, str]) -> list[str]:
    opts: list[str] = []
    if settings.get("index-url"):
        opts += ["--default-index", settings["index-url"]]
    for url in settings.get("extra-index-url", "").split():
        opts += ["--index", url]
    for url in settings.get("find-links", "").split():
        opts += ["--find-links", url]
    if settings.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        opts.append("--no-index")
    if settings.get("cert"):
        opts += ["--cert", settings["cert"]]
    return [*opts, "--index-strategy", "unsafe-best-match"]


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "install":
        sys.exit("usage: ENV/bin/python scripts/uv_pip.py install ARGS... (uv pip install's arguments)")
    settings = pip_settings(sys.executable)
    uv = ensure_uv(Path(sys.executable).parent)
    env = dict(os.environ)
    if timeout(settings):
        env["UV_HTTP_TIMEOUT"] = timeout(settings)
    cmd = [str(uv), "pip", "install", "--python", sys.executable, "--compile-bytecode", *uv_options(settings),
           *argv[1:]]
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main(sys.argv[1:])
