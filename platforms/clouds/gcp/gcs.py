"""Google Cloud Storage through google-cloud-storage (the gs:// store of every platform on Google Cloud). Retries are google-api-core's `Retry` with the
library's own predicate (429, 5xx, connection resets); platbench adds only a counter (`on_error`).
Uploads of content-addressed objects carry `if_generation_match=0` ("only if absent"), which makes them
idempotent, so the library retries them too (it does not retry unconditional uploads).

https://cloud.google.com/python/docs/reference/storage/latest/retry_timeout (retry, conditional retries)
https://cloud.google.com/storage/docs/retry-strategy (what is retried, idempotency via preconditions)
https://cloud.google.com/storage/docs/request-preconditions (ifGenerationMatch=0: create only)
https://cloud.google.com/storage/docs/resumable-uploads (chunked resumable uploads for large objects)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

from platforms.core.store import ObjectStore


def storage_module():
    from platforms.core.sdk import require

    storage = require("google.cloud.storage", "gcp", "the Cloud Storage SDK (google-cloud-storage)")
    return storage


class GCSStore(ObjectStore):
    scheme = "gs"

    def __init__(self, bucket: str, project: Optional[str] = None, client=None):
        super().__init__(bucket)
        storage = storage_module()
        from google.api_core.retry import Retry
        from google.cloud.storage.retry import DEFAULT_RETRY

        # STORAGE_EMULATOR_HOST is honoured by the library itself (anonymous credentials, that endpoint).
        self.client = client or storage.Client(project=project)
        self._bucket = self.client.bucket(bucket)
        self.retry = Retry(predicate=DEFAULT_RETRY._predicate, initial=0.5, maximum=16.0, multiplier=2.0,
                           timeout=float(os.environ.get("PLATBENCH_GCS_RETRY_SECONDS", "120")),
                           on_error=lambda exc: self.stats.add(retries=1))

    def _call(self, fn, *args, **kwargs):
        self.stats.add(requests=1)
        return fn(*args, retry=self.retry, **kwargs)

    def snapshot(self):
        snap = self.stats.snapshot()
        snap["attempts"] = snap["requests"] + snap["retries"]
        return snap

    def bucket_exists(self) -> bool:
        return bool(self._call(self._bucket.exists))

    def bucket_location(self) -> tuple[str, str]:
        """(location, locationType) of the bucket, location lower-cased: a region ("us-central1") or a
        multi-/dual-region ("us", "eu", "nam4"). https://cloud.google.com/storage/docs/locations
        https://cloud.google.com/storage/docs/json_api/v1/buckets (location, locationType)"""
        bucket = self._call(self.client.get_bucket, self.bucket)
        return (bucket.location or "").lower(), (bucket.location_type or "").lower()

    def size(self, key: str) -> Optional[int]:
        blob = self._call(self._bucket.get_blob, key)
        return None if blob is None else int(blob.size)

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        blob = self._bucket.blob(key)
        kwargs = {"if_generation_match": 0} if if_absent else {}
        if isinstance(body, bytes):
            self._call(blob.upload_from_string, body, **kwargs)
        else:
            self._call(blob.upload_from_filename, body.name, **kwargs)  # the library guesses its content type

    def _exists(self, exc: Exception) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        return isinstance(exc, PreconditionFailed)

    def put_large(self, key: str, data: bytes, part_size: int, on_part=None) -> dict:
        """A chunked resumable upload (the library resumes the session after a failed chunk)."""
        from google.api_core.exceptions import PreconditionFailed

        chunk = max(256 * 1024, part_size // (256 * 1024) * (256 * 1024))  # a multiple of 256 KiB
        blob = self._bucket.blob(key, chunk_size=chunk)
        import io

        try:
            self._call(blob.upload_from_file, io.BytesIO(data), size=len(data), if_generation_match=0)
            self.stats.add(bytes_up=len(data))
        except PreconditionFailed:
            pass  # already there: content-addressed, so it is the same bytes
        if on_part is not None:
            on_part(1, 1)
        return {"parts": -(-len(data) // chunk), "parts_skipped": 0}

    def abort_incomplete(self, prefix: str) -> int:
        """Nothing to abort by prefix, and nothing of another process's is touched: Cloud Storage keeps no
        list of unfinished uploads. Each resumable session belongs to the one put_large call that opened it
        (its URI is never shared between processes), is not an object until its last chunk, and expires a
        week after it was started (https://cloud.google.com/storage/docs/resumable-uploads). Two processes
        writing the same content-addressed key both succeed: the second's `if_generation_match=0` gets 412."""
        return 0

    def get_bytes(self, key: str) -> bytes:
        data = self._call(self._bucket.blob(key).download_as_bytes)
        self.stats.add(bytes_down=len(data))
        return data

    def _download(self, key: str, tmp: Path) -> None:
        self._call(self._bucket.blob(key).download_to_filename, str(tmp))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        self.stats.add(requests=1)
        for blob in self.client.list_blobs(self.bucket, prefix=prefix, retry=self.retry):
            yield blob.name, int(blob.size)

    def _remove(self, key: str) -> None:
        self._call(self._bucket.delete_blob, key)

    def _not_found(self, exc: Exception) -> bool:
        from google.api_core.exceptions import NotFound

        return isinstance(exc, NotFound)
