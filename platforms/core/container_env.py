"""What a launcher tells the trainer's container about the job: the platform, the platbench commit and the
image it was started from (trainer/environment.py and trainer/image_record.py read these). One place, so
every launcher sends the same variables."""
from __future__ import annotations

from typing import Optional

from platforms.core import tracking


def pinned_digest(image: Optional[str]) -> Optional[str]:
    """sha256:… of an image reference pinned by digest (REPO@sha256:…), else None."""
    return image.split("@", 1)[1] if image and "@sha256:" in image else None


def container_env(platform: str, image_env: Optional[dict[str, str]] = None, digest: Optional[str] = None,
                  **more: str) -> dict[str, str]:
    """PLATBENCH_PLATFORM, PLATBENCH_GIT_COMMIT (when known), PLATBENCH_IMAGE_DIGEST (`digest`, when known)
    and `image_env` (platforms.image.pinning.image_env of the image: its digest and, where the push record
    knows it, its image ID), then `more` (the platform's own variables, e.g. PLATBENCH_DATA)."""
    env = {"PLATBENCH_PLATFORM": platform}
    commit = tracking.code_commit()
    if commit:
        env["PLATBENCH_GIT_COMMIT"] = commit
    if digest:
        env["PLATBENCH_IMAGE_DIGEST"] = digest
    env.update(image_env or {})
    env.update(more)
    return env

