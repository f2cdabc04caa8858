"""Datasets staged by platbench's launchers (platforms/core/staging.py) arrive as a manifest plus
content-addressed tar shards: <root>/datasets/<fingerprint>/platbench-manifest.json and
<root>/shards/<sha256>.tar. Whatever data path the trainer is given (flag or platform channel) that holds
such a manifest is unpacked once into a local folder, each shard checked against its SHA-256 first; any
other folder is used as it is.

Where the objects land is not the same on every platform: SageMaker's ManifestFile channel lists S3 URIs
as a prefix plus relative keys (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html),
and neither that page nor the File / FastFile input-mode pages
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-access-training-data.html) define the path each
object gets under /opt/ml/input/data/<channel>/ (its relative key, or its bare name). So the manifest is
looked for anywhere under the data path, and a shard not at its key beside the manifest's root is looked
up by its content-addressed file name (<sha256>.tar) anywhere under the data path; its SHA-256 is
checked either way."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Mapping

from trainer.errors import DataError

STAGED_MANIFEST = "platbench-manifest.json"


def _staged_manifest(path: Path) -> Path | None:
    if path.is_file() and path.name == STAGED_MANIFEST:
        return path
    if (path / STAGED_MANIFEST).is_file():
        return path / STAGED_MANIFEST
    found = sorted(path.glob(f"datasets/*/{STAGED_MANIFEST}")) if path.is_dir() else []
    if not found and path.is_dir():  # another layout of the same objects (module docstring)
        found = sorted(path.rglob(STAGED_MANIFEST))
    return found[0] if len(found) == 1 else None


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _checked_members(tar: tarfile.TarFile, key: str) -> list[tarfile.TarInfo]:
    """platbench's shards hold regular files under relative paths and nothing else. Refuse anything else
    (absolute paths, `..`, links, devices, fifos) before a byte is written: a staged bucket may hold a
    tar someone else made, and older Pythons' extractall would follow such members out of the folder."""
    members = tar.getmembers()
    for m in members:
        parts = PurePosixPath(m.name).parts
        if not m.name or m.name.startswith(("/", "\\")) or ".." in parts or "\\" in m.name or not parts:
            raise DataError(f"staged shard {key} holds an unsafe path {m.name!r}; refusing to unpack it")
        if not m.isreg():
            kind = ("a symlink" if m.issym() else "a hard link" if m.islnk() else "a directory" if m.isdir()
                    else "a device" if m.ischr() or m.isblk() else "a fifo" if m.isfifo() else "not a regular file")
            raise DataError(f"staged shard {key} member {m.name!r} is {kind}; refusing to unpack it")
    return members


def _shard_path(root: Path, shard: dict, search: Path | None = None) -> Path:
    key, sha = shard.get("key"), shard.get("sha256")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise DataError(f"staged manifest: shard sha256 {sha!r} is not a SHA-256 hex digest")
    if not isinstance(key, str) or not key or PurePosixPath(key).is_absolute() or ".." in PurePosixPath(key).parts:
        raise DataError(f"staged manifest: shard key {key!r} is not a relative path inside the dataset")
    if (root / key).is_file() or search is None or not search.is_dir():
        return root / key
    # not at its key: the same object under another layout of the data path (module docstring)
    found = sorted(p for p in search.rglob(PurePosixPath(key).name) if p.is_file())
    return found[0] if found else root / key


def materialize(path: Path, env: Mapping[str, str] | None = None) -> Path:
    """The folder to train on: `path` itself, or the unpacked shards when `path` holds a staged manifest."""
    env = os.environ if env is None else env
    manifest_path = _staged_manifest(Path(path))
    if manifest_path is None:
        return Path(path)
    try:
        manifest = json.loads(manifest_path.read_text())
        fingerprint, shards = manifest["fingerprint"], list(manifest["shards"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"staged manifest {manifest_path} is unreadable ({exc!r})") from None
    # the fingerprint names a folder: only a hex digest may (no `..`, no `/`, no absolute path)
    if not isinstance(fingerprint, str) or not _HEX64.fullmatch(fingerprint):
        raise DataError(f"staged manifest {manifest_path}: fingerprint {str(fingerprint)[:80]!r} is not a "
                        f"SHA-256 hex digest")
    root = manifest_path.parent.parent.parent if manifest_path.parent.parent.name == "datasets" else manifest_path.parent
    dest = Path(env.get("PLATBENCH_UNPACK_DIR") or tempfile.gettempdir()) / "platbench-data" / fingerprint
    if (dest / ".complete").is_file():
        return dest
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for shard in shards:
            shard_file = _shard_path(root, shard if isinstance(shard, dict) else {}, Path(path))
            try:
                data = shard_file.read_bytes()
            except OSError as exc:
                raise DataError(f"staged shard {shard['key']} cannot be read: {exc.strerror or exc}") from None
            if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                raise DataError(f"staged shard {shard['key']} is corrupted (SHA-256 mismatch)")
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    members = _checked_members(tar, shard["key"])
                    if hasattr(tarfile, "data_filter"):  # Python ≥ 3.11.4 / 3.10.12: tarfile's own guard too
                        tar.extractall(tmp, members=members, filter="data")
                    else:  # every member checked above: regular files under safe relative paths only
                        tar.extractall(tmp, members=members)
            except tarfile.TarError as exc:
                raise DataError(f"staged shard {shard['key']} is not a readable tar ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".complete").write_text(fingerprint)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
