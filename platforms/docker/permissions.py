"""Whether the container's user can read the dataset through its read-only mount: asked before anything is
created, when the container runs as someone else than the caller."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def unreadable(data: Path, user: str) -> Optional[str]:
    """The first path of the dataset (its folder's ancestors, its folders, its files) that the container's
    `user` (UID:GID) could not read through the read-only mount, by the mode bits (ACLs are not read), with
    why; None when it can read them all. Only asked when the container runs as someone else than the caller,
    who could read them all already (validate_job listed them)."""
    from platforms.core.staging import dataset_files

    uid, _, gid = user.partition(":")
    uid, gid = int(uid), int(gid or uid)
    if uid == 0:
        return None

    def denied(path: Path, need: int, what: str) -> Optional[str]:
        st = path.stat()
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        if (st.st_mode >> shift) & need != need:
            return f"{path} ({what}; mode {st.st_mode & 0o777:o}, owner {st.st_uid}:{st.st_gid})"
        return None

    root = data.resolve()
    _, _, files = dataset_files(root)
    folders = {root, *(p for f in files for p in Path(f).parents if p.is_relative_to(root))}
    checks = [(p, 0o1, "a folder above it that cannot be entered") for p in root.parents]
    checks += [(p, 0o5, "a folder that cannot be listed") for p in sorted(folders)]
    checks += [(Path(f), 0o4, "a file that cannot be read") for f in files]
    return next((why for path, need, what in checks if (why := denied(path, need, what))), None)
