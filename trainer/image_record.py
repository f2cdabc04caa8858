"""The image record and the identity a run records (issue 18), defined once for both sides: `platbench image
build|push` (platforms/image) writes the record, the trainer inside the image reads it. Torch-free and
platforms-free (the trainer imports nothing from platforms/).

Two digests name one image, and a run records both where it knows them:
- the image ID: sha256 of the image's config (`docker image inspect -f {{.Id}}`). `image build` prints it,
  the registry's manifest carries it as config.digest, and it is the same on every engine and registry:
  the identity that is identical in the build, the registry, the MLflow run (tag platbench.image_id) and
  results.json (image_id).
- the manifest digest (sha256 of the registry's manifest: RepoDigests, Docker-Content-Digest): what a
  platform pulls (REPO@sha256:…). It exists only once the image is pushed, and a classic-store engine
  (dockerd 20.10) has no other name for a pushed image. results.json's image_digest is the digest the run
  was started from: the manifest digest where a launcher pulled REPO@sha256:…, else the image ID.

The record: `.platbench/image.json` in the project folder (RECORD), written by `platbench image build`:
  image       the tag built (e.g. platbench:latest)
  id          the image ID (config digest)
  build_id    a fresh uuid the build baked into the image's last layer (Dockerfile: ARG/ENV/LABEL
              PLATBENCH_BUILD_ID): how a container knows the record is about itself
  build_args, versions   what went in (versions: the lock's pins of the stack)
  pushed      repository → the manifest digest `image push` last read back from it
  tags        REPO:TAG → the manifest digest `image push` read back for that tag (what a launcher checks a
              tag against: platforms/image/pinning.py)

A container cannot ask the engine what it is. `docker compose run trainer` mounts the project folder at its
own path, so the trainer reads $PWD/.platbench/image.json and takes its image ID when the record's build_id
is the one baked into the image it runs in (PLATBENCH_BUILD_ID). An image built otherwise (`docker compose
build`, `docker build`) has an empty PLATBENCH_BUILD_ID: then no identity, and results.json's
image_build_id says so for `platbench check`.

Environment a launcher may pass instead (it wins over the record): PLATBENCH_IMAGE_DIGEST (the digest the job
was started from), PLATBENCH_IMAGE_ID (the image ID)."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RECORD = Path(".platbench") / "image.json"
BUILD_ID = "PLATBENCH_BUILD_ID"        # the build arg, the image's ENV and LABEL (Dockerfile, last lines)
DIGEST_ENV = "PLATBENCH_IMAGE_DIGEST"  # a launcher's: the digest the job was started from
ID_ENV = "PLATBENCH_IMAGE_ID"          # a launcher's: the image ID (config digest), where it knows it
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a newer platbench's record still reads

    image: str
    id: str = Field(description="the image ID: sha256 of its config")
    build_id: Optional[str] = None  # records written before issue 18's third part have none
    build_args: dict[str, str] = {}
    versions: dict[str, str] = {}
    pushed: dict[str, str] = {}
    tags: dict[str, str] = {}
    updated: Optional[str] = None


def read(path: Path = RECORD) -> Optional[ImageRecord]:
    """The record, None when there is none; ValueError saying why when it cannot be read."""
    try:
        return ImageRecord.model_validate_json(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise ValueError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None


def write(record: ImageRecord, path: Path = RECORD) -> None:
    """Atomically (a container reading it never sees half a record)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record.model_dump(), indent=2) + "\n")
    tmp.replace(path)


@dataclass(frozen=True)
class Identity:
    digest: Optional[str]    # results.json image_digest: what the run was started from
    image_id: Optional[str]  # results.json image_id: the config digest
    build_id: Optional[str]  # the PLATBENCH_BUILD_ID baked into the image this runs in; None: not in one
    why_none: Optional[str] = None  # in an image, but no identity: why (for the log and `platbench check`)

    def config(self) -> dict:
        """trainer.train.TrainConfig's image fields."""
        return {"image_digest": self.digest, "image_id": self.image_id, "image_build_id": self.build_id}


def identity(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Identity:
    """The identity this process records: a launcher's environment first; the image ID from the project's
    record when its build_id is the one baked into this image."""
    env = os.environ if env is None else env
    build_id = env.get(BUILD_ID)  # "" in an image built without `platbench image build`
    digest, image_id, why = env.get(DIGEST_ENV) or None, env.get(ID_ENV) or None, None
    if build_id is not None and not image_id:
        image_id, why = _recorded_id(build_id, Path(cwd or Path.cwd()) / RECORD)
    return Identity(digest or image_id, image_id, build_id, None if digest or image_id else why)


def _recorded_id(build_id: str, path: Path) -> tuple[Optional[str], Optional[str]]:
    """(the record's image ID, None) when the record is this image's, else (None, why not)."""
    if not build_id:
        return None, ("this image was not built by `platbench image build` (no build id baked in: e.g. `docker "
                      "compose build`), so no record names it; build it with `platbench image build`, or pass "
                      "PLATBENCH_IMAGE_DIGEST")
    try:
        record = read(path)
    except ValueError as exc:
        return None, str(exc)
    if record is None:
        return None, (f"no {path} (the record `platbench image build` writes in the project folder) where this "
                      "runs")
    if record.build_id != build_id:
        return None, (f"{path} is another build's (build id {record.build_id or 'none'}, this image's {build_id}): "
                      "build again with `platbench image build` in this folder")
    return record.id, None
