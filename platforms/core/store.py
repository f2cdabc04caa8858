"""Object stores: the interface the staging code is written against. A store implements the calls its
service makes (one abstract read into a file, one removal of one object, …); what every store does the same
way — a download that lands atomically through a `.part` file and is counted, a delete that tolerates
objects already gone — is written once here, as MLflow's ArtifactRepository writes its downloads once over
one abstract `_download_file`. Stores live in the cloud layer (platforms/clouds/: s3://, gs://, az://) or in
the platform that owns the service (dbfs://, storage://); platforms.core.registry finds one by URI scheme.

Retries are the SDKs' own (botocore's retry modes, google-api-core's Retry); platbench only counts them."""
from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union


@dataclass
class StoreStats:
    """What crossed the wire, counted by the store itself (thread-safe)."""

    requests: int = 0     # API calls made (each may have been attempted several times)
    attempts: int = 0     # HTTP attempts, retries included
    retries: int = 0      # attempts beyond the first, as decided by the SDK's retry policy
    bytes_up: int = 0
    bytes_down: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: getattr(self, k) for k in ("requests", "attempts", "retries", "bytes_up", "bytes_down")}


class ObjectStore(ABC):
    """A bucket. Keys are `/`-separated; no leading slash."""

    scheme: str

    def __init__(self, bucket: str):
        self.bucket = bucket
        self.stats = StoreStats()

    def snapshot(self) -> dict[str, int]:
        return self.stats.snapshot()

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    @abstractmethod
    def bucket_exists(self) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> Optional[int]:
        """The object's size, or None when there is no such object."""

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write one object, counted. With if_absent, an existing object is kept and False returned: the
        service's own conditional create where it has one, so a content-addressed upload is idempotent."""
        try:
            self._upload(key, data, if_absent=if_absent)
        except Exception as exc:
            if if_absent and self._exists(exc):
                return False
            raise
        self.stats.add(bytes_up=len(data))
        return True

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as f:
            self._upload(key, f)
        self.stats.add(bytes_up=Path(path).stat().st_size)

    @abstractmethod
    def _upload(self, key: str, body: Union[bytes, BinaryIO], *, if_absent: bool = False) -> None:
        """Write body (bytes, or a file open for reading) as the object; with if_absent only where there is
        none, the service's refusal being an error that `_exists` recognises."""

    def _exists(self, exc: Exception) -> bool:
        """Whether exc is the service refusing a conditional create because the object exists."""
        return False

    def put_large(self, key: str, data: bytes, part_size: int) -> dict:
        """Write one big object so that an interrupted upload resumes where it stopped; returns
        {"parts": n, "parts_skipped": n}. Default: a single resumable write."""
        self.put_bytes(key, data)
        return {"parts": 1, "parts_skipped": 0}

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    def get_file(self, key: str, path: Path) -> int:
        """Download to path (parents created); returns the byte count. The bytes land in `.NAME.part` beside
        path and are renamed onto it when complete, so path never holds half an object."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        self._download(key, tmp)
        os.replace(tmp, path)
        n = path.stat().st_size
        self.stats.add(bytes_down=n)
        return n

    @abstractmethod
    def _download(self, key: str, tmp: Path) -> None:
        """Write the object's bytes into the file tmp (created or truncated); get_file does the rest."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under prefix."""

    def delete(self, keys: list[str]) -> None:
        """Remove the objects; one already gone is not an error (teardown may run twice)."""
        for key in keys:
            try:
                self._remove(key)
            except Exception as exc:
                if not self._not_found(exc):
                    raise

    def _remove(self, key: str) -> None:
        """Remove one object (a store with a batch call overrides `delete` instead)."""
        raise NotImplementedError(f"{type(self).__name__} removes objects in `delete`")

    def _not_found(self, exc: Exception) -> bool:
        """Whether exc says the object does not exist (its SDK's own error)."""
        return False

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k, _ in self.list(prefix)]
        for i in range(0, len(keys), 1000):
            self.delete(keys[i:i + 1000])
        return len(keys)

    def abort_incomplete(self, prefix: str) -> int:
        """Drop unfinished resumable uploads under prefix (teardown); returns how many."""
        return 0
