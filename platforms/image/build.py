"""`platbench image build`: the project's Dockerfile through the Docker SDK's low-level build (streamed JSON
messages, shown as a step progress), the build arguments and the resulting image ID recorded, and the
lock's versions of the stack shown (the Dockerfile installs exactly constraints.txt and fails on anything
else: its pip freeze check).

Stream format: one JSON object per message, {"stream": text} for the builder's output ("Step 3/21 : …"
with the classic builder), {"error": text} on failure, {"aux": {"ID": "sha256:…"}} for the image built
(https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Image/operation/ImageBuild)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Optional

from platforms.errors import UserError

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
SHOWN = ("torch", "torchvision", "lightning", "mlflow")  # the stack's heart, from the lock


def lock_versions(context: Path) -> dict[str, str]:
    """Package → pinned version, from the context's constraints.txt (what the image installs)."""
    pins = {}
    lock = context / "constraints.txt"
    if lock.is_file():
        for line in lock.read_text().splitlines():
            name, sep, version = line.split("#", 1)[0].strip().partition("==")
            if sep:
                pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def git_commit(context: Path) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(context), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def build_args(context: Path, extra: Iterable[str]) -> dict[str, str]:
    args = {"GIT_COMMIT": git_commit(context)}
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--build-arg {item!r}: expected KEY=VALUE")
        args[key] = value
    return args


def follow(messages: Iterable[dict], on_step: Callable[[int, int, str], None], log) -> Optional[str]:
    """Consume the build stream: report steps, keep the full text in `log`; return the image ID (aux.ID),
    or raise UserError with the builder's error and its last lines."""
    image, tail = None, []
    for msg in messages:
        if "error" in msg:
            raise UserError(f"docker build failed: {msg['error'].strip()} (last lines: "
                            f"{' | '.join(t for t in tail[-3:])}; full log: {log.name})")
        text = msg.get("stream", "")
        if text:
            log.write(text)
            for line in text.splitlines():
                if line.strip():
                    tail = (tail + [line.strip()[:160]])[-20:]
                m = STEP.match(line.strip())
                if m:
                    on_step(int(m[1]), int(m[2]), m[3][:100])
        aux = msg.get("aux") or {}
        if aux.get("ID"):
            image = aux["ID"]
    return image


def build(client, context: Path, tag: str, args: dict[str, str], on_step, log, network: Optional[str] = None) -> str:
    if not (context / "Dockerfile").is_file():
        raise UserError(f"no Dockerfile in {context}: run from the platbench folder or pass --context DIR")
    stream = client.build(path=str(context), tag=tag, buildargs=args, decode=True, rm=True, network_mode=network)
    image = follow(stream, on_step, log)
    if not image:  # engines that send no aux message: the tag names the result
        image = client.inspect_image(tag)["Id"]
    return image
