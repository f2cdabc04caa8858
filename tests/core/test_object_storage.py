"""The object-store template (platforms/core/store.py): what every store does the same way, written once over
the calls a store makes. Driven through a store whose "service" is a folder on this machine (each call a
real file-system operation), so the template's own behaviour shows without any cloud."""
from __future__ import annotations

from pathlib import Path

import pytest

from platforms.core.store import ObjectStore


class FolderStore(ObjectStore):
    """A bucket as a folder: the smallest store the template needs (its service calls only)."""

    scheme = "folder"

    def __init__(self, root: Path, fail_after: int | None = None):
        super().__init__(root.name)
        self.root = root
        self.fail_after = fail_after  # bytes a download writes before the connection "drops"

    def bucket_exists(self) -> bool:
        return self.root.is_dir()

    def size(self, key):
        p = self.root / key
        return p.stat().st_size if p.is_file() else None

    def get_bytes(self, key):
        return (self.root / key).read_bytes()

    def list(self, prefix):
        for p in sorted(self.root.rglob("*")):
            key = p.relative_to(self.root).as_posix()
            if p.is_file() and key.startswith(prefix):
                yield key, p.stat().st_size

    def _upload(self, key, body, *, if_absent=False):
        data = body if isinstance(body, bytes) else body.read()
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / key, "xb" if if_absent else "wb") as f:
            f.write(data)

    def _exists(self, exc):
        return isinstance(exc, FileExistsError)

    def _download(self, key, tmp):
        data = (self.root / key).read_bytes()
        with open(tmp, "wb") as f:
            if self.fail_after is not None:
                f.write(data[:self.fail_after])
                raise ConnectionResetError("the connection dropped")
            f.write(data)

    def _remove(self, key):
        (self.root / key).unlink()

    def _not_found(self, exc):
        return isinstance(exc, FileNotFoundError)


def test_get_file_lands_whole_or_not_at_all(tmp_path):
    (tmp_path / "bucket").mkdir()
    store = FolderStore(tmp_path / "bucket")
    assert store.put_bytes("a/shard", b"x" * 1000)
    dest = tmp_path / "out" / "shard"
    assert store.get_file("a/shard", dest) == 1000 and dest.read_bytes() == b"x" * 1000
    assert store.snapshot()["bytes_down"] == 1000 and store.snapshot()["bytes_up"] == 1000

    store.put_bytes("a/shard", b"y" * 1000)
    broken = FolderStore(tmp_path / "bucket", fail_after=10)
    with pytest.raises(ConnectionResetError):
        broken.get_file("a/shard", dest)
    assert dest.read_bytes() == b"x" * 1000, "a failed download replaced the file"
    with pytest.raises(ConnectionResetError):
        broken.get_file("a/shard", tmp_path / "out" / "new")
    assert not (tmp_path / "out" / "new").exists()
    assert broken.snapshot()["bytes_down"] == 0


def test_put_bytes_if_absent_keeps_what_is_there(tmp_path):
    (tmp_path / "bucket").mkdir()
    store = FolderStore(tmp_path / "bucket")
    assert store.put_bytes("k", b"first", if_absent=True)
    assert store.put_bytes("k", b"second", if_absent=True) is False
    assert store.get_bytes("k") == b"first" and store.snapshot()["bytes_up"] == 5
    src = tmp_path / "file"
    src.write_bytes(b"12345678")
    store.put_file("f", src)
    assert store.get_bytes("f") == b"12345678" and store.snapshot()["bytes_up"] == 13


def test_delete_tolerates_objects_already_gone_and_nothing_else(tmp_path):
    (tmp_path / "bucket").mkdir()
    store = FolderStore(tmp_path / "bucket")
    for key in ("p/1", "p/2", "q/1"):
        store.put_bytes(key, b"x")
    store.delete(["p/1", "p/missing", "p/1"])
    assert [k for k, _ in store.list("")] == ["p/2", "q/1"]
    assert store.delete_prefix("p/") == 1 and [k for k, _ in store.list("")] == ["q/1"]
    (tmp_path / "bucket" / "q" / "dir").mkdir()
    with pytest.raises(OSError):  # not "not found": a removal that fails is reported
        store.delete(["q/dir"])
