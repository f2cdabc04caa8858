"""Object storage for staging: one small interface over S3 (boto3) and Cloud Storage
(google-cloud-storage), the dataset packer (content-addressed tar shards + manifest) and the two ways
of uploading a dataset that the report compares: sharded (platbench) and naive (one object per file).

Retries are the SDKs' own (botocore's retry modes, google-api-core's Retry); platbench only counts them.
"""
from __future__ import annotations

from platforms.storage.base import ObjectStore, StoreStats, parse_uri

__all__ = ["ObjectStore", "StoreStats", "parse_uri", "open_store"]


def open_store(uri: str, **kwargs) -> ObjectStore:
    """`s3://bucket` or `gs://bucket` → a store on that bucket (SDK imported lazily)."""
    scheme, bucket, _ = parse_uri(uri)
    if scheme == "s3":
        from platforms.storage.s3 import S3Store

        return S3Store(bucket, **kwargs)
    from platforms.storage.gcs import GCSStore

    return GCSStore(bucket, **kwargs)
