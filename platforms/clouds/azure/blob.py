"""Azure Blob Storage through azure-storage-blob: the object-store scheme `az` of every platform on Azure.

URI scheme: `az://CONTAINER/path/to/blob` — the container is the "bucket", the storage account comes from
the store's settings (`account=`, `--set storage_account=`) or AZURE_STORAGE_ACCOUNT, the convention of
fsspec/adlfs and of the Azure CLI's environment variables. The same blob is
`https://ACCOUNT.blob.core.windows.net/CONTAINER/path` (what an Azure ML job input is given).

Which endpoint and credential: AZURE_STORAGE_CONNECTION_STRING when set (the Azure CLI reads the same
variable; Azurite's well-known development connection string points it at the emulator), otherwise
https://ACCOUNT.blob.core.windows.net with DefaultAzureCredential.
https://learn.microsoft.com/azure/storage/blobs/storage-quickstart-blobs-python
https://learn.microsoft.com/azure/storage/common/storage-use-azurite (connection strings, devstoreaccount1)
https://learn.microsoft.com/cli/azure/storage/blob (AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_ACCOUNT)

Retries are the SDK's own ExponentialRetry policy (429, 5xx, connection errors); platbench only counts
them (a `retry_hook`). Content-addressed uploads carry `If-None-Match: *` ("only if absent",
https://learn.microsoft.com/rest/api/storageservices/specifying-conditional-headers-for-blob-service-operations),
which makes them idempotent. Large shards go as Put Block / Put Block List with deterministic block ids:
an interrupted upload resumes from the uncommitted blocks already on the service (Get Block List),
https://learn.microsoft.com/rest/api/storageservices/put-block-list (uncommitted blocks are kept a week).
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Iterator, Optional

from platforms.core.sdk import require
from platforms.core.store import ObjectStore
from platforms.errors import UserError

PUBLIC_SUFFIX = "blob.core.windows.net"


def blob_module():
    return require("azure.storage.blob", "azure", "the Azure Blob Storage SDK (azure-storage-blob)")


def account_url(account: str) -> str:
    return f"https://{account}.{PUBLIC_SUFFIX}"


def service_client(account: Optional[str] = None, retry_hook=None):
    """A BlobServiceClient: from AZURE_STORAGE_CONNECTION_STRING when set, else the account's public
    endpoint with DefaultAzureCredential."""
    blob = blob_module()
    kwargs = {"retry_hook": retry_hook} if retry_hook else {}
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        return blob.BlobServiceClient.from_connection_string(conn, **kwargs)
    account = account or os.environ.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise UserError("Azure Blob Storage: no storage account: add --set storage_account=NAME (or set AZURE_STORAGE_ACCOUNT "
                        "or AZURE_STORAGE_CONNECTION_STRING)")
    identity = require("azure.identity", "azure", "the Azure identity library (azure-identity)")
    return blob.BlobServiceClient(account_url(account), credential=identity.DefaultAzureCredential(), **kwargs)


def _block_id(index: int, data: bytes) -> str:
    # ids of one blob must all have the same length; tied to the block's bytes, so a resumed upload of the
    # same shard finds its blocks and a different payload never reuses them
    return base64.b64encode(f"{index:06d}-{hashlib.sha256(data).hexdigest()[:32]}".encode()).decode()


class BlobStore(ObjectStore):
    scheme = "az"

    def __init__(self, bucket: str, account: Optional[str] = None, client=None):
        super().__init__(bucket)

        def counted(response):  # called by the SDK's retry policy before each retry
            self.stats.add(retries=1)

        self.client = client or service_client(account, retry_hook=counted)
        self.account = self.client.account_name
        self.container = self.client.get_container_client(bucket)

    @property
    def https_url(self) -> str:
        """The container's URL (public endpoint, or the emulator's when a connection string points there)."""
        return self.container.url

    def _call(self, fn, *args, **kwargs):
        self.stats.add(requests=1)
        return fn(*args, **kwargs)

    def bucket_exists(self) -> bool:
        return bool(self._call(self.container.exists))

    def size(self, key: str) -> Optional[int]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return int(self._call(self.container.get_blob_client(key).get_blob_properties).size)
        except ResourceNotFoundError:
            return None

    def _upload(self, key: str, body, *, if_absent: bool = False) -> None:
        # overwrite=False sends If-None-Match: *
        self._call(self.container.get_blob_client(key).upload_blob, body, overwrite=not if_absent)

    def _exists(self, exc: Exception) -> bool:
        from azure.core.exceptions import ResourceExistsError

        return isinstance(exc, ResourceExistsError)

    def put_large(self, key: str, data: bytes, part_size: int, on_part=None) -> dict:
        """Put Block per part, then Put Block List; blocks already uncommitted on the service (an
        interrupted earlier try) are not sent again. Each block carries its MD5 (Content-MD5), checked
        by the service."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobBlock

        blob = self.container.get_blob_client(key)
        part_size = max(1024 * 1024, int(part_size))
        parts = [data[i:i + part_size] for i in range(0, len(data), part_size)] or [b""]
        ids = [_block_id(i, p) for i, p in enumerate(parts)]
        try:
            _, uncommitted = self._call(blob.get_block_list, "uncommitted")
            have = {b.id: b.size for b in uncommitted}
        except ResourceNotFoundError:
            have = {}
        skipped = 0
        for n, (block_id, part) in enumerate(zip(ids, parts), 1):
            if have.get(block_id) == len(part):
                skipped += 1
            else:
                self._call(blob.stage_block, block_id, part, validate_content=True)
                self.stats.add(bytes_up=len(part))
            if on_part is not None:
                on_part(n, len(parts))
        self._call(blob.commit_block_list, [BlobBlock(block_id=i) for i in ids])
        return {"parts": len(parts), "parts_skipped": skipped}

    def abort_incomplete(self, prefix: str) -> int:
        """Blob Storage has no call that drops uncommitted blocks: they are garbage-collected a week after
        the last Put Block (Put Block List page), and an upload that later succeeds commits only its own."""
        return 0

    def get_bytes(self, key: str) -> bytes:
        data = self._call(self.container.get_blob_client(key).download_blob).readall()
        self.stats.add(bytes_down=len(data))
        return data

    def _download(self, key: str, tmp: Path) -> None:
        with open(tmp, "wb") as f:
            self._call(self.container.get_blob_client(key).download_blob).readinto(f)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        self.stats.add(requests=1)
        for props in self.container.list_blobs(name_starts_with=prefix):
            yield props.name, int(props.size)

    def _remove(self, key: str) -> None:
        self._call(self.container.delete_blob, key)

    def _not_found(self, exc: Exception) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        return isinstance(exc, ResourceNotFoundError)
