"""Apolo platform storage (`storage://CLUSTER/ORG/PROJECT/PATH`) as an ObjectStore, through apolo-sdk's
Storage API (stat, ls, mkdir, create, write, open, mv, rm — the calls `apolo cp`/`ls`/`mkdir`/`rm` make).
The store's "bucket" is the cluster; its keys are paths on that cluster's storage (ORG/PROJECT/...).

Storage is a file system, not an object store: a file's parent folder must exist before it is created
(the SDK's upload_file checks it), so parents are made first (MKDIRS). A large shard is written to
`<key>.part` in 1 MiB-aligned pieces (CREATE, then WRITE with a Content-Range, as the SDK's own upload
does) and renamed onto its key when complete (RENAME), so a half-written shard is never mistaken for a
staged one and an interrupted upload continues from the size `<key>.part` reached. Retries are the SDK's
own (`retries` around each chunk, for connection errors); platbench only counts calls.
https://apolo-sdk.readthedocs.io/stable/storage_reference.html
https://docs.apolo.us/index/apolo-cli/commands/storage"""
from __future__ import annotations

import errno
from pathlib import Path
from typing import Iterator, Optional

from platforms.core.store import ObjectStore
from platforms.errors import UserError

CHUNK = 1 << 20  # the SDK's READ_SIZE: one CREATE/WRITE per MiB


class ApoloStore(ObjectStore):
    scheme = "storage"

    def __init__(self, bucket: str, session=None, config: Optional[str] = None):
        super().__init__(bucket)
        from platforms.apolo.session import Session, sdk

        self._own = session is None
        self.session = session or Session(config)
        self.sdk = sdk()
        from yarl import URL

        self._URL = URL

    def _uri(self, key: str):
        return self._URL(f"storage://{self.bucket}/{key.strip('/')}")

    def _call(self, coro):
        self.stats.add(requests=1, attempts=1)
        try:
            return self.session.run(coro)
        except self.sdk.AuthorizationError as exc:  # 403: this user has no access to that project's storage
            raise UserError(f"apolo storage: no access on cluster {self.bucket}: {exc}") from None
        except self.sdk.AuthError as exc:  # a revoked or expired login: one line, not a traceback
            raise UserError(f"apolo storage: the platform refused the login ({exc}); log in again "
                            "(`apolo login`)") from None

    def snapshot(self):
        return self.stats.snapshot()

    def close(self) -> None:
        if self._own:
            self.session.close()

    # ------------------------------------------------------------------ reads
    def bucket_exists(self) -> bool:
        return self.bucket in self.session.client.config.clusters

    def _stat(self, key: str):
        try:
            return self._call(self.session.client.storage.stat(self._uri(key)))
        except self.sdk.ResourceNotFound:
            return None

    def size(self, key: str) -> Optional[int]:
        st = self._stat(key)
        return int(st.size) if st is not None and st.is_file() else None

    def get_bytes(self, key: str) -> bytes:
        async def read():
            out = bytearray()
            async with self.session.client.storage.open(self._uri(key)) as it:
                async for chunk in it:
                    out += chunk
            return bytes(out)

        data = self._call(read())
        self.stats.add(bytes_down=len(data))
        return data

    def _download(self, key: str, tmp: Path) -> None:
        self._call(self.session.client.storage.download_file(self._uri(key), self._URL(tmp.resolve().as_uri())))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every file under prefix (a folder path, or a folder path plus the start of a name)."""
        folder, _, _ = prefix.rpartition("/")

        async def walk(path: str, out: list):
            try:
                async with self.session.client.storage.list(self._uri(path)) as it:
                    entries = [st async for st in it]
            except (self.sdk.ResourceNotFound, NotADirectoryError):
                return
            for st in entries:
                rel = f"{path}/{st.name}" if path else st.name
                if st.is_dir() and (prefix.startswith(rel + "/") or (rel + "/").startswith(prefix)):
                    await walk(rel, out)
                elif st.is_file() and rel.startswith(prefix):
                    out.append((rel, int(st.size)))

        found: list = []
        self._call(walk(folder, found))
        yield from sorted(found)

    # ------------------------------------------------------------------ writes
    def _mkdirs(self, key: str) -> None:
        parent = key.rpartition("/")[0]
        if parent:
            self._call(self.session.client.storage.mkdir(self._uri(parent), parents=True, exist_ok=True))

    def mkdir(self, key: str) -> None:
        self._call(self.session.client.storage.mkdir(self._uri(key), parents=True, exist_ok=True))

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        """Storage has no conditional create: "only if absent" is a stat first (content-addressed keys
        make a lost race harmless: both writers write the same bytes). put_file goes through the SDK's own
        upload_file, so body is bytes here."""
        if if_absent and self._stat(key) is not None:
            raise FileExistsError(key)
        self._mkdirs(key)
        self._write(key, body, 0)

    def _exists(self, exc: Exception) -> bool:
        return isinstance(exc, FileExistsError)

    def _write(self, key: str, data: bytes, offset: int) -> None:
        storage = self.session.client.storage
        if offset == 0:
            self._call(storage.create(self._uri(key), data[:CHUNK]))
            offset = min(CHUNK, len(data))
        while offset < len(data):
            self._call(storage.write(self._uri(key), data[offset:offset + CHUNK], offset))
            offset += CHUNK

    def put_file(self, key: str, path: Path) -> None:
        self._mkdirs(key)
        self._call(self.session.client.storage.upload_file(self._URL(Path(path).resolve().as_uri()), self._uri(key)))
        self.stats.add(bytes_up=Path(path).stat().st_size)

    def put_large(self, key: str, data: bytes, part_size: int) -> dict:
        """Resumable: continue `<key>.part` from the size it reached, then rename it onto `key`."""
        part = key + ".part"
        self._mkdirs(key)
        have = self.size(part) or 0
        offset = have - have % CHUNK if have < len(data) else 0  # re-send the last, maybe torn, MiB
        self._write(part, data, offset)
        self.stats.add(bytes_up=len(data) - offset)
        self._call(self.session.client.storage.mv(self._uri(part), self._uri(key)))
        piece = max(CHUNK, part_size)
        return {"parts": -(-len(data) // piece), "parts_skipped": offset // piece}

    def _remove(self, key: str) -> None:
        try:
            self._call(self.session.client.storage.rm(self._uri(key)))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise UserError(f"apolo storage: cannot delete {self.uri(key)}: {exc}") from None
            raise

    def _not_found(self, exc: Exception) -> bool:
        return isinstance(exc, self.sdk.ResourceNotFound) or getattr(exc, "errno", None) == errno.ENOENT

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k, _ in self.list(prefix)]
        self.delete(keys)
        return len(keys)

    def abort_incomplete(self, prefix: str) -> int:
        """Nothing is aborted: an unfinished shard is `<key>.part`, never read as staged, and the next
        upload of that shard continues it (another process may be writing it right now)."""
        return 0
