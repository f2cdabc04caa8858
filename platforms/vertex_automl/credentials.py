"""Where Google Cloud credentials would come from, looked up offline: the same lookup as whichever platform
owns the gs:// store (the images go to Cloud Storage too), found through the registry rather than imported."""
from __future__ import annotations


def find() -> tuple[bool, str]:
    from platforms.core import registry

    owner = registry.schemes().get("gs")
    if owner is None or not owner.credentials:
        return False, "no Google Cloud credential lookup is registered (no platform owns gs://)"
    return owner.load(owner.credentials)()
