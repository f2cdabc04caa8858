"""Amazon S3 through boto3 (the s3:// store of every platform on AWS). Every client platbench makes uses botocore's `standard` retry mode
(throttling, 5xx and connection errors are retried with backoff); the attempts are counted from
botocore's own events, so a run reports how many retries its transfers needed.

https://docs.aws.amazon.com/boto3/latest/guide/retries.html (retry modes, max_attempts)
https://docs.aws.amazon.com/boto3/latest/guide/events.html (before-call / before-send events)
https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html (multipart upload: parts, list, complete)
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html (ETag of each uploaded part)
https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html (abort one upload: key + UploadId)
https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html (NoSuchUpload once completed/aborted)
https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html
  (a bucket lifecycle rule is what removes uploads whose owner died on another machine)

Multipart uploads are owned: several processes (two launches, a sweep's cells) may stage the same dataset
to the same bucket at once, so a store resumes or aborts only uploads it started itself, or ones a
platbench process on this machine started and died with (a ledger under the staging cache records
each upload id with its host and pid). Another process's upload of the same key is never touched:
both finish, and since the key is content-addressed the last one to complete writes the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator, Optional

from platforms.clouds.aws.sdk import boto3_module, client_config, count_attempts
from platforms.core.store import ObjectStore

MIN_PART = 5 * 1024 * 1024  # S3's smallest part (all but the last)


class S3Store(ObjectStore):
    scheme = "s3"

    def __init__(self, bucket: str, region: Optional[str] = None, session=None):
        super().__init__(bucket)
        session = session or boto3_module().session.Session(region_name=region)
        # AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) is honoured by botocore itself: that is how the
        # tests point every client at a moto server on 127.0.0.1.
        self.client = session.client("s3", config=client_config())
        count_attempts(self.client, self.stats)
        self._own: dict[str, str] = {}  # upload id → key: started or resumed here, not yet completed/aborted
        self._own_lock = threading.Lock()

    def snapshot(self):
        snap = self.stats.snapshot()
        snap["retries"] = max(0, snap["attempts"] - snap["requests"])
        return snap

    def _missing(self, exc) -> bool:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")

    def bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise

    def bucket_region(self) -> str:
        """The bucket's region (GetBucketLocation: an empty LocationConstraint means us-east-1, and the
        legacy "EU" means eu-west-1). https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html"""
        where = self.client.get_bucket_location(Bucket=self.bucket).get("LocationConstraint")
        return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(where, where)

    def size(self, key: str) -> Optional[int]:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        kwargs = {"IfNoneMatch": "*"} if if_absent else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)

    def _exists(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        return response.get("Error", {}).get("Code") in ("PreconditionFailed", "412")

    def put_large(self, key: str, data: bytes, part_size: int,
                  on_part: Optional[Callable[[int, int], None]] = None) -> dict:
        """Multipart upload that resumes: an unfinished upload of the same key that this store started (or
        that a platbench process on this machine started and died with) is found on the server
        (ListMultipartUploads), its parts listed (ListParts) and every part whose ETag is the MD5 of our
        bytes kept; only the rest is sent. `on_part(done, total)` is called after each part."""
        part_size = max(part_size, MIN_PART)
        if len(data) <= part_size:
            self.put_bytes(key, data)
            return {"parts": 1, "parts_skipped": 0}
        chunks = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        upload_id, have = self._resume_point(key)
        if upload_id is None:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        self._claim(upload_id, key)
        parts, skipped = [], 0
        for number, chunk in enumerate(chunks, 1):
            etag = '"' + hashlib.md5(chunk).hexdigest() + '"'
            if have.get(number) == (etag, len(chunk)):
                skipped += 1
            else:
                etag = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                               Body=chunk)["ETag"]
                self.stats.add(bytes_up=len(chunk))
            parts.append({"PartNumber": number, "ETag": etag})
            if on_part is not None:
                on_part(number, len(chunks))
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})
        self._release(upload_id)
        return {"parts": len(chunks), "parts_skipped": skipped}

    # -------------------------------------------------------------- which multipart uploads are ours
    def _ledger(self) -> Path:
        from platforms.core.staging import cache_dir

        return cache_dir() / "staging" / "s3-multipart"

    def _ledger_file(self, upload_id: str) -> Path:
        return self._ledger() / (hashlib.sha256(f"{self.bucket}\0{upload_id}".encode()).hexdigest()[:32] + ".json")

    def _claim(self, upload_id: str, key: str) -> None:
        with self._own_lock:
            self._own[upload_id] = key
        path = self._ledger_file(upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"bucket": self.bucket, "key": key, "upload_id": upload_id,
                                   "host": socket.gethostname(), "pid": os.getpid()}))
        os.replace(tmp, path)

    def _release(self, upload_id: str) -> None:
        with self._own_lock:
            self._own.pop(upload_id, None)
        self._ledger_file(upload_id).unlink(missing_ok=True)

    def _resumable_ids(self, key: str) -> set[str]:
        """Upload ids of `key` this store may continue: its own, and those whose platbench process on this
        machine is gone. An upload another live process (or machine) is sending is not ours to touch."""
        with self._own_lock:
            ids = {u for u, k in self._own.items() if k == key}
        host = socket.gethostname()
        try:
            records = list(self._ledger().glob("*.json"))
        except OSError:
            records = []
        for path in records:
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if rec.get("bucket") == self.bucket and rec.get("key") == key and rec.get("host") == host \
                    and isinstance(rec.get("pid"), int) and not _alive(rec["pid"]):
                ids.add(str(rec.get("upload_id")))
        return ids

    def _resume_point(self, key: str) -> tuple[Optional[str], dict]:
        mine = self._resumable_ids(key)
        if not mine:
            return None, {}
        uploads = [u for u in self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
                   if u["Key"] == key and u["UploadId"] in mine]
        for gone in mine - {u["UploadId"] for u in uploads}:  # completed or aborted since: forget it
            self._release(gone)
        if not uploads:
            return None, {}
        uploads.sort(key=lambda u: u["Initiated"])
        latest = uploads[-1]
        for stale in uploads[:-1]:  # ours too (this store's, or a dead process's): no one else will finish them
            self._abort(key, stale["UploadId"])
        have: dict[int, tuple[str, int]] = {}
        marker = 0
        for _ in range(10_000):  # bounded pagination
            page = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=latest["UploadId"],
                                          PartNumberMarker=marker)
            for part in page.get("Parts", []):
                have[int(part["PartNumber"])] = (part["ETag"], int(part["Size"]))
            if not page.get("IsTruncated"):
                break
            marker = int(page["NextPartNumberMarker"])
        return latest["UploadId"], have

    def _abort(self, key: str, upload_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            aborted = True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise
            aborted = False  # already completed or aborted
        self._release(upload_id)
        return aborted

    def get_bytes(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.stats.add(bytes_down=len(body))
        return body

    def _download(self, key: str, tmp: Path) -> None:
        with open(tmp, "wb") as f:
            for chunk in self.client.get_object(Bucket=self.bucket, Key=key)["Body"].iter_chunks(1 << 20):
                f.write(chunk)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])

    def delete(self, keys: list[str]) -> None:
        """One DeleteObjects call per 1,000 keys (delete_prefix batches them); S3 deletes a missing key
        without complaint."""
        if keys:
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys],
                                                                   "Quiet": True})

    def abort_incomplete(self, prefix: str) -> int:
        """Abort the unfinished multipart uploads under prefix that this store started (teardown), each by
        its UploadId; another process's uploads under the same prefix are left alone."""
        with self._own_lock:
            mine = [(u, k) for u, k in self._own.items() if k.startswith(prefix)]
        return sum(self._abort(key, upload_id) for upload_id, key in mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
