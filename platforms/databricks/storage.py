"""A Unity Catalog volume through the Databricks Files API (databricks-sdk `WorkspaceClient.files`),
registered as the object-store scheme `dbfs`.

A volume's files live at `/Volumes/<catalog>/<schema>/<volume>/<path>`, written `dbfs:/Volumes/…` by
Databricks tools (https://docs.databricks.com/en/volumes/paths.html). In platbench's `scheme://bucket/key`
form the bucket is the volume's three-level name: `dbfs://catalog.schema.volume/key`; `uri()` prints the
Databricks form. The Files API (https://docs.databricks.com/api/workspace/files): PUT
/api/2.0/fs/files{path}?overwrite=… (upload; overwrite=false answers 409 when the file exists, which makes a
content-addressed upload idempotent), GET (download), HEAD (metadata), DELETE, GET
/api/2.0/fs/directories{path} (list, paginated). Files of 50 MiB or more go through the SDK's own multipart
upload (cloud pre-signed URLs); platbench's staging keeps its shards below that (train.SHARD_MB), so each is
one PUT and an interrupted staging resumes at the first shard the volume lacks.

Retries are the SDK's own (429/503 and connection errors, with backoff); platbench counts requests only."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator, Optional

from platforms.core.sdk import require
from platforms.core.store import ObjectStore
from platforms.errors import UserError

# Unity Catalog names in a volume path: letters, digits, '_' and '-' here (backquoted names may hold more;
# platbench refuses them rather than quote them)
VOLUME_RE = re.compile(r"^(?:dbfs:)?/Volumes/(?P<c>[A-Za-z0-9_-]+)/(?P<s>[A-Za-z0-9_-]+)/(?P<v>[A-Za-z0-9_-]+)/?$")
FULL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def volume_full_name(text: str) -> str:
    """`/Volumes/c/s/v`, `dbfs:/Volumes/c/s/v` or `c.s.v` → `c.s.v`; anything else is a UserError."""
    text = text.strip()
    m = VOLUME_RE.match(text)
    if m:
        return f"{m['c']}.{m['s']}.{m['v']}"
    if FULL_NAME_RE.match(text):
        return text
    raise UserError(f"{text!r} is not a Unity Catalog volume: give /Volumes/CATALOG/SCHEMA/VOLUME")


def volume_path(full_name: str) -> str:
    return "/Volumes/" + "/".join(full_name.split("."))


def workspace_client(host: Optional[str] = None, profile: Optional[str] = None):
    """The SDK's WorkspaceClient with its own unified auth (env DATABRICKS_HOST/DATABRICKS_TOKEN, OAuth,
    a ~/.databrickscfg profile, …: https://docs.databricks.com/en/dev-tools/auth/unified-auth.html);
    host/profile only narrow what it resolves."""
    sdk = require("databricks.sdk", "databricks", "the Databricks SDK (databricks-sdk)")
    errors = require("databricks.sdk.errors", "databricks")
    kwargs = {k: v for k, v in (("host", host), ("profile", profile)) if v}
    try:
        return sdk.WorkspaceClient(**kwargs)
    except (ValueError, errors.DatabricksError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"databricks: no usable credentials: {first}") from None


class VolumeStore(ObjectStore):
    scheme = "dbfs"

    def __init__(self, bucket: str, client=None, host: Optional[str] = None, profile: Optional[str] = None):
        super().__init__(volume_full_name(bucket))
        self.root = volume_path(self.bucket)
        self.client = client or workspace_client(host, profile)

    def uri(self, key: str = "") -> str:
        return f"dbfs:{self.root}/{key}"

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _call(self, fn, *args, **kwargs):
        self.stats.add(requests=1, attempts=1)
        return fn(*args, **kwargs)

    def bucket_exists(self) -> bool:
        from databricks.sdk.errors import NotFound, PermissionDenied

        try:
            self._call(self.client.volumes.read, self.bucket)
            return True
        except (NotFound, PermissionDenied):
            return False

    def size(self, key: str) -> Optional[int]:
        from databricks.sdk.errors import NotFound

        try:
            meta = self._call(self.client.files.get_metadata, self.path(key))
        except NotFound:
            return None
        return int(meta.content_length) if meta.content_length is not None else 0

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        stream = io.BytesIO(body) if isinstance(body, bytes) else body
        self._call(self.client.files.upload, self.path(key), stream, overwrite=not if_absent)

    def _exists(self, exc: Exception) -> bool:
        from databricks.sdk.errors import AlreadyExists, ResourceConflict

        return isinstance(exc, (AlreadyExists, ResourceConflict))

    def get_bytes(self, key: str) -> bytes:
        resp = self._call(self.client.files.download, self.path(key))
        with resp.contents as stream:
            data = stream.read()
        self.stats.add(bytes_down=len(data))
        return data

    def _download(self, key: str, tmp: Path) -> None:
        resp = self._call(self.client.files.download, self.path(key))
        with resp.contents as stream, open(tmp, "wb") as f:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                f.write(chunk)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Files under prefix: the folder part of prefix is listed recursively (the Files API lists one
        directory at a time), keys filtered by the whole prefix."""
        from databricks.sdk.errors import NotFound

        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        pending = [f"{self.root}/{folder}".rstrip("/")]
        cut = len(self.root) + 1
        while pending:
            directory = pending.pop()
            self.stats.add(requests=1, attempts=1)
            try:
                entries = list(self.client.files.list_directory_contents(directory))
            except NotFound:
                continue
            for e in entries:
                key = e.path[cut:].rstrip("/")
                if e.is_directory:
                    if key.startswith(prefix) or prefix.startswith(key + "/"):
                        pending.append(e.path.rstrip("/"))
                elif key.startswith(prefix):
                    yield key, int(e.file_size or 0)

    def _remove(self, key: str) -> None:
        self._call(self.client.files.delete, self.path(key))

    def _not_found(self, exc: Exception) -> bool:
        from databricks.sdk.errors import NotFound

        return isinstance(exc, NotFound)
