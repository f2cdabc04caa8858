"""A launcher's image setting, pinned before anything is created (issue 18): every launcher that runs the
image from a registry (sagemaker image_uri, vertex image_uri, azureml image, skypilot image) calls `pin` in
its check() and launches what it returns, so the job runs exactly the image that was checked.

- REPO@sha256:… is taken as it is.
- REPO:TAG (no tag: latest) is resolved to the manifest digest the platform would pull, from two sources:
  * the record: the digest `platbench image push` read back from the registry for that very REPO:TAG
    (.platbench/image.json, `tags`; trainer/image_record.py);
  * the registry, now: the launcher's own API where it has one (SageMaker: ECR DescribeImages), else the
    local Docker engine's GET /distribution/{name}/json (the registry's descriptor of REPO:TAG, asked
    through the engine with the docker CLI's stored logins) when an engine answers
    (https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Distribution).
  Both known and different: refused (the tag was moved to another image since it was pushed). Either
  known: the job runs REPO@<that digest>. A registry that says the tag does not exist: refused.
  Neither known (not pushed from here, and the registry cannot be asked): refused, saying how to pin it —
  a tag alone could name another image by the time the platform pulls it, and the run could not say
  which image it measured.
- --dry-run contacts nothing: the plan shows this step (`plan_step`) instead.

Refusals are one line (UserError: exit 2), raised in check(), before anything is staged or recorded."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from platforms.core.api import PlanStep
from platforms.errors import UserError
from trainer.image_record import DIGEST_ENV, ID_ENV, RECORD, read

PINNED = re.compile(r"^(?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
# the docker CLI's reference grammar, loosely: a tag is what follows the last ':' of the last path
# component (a ':' before a '/' is a registry's port) — https://docs.docker.com/reference/cli/docker/image/tag/
TAG = re.compile(r"^[\w][\w.-]{0,127}$")

# lookup(repository, tag) → the registry's manifest digest for REPO:TAG; None when the registry cannot be
# asked (no API, no engine, no login); raises Missing when the registry answers that there is no such tag
Lookup = Callable[[str, str], Optional[str]]


class Missing(Exception):
    """The registry answered: no such repository or tag."""


@dataclass(frozen=True)
class Pinned:
    reference: str  # REPO@sha256:… — what the launcher runs
    digest: str     # the manifest digest
    source: str     # "as given" | "registry" | "record" | "registry and record"


def split(image: str) -> tuple[str, Optional[str], Optional[str]]:
    """(repository, tag, digest) of an image reference; one line when it is neither form."""
    m = PINNED.match(image)
    if m:
        return m["repo"], None, m["digest"]
    head, _, last = image.rpartition("/")
    name, colon, tag = last.partition(":")
    if "@" in image or not name or any(c.isspace() for c in image) or (colon and not TAG.match(tag)):
        raise UserError(f"image {image!r} is neither REPO@sha256:<64 hex digits> nor REPO:TAG")
    return f"{head}/{name}" if head else name, tag or "latest", None


def engine_lookup(repository: str, tag: str) -> Optional[str]:
    """The registry's digest of REPO:TAG through the local engine (its stored logins), or None when no
    engine answers or the registry does not (short timeouts: this is a check, not a pull)."""
    try:
        import docker
        from docker.utils import kwargs_from_env

        client = docker.APIClient(version="auto", timeout=20, **kwargs_from_env())
        return client.inspect_distribution(f"{repository}:{tag}")["Descriptor"]["digest"]
    except Exception:  # noqa: BLE001 - ImportError, DockerException, APIError, a malformed answer: cannot tell
        return None


def pin(image: str, who: str, setting: str, lookup: Optional[Lookup] = None, record: Path = RECORD) -> Pinned:
    repository, tag, digest = split(image)
    if digest:
        return Pinned(image, digest, "as given")
    try:
        doc = read(record)
    except ValueError as exc:
        raise UserError(f"{who}: {exc}") from None
    recorded = doc.tags.get(f"{repository}:{tag}") if doc else None
    try:
        remote = (lookup or engine_lookup)(repository, tag)
    except Missing as exc:
        raise UserError(f"{who}: {setting}={image}: the registry has no such image ({exc}); push it with `platbench "
                        "image push`") from None
    if recorded and remote and recorded != remote:
        raise UserError(f"{who}: {setting}={image} now names {remote} in the registry, but `platbench image push` "
                        f"recorded {recorded} for it ({record}): the tag was moved; give --set "
                        f"{setting}={repository}@{recorded} to run the image pushed, or push again")
    found = recorded or remote
    if not found:
        raise UserError(f"{who}: {setting}={image}: no digest for this tag (not pushed from here: no entry in "
                        f"{record}; and the registry could not be asked): give --set {setting}=REPO@sha256:… "
                        "(`platbench image push` prints it)")
    source = "registry and record" if recorded and remote else "record" if recorded else "registry"
    return Pinned(f"{repository}@{found}", found, source)


def pinned_settings(cfg, setting: str, who: str, lookup: Optional[Lookup] = None):
    """The launcher's settings with `setting` pinned (a copy; None stays None)."""
    image = getattr(cfg, setting)
    return cfg if not image else cfg.model_copy(update={setting: pin(image, who, setting, lookup).reference})


def image_env(image: Optional[str], record: Path = RECORD) -> dict[str, str]:
    """What a launcher tells the trainer about the image it runs (trainer/image_record.py): the digest it
    was started from, and its image ID where the push record names that digest (a container cannot ask)."""
    m = PINNED.match(image or "")
    if not m:
        return {}
    env = {DIGEST_ENV: m["digest"]}
    try:
        doc = read(record)
    except ValueError:
        doc = None
    if doc and m["digest"] in {*doc.pushed.values(), *doc.tags.values()}:
        env[ID_ENV] = doc.id
    return env


def plan_steps(image: Optional[str], setting: str, registry: str = "the registry") -> list[PlanStep]:
    """The pinning step for a dry-run plan (nothing contacted); none for an image pinned already."""
    if not image or PINNED.match(image):
        return []
    return [PlanStep(f"pin {setting}={image} to a digest: the one `platbench image push` recorded for it ({RECORD}) "
                    f"and {registry}'s must agree (refused if the tag moved); the job runs REPO@sha256:…",
                    f"docker manifest inspect --verbose {image}   # the registry's digest")]
