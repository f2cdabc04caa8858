"""The local Docker engine through the Docker SDK for Python (low-level APIClient), and the record of the
image `platbench image build` made (.platbench/image.json in the project folder; its format and what the
image ID and the manifest digest each name: trainer/image_record.py).

Docker SDK: https://docker-py.readthedocs.io/en/stable/api.html (APIClient.build, tag, push,
inspect_image, inspect_distribution). The engine is found the way the docker CLI finds it (DOCKER_HOST,
else the default socket): docker.utils.kwargs_from_env."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from platforms.core.sdk import require
from platforms.errors import UserError
from trainer import image_record
from trainer.image_record import RECORD, ImageRecord  # the record's format, shared with the trainer


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
    """The digest a run made from `image` is started from (results.json image_digest): its manifest digest
    when it was pushed or pulled (RepoDigests: what the registry and the platforms report), else its image
    ID (sha256 of its config, which image_id records either way). trainer/image_record.py says which is which."""
    ident, repo_digests = image_id(client, image)
    return repo_digests[0].split("@", 1)[1] if repo_digests else ident


def read_record(path: Path = RECORD) -> Optional[ImageRecord]:
    try:
        return image_record.read(path)
    except ValueError as exc:
        raise UserError(f"{exc}; build the image again (platbench image build)") from None


def write_record(record: ImageRecord, path: Path = RECORD) -> None:
    image_record.write(record, path)


def recorded_image(path: Path = RECORD) -> ImageRecord:
    record = read_record(path)
    if not record:
        raise UserError(f"no image recorded in {path}: build it first (platbench image build), or name one with --image")
    return record
