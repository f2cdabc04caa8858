"""The local Docker engine through the Docker SDK for Python (low-level APIClient), and the record of the
image `platbench image build` made (.platbench/image.json in the project folder).

Docker SDK: https://docker-py.readthedocs.io/en/stable/api.html (APIClient.build, tag, push,
inspect_image, inspect_distribution). The engine is found the way the docker CLI finds it (DOCKER_HOST,
else the default socket): docker.utils.kwargs_from_env."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from platforms.core.sdk import require
from platforms.errors import UserError

RECORD = Path(".platbench") / "image.json"


def api() -> Any:
    """An APIClient that answered a ping, or one line saying no engine runs."""
    docker = require("docker", "docker", "the Docker SDK for Python")
    try:
        client = docker.APIClient(version="auto", timeout=int(os.environ.get("PLATBENCH_DOCKER_TIMEOUT", "3600")),
                                  **docker.utils.kwargs_from_env())
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
        raise UserError(f"no Docker engine answers at {where}: {str(exc).splitlines()[0][:200]}") from None
    return client


def errors():
    return require("docker", "docker", "the Docker SDK for Python").errors


def image_id(client, image: str) -> tuple[str, list[str]]:
    """(image ID, RepoDigests) of a local image, or one line saying the engine does not hold it."""
    try:
        info = client.inspect_image(image)
    except errors().ImageNotFound:
        raise UserError(f"image {image!r} is not in the local Docker engine (platbench image build)") from None
    return info["Id"], list(info.get("RepoDigests") or [])


def identity(client, image: str) -> str:
    """The digest a run made from `image` records: its registry digest when it was pushed or pulled
    (RepoDigests: what the registry and the platforms report), else its image ID (sha256 of its config)."""
    ident, repo_digests = image_id(client, image)
    return repo_digests[0].split("@", 1)[1] if repo_digests else ident


def read_record(path: Path = RECORD) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); build the image again (platbench image build)") from None


def write_record(doc: dict, path: Path = RECORD) -> None:
    """Atomically (a reader never sees half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({**doc, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    tmp.replace(path)


def recorded_image(path: Path = RECORD) -> dict:
    doc = read_record(path)
    if not doc:
        raise UserError(f"no image recorded in {path}: build it first (platbench image build), or name one with --image")
    return doc
