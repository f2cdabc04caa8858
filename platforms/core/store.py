"""Object stores: the interface the staging code is written against, and the registry by URI scheme
(each platform's SPEC names its stores: s3:// → platforms/sagemaker/storage.py, gs:// → platforms/vertex/storage.py).

Retries are the SDKs' own (botocore's retry modes, google-api-core's Retry); platbench only counts them."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from platforms.errors import UserError


def parse_uri(uri: str) -> tuple[str, str, str]:
    """`s3://bucket/key/prefix` → ("s3", "bucket", "key/prefix"), for every scheme a platform registers."""
    from platforms.core import registry

    schemes = registry.schemes()
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in schemes:
        raise UserError(f"{uri!r} is not an object-store URI ({', '.join(f'{s}://' for s in schemes)})")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UserError(f"{uri!r} names no bucket")
    return scheme, bucket, key


def open_store(uri: str, **kwargs) -> "ObjectStore":
    """`s3://bucket`, `gs://bucket`, … → a store on that bucket (its SDK imported now)."""
    from platforms.core import registry

    scheme, bucket, _ = parse_uri(uri)
    return registry.store_class(scheme)(bucket, **kwargs)


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

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write one object. With if_absent, an existing object is kept and False returned."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    def put_large(self, key: str, data: bytes, part_size: int) -> dict:
        """Write one big object so that an interrupted upload resumes where it stopped; returns
        {"parts": n, "parts_skipped": n}. Default: a single resumable write."""
        self.put_bytes(key, data)
        return {"parts": 1, "parts_skipped": 0}

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def get_file(self, key: str, path: Path) -> int:
        """Download to path (parents created); returns the byte count."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under prefix."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k, _ in self.list(prefix)]
        for i in range(0, len(keys), 1000):
            self.delete(keys[i:i + 1000])
        return len(keys)

    def abort_incomplete(self, prefix: str) -> int:
        """Drop unfinished resumable uploads under prefix (teardown); returns how many."""
        return 0
