"""Where the AWS-vs-Azure pipeline (pipeline.py) puts each batch: the platform's own object store (the one it
registers for its URI scheme, opened with its settings as `platbench transfer` opens it), or on this machine a
folder on its disk — not a cloud store, and the page says so. Every object goes under a fresh prefix that is
removed at the end, also on an error or Ctrl-C."""
from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from platforms.core.store import ObjectStore
from platforms.errors import UserError

DISK = "a folder on this machine's disk (not a cloud store)"


class DiskStore(ObjectStore):
    """A bucket as a folder on this machine: each object one file, written and read through the store template
    (platforms/core/store.py), so a local batch moves through the same calls as a cloud one."""

    scheme = "file"

    def __init__(self, root: Path):
        super().__init__(root.name)
        self.root = root

    def uri(self, key: str = "") -> str:
        return f"{self.root}/{key}"

    def bucket_exists(self) -> bool:
        return self.root.is_dir()

    def size(self, key: str) -> Optional[int]:
        p = self.root / key
        return p.stat().st_size if p.is_file() else None

    def get_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for p in sorted(self.root.rglob("*")):
            key = p.relative_to(self.root).as_posix()
            if p.is_file() and key.startswith(prefix):
                yield key, p.stat().st_size

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb" if if_absent else "wb") as f:
            if isinstance(body, bytes):
                f.write(body)
            else:
                shutil.copyfileobj(body, f)

    def _exists(self, exc: Exception) -> bool:
        return isinstance(exc, FileExistsError)

    def _download(self, key: str, tmp: Path) -> None:
        shutil.copyfile(self.root / key, tmp)

    def _remove(self, key: str) -> None:
        (self.root / key).unlink()

    def _not_found(self, exc: Exception) -> bool:
        return isinstance(exc, FileNotFoundError)


def checked(platform: str, settings: dict[str, str]):
    """(transfer Target, store) of the platform's store, its bucket reachable (one line when it is not)."""
    from platforms.bench import transfer

    target = transfer.target_for(platform, settings)
    store = transfer.open_store(target)
    if not transfer.sdk_call(store.bucket_exists, target, "pipeline"):
        raise UserError(f"{platform}: bucket {target.bucket!r} does not exist or is not reachable")
    return target, store


@contextlib.contextmanager
def opened(platform: str, settings: dict[str, str], study: str, on_this_machine: bool,
           say: Callable[[str], None] = print) -> Iterator[tuple[object, str, str]]:
    """(store, prefix, what it is) for the run; the prefix (or the disk folder) removed on leaving. A cleanup that
    fails while an error is already on its way (a budget stop, Ctrl-C) is said and the first error kept: the
    run must still record why it stopped."""
    from platforms.bench import transfer

    prefix = f"reproduce/{study}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    if on_this_machine:
        root = Path(tempfile.mkdtemp(prefix="platbench-pipeline-store-"))
        try:
            yield DiskStore(root), prefix, DISK
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    target, store = checked(platform, settings)
    prefix = f"{target.prefix}/{prefix}"
    uri = target.uri(prefix) + "/"
    try:
        yield store, prefix, uri
    except BaseException:
        try:
            transfer.sdk_call(lambda: transfer.cleanup(store, prefix), target, "pipeline")
        except UserError as exc:
            say(f"{platform}: could not remove the pipeline's objects under {uri}: {exc}")
        raise
    transfer.sdk_call(lambda: transfer.cleanup(store, prefix), target, "pipeline")
