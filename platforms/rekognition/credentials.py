"""Where AWS credentials would come from, looked up offline: the same lookup as whichever platform owns the
s3:// store (the images go to S3 too), found through the registry rather than imported."""
from __future__ import annotations


def find() -> tuple[bool, str]:
    from platforms.core import registry

    owner = registry.schemes().get("s3")
    if owner is None or not owner.credentials:
        return False, "no AWS credential lookup is registered (no platform owns s3://)"
    return owner.load(owner.credentials)()
