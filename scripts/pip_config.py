"""This machine's pip settings (`pip config list`: config files and PIP_* variables, as pip itself reads them),
for the tools that install without pip: scripts/uv_pip.py (uv reads no pip configuration) and
scripts/image/pip_mirror.py (the image builds)."""
from __future__ import annotations

import re
import subprocess

PRECEDENCE = {":env:": 3, "install": 2, "global": 1}  # PIP_* variables win over [install] over [global]
LINE = re.compile(r"^(?P<section>[^.]+)\.(?P<key>[^=]+)='(?P<value>.*)'$")


def pip_settings(python: str) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                         check=True).stdout
    best: dict[str, tuple[int, str]] = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if not m or m["section"] not in PRECEDENCE:
            continue
        rank = PRECEDENCE[m["section"]]
        if m["key"] not in best or rank > best[m["key"]][0]:
            best[m["key"]] = (rank, m["value"])
    return {k: v for k, (_, v) in best.items()}


def timeout(settings: dict[str, str]) -> str | None:
    return settings.get("default-timeout") or settings.get("timeout")
