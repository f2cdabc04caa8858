"""Datasets staged by platbench's launchers (platforms/storage/staging.py) arrive as a manifest plus
content-addressed tar shards: <root>/datasets/<fingerprint>/platbench-manifest.json and
<root>/shards/<sha256>.tar. Whatever data path the trainer is given (flag or platform channel) that holds
such a manifest is unpacked once into a local folder, each shard checked against its SHA-256 first; any
other folder is used as it is."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

from trainer.errors import DataError

STAGED_MANIFEST = "platbench-manifest.json"


def _staged_manifest(path: Path) -> Path | None:
    if path.is_file() and path.name == STAGED_MANIFEST:
        return path
    if (path / STAGED_MANIFEST).is_file():
        return path / STAGED_MANIFEST
    found = sorted(path.glob(f"datasets/*/{STAGED_MANIFEST}")) if path.is_dir() else []
    return found[0] if len(found) == 1 else None


def materialize(path: Path, env: Mapping[str, str] | None = None) -> Path:
    """The folder to train on: `path` itself, or the unpacked shards when `path` holds a staged manifest."""
    env = os.environ if env is None else env
    manifest_path = _staged_manifest(Path(path))
    if manifest_path is None:
        return Path(path)
    manifest = json.loads(manifest_path.read_text())
    root = manifest_path.parent.parent.parent if manifest_path.parent.parent.name == "datasets" else manifest_path.parent
    dest = Path(env.get("PLATBENCH_UNPACK_DIR") or tempfile.gettempdir()) / "platbench-data" / manifest["fingerprint"]
    if (dest / ".complete").is_file():
        return dest
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for shard in manifest["shards"]:
        data = (root / shard["key"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            raise DataError(f"staged shard {shard['key']} is corrupted (SHA-256 mismatch)")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python before 3.11.4: members are platbench's own (relative paths, regular files)
                tar.extractall(tmp)
    (tmp / ".complete").write_text(manifest["fingerprint"])
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
