"""The Azure Blob store (platforms/clouds/azure/blob.py) and the shared content-addressed staging against
Azurite on 127.0.0.1: every request sent by azure-storage-blob, nothing mocked."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from azurite_server import azurite, blob_env, new_container  # noqa: F401 (fixtures)
from conftest import write_folder_dataset

from platforms.core import staging
from platforms.core.registry import open_store, parse_uri
from platforms.errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("az") / "colors", train_per_class=10, test_per_class=4)


@pytest.fixture
def store(blob_env):
    from platforms.clouds.azure.blob import BlobStore

    return BlobStore(new_container(blob_env))


def test_the_az_scheme_is_registered_and_opens_a_container(blob_env):
    name = new_container(blob_env)
    assert parse_uri(f"az://{name}/a/b") == ("az", name, "a/b")
    s = open_store(f"az://{name}")
    assert s.bucket_exists() and s.uri("k") == f"az://{name}/k"
    assert s.https_url.endswith(f"/devstoreaccount1/{name}")


def test_basic_operations_and_if_absent(store, tmp_path):
    assert store.size("x/a") is None
    assert store.put_bytes("x/a", b"one", if_absent=True) is True
    assert store.put_bytes("x/a", b"two", if_absent=True) is False  # kept: If-None-Match: *
    assert store.get_bytes("x/a") == b"one"
    (tmp_path / "f").write_bytes(b"file")
    store.put_file("x/b", tmp_path / "f")
    assert sorted(store.list("x/")) == [("x/a", 3), ("x/b", 4)]
    assert store.get_file("x/b", tmp_path / "dl" / "b") == 4 and (tmp_path / "dl" / "b").read_bytes() == b"file"
    store.delete(["x/a", "x/missing"])
    assert [k for k, _ in store.list("x/")] == ["x/b"]
    snap = store.snapshot()
    assert snap["bytes_up"] == 3 + 4 and snap["requests"] > 5


def test_put_large_resumes_from_uncommitted_blocks(store):
    data = bytes(range(256)) * (4 * 4096 + 7)  # a bit over 4 MiB: 5 blocks of 1 MiB
    blob = store.container.get_blob_client("big")
    from platforms.clouds.azure.blob import _block_id

    # an earlier, interrupted try left its first two blocks uncommitted
    for i in range(2):
        blob.stage_block(_block_id(i, data[i << 20:(i + 1) << 20]), data[i << 20:(i + 1) << 20])
    result = store.put_large("big", data, 1 << 20)
    assert result == {"parts": 5, "parts_skipped": 2}
    assert hashlib.sha256(store.get_bytes("big")).hexdigest() == hashlib.sha256(data).hexdigest()


def test_sharded_staging_round_trip_sends_nothing_the_second_time(store, dataset, tmp_path):
    first = staging.upload(dataset, store, "sharded", "pb")
    assert first.figures["upload_bytes_sent"] > 0 and first.store_uri == f"az://{store.bucket}"
    again = staging.upload(dataset, store, "sharded", "pb")
    assert again.figures["upload_bytes_sent"] == 0 and again.fingerprint == first.fingerprint
    fig = staging.download_staged(first, store, tmp_path / "down")
    assert fig["download_bytes_received"] > 0
    # the trainer unpacks what came down and finds the same dataset
    from trainer.data.staged import materialize

    unpacked = materialize(tmp_path / "down" / first.data_key[len("pb/"):], {"PLATBENCH_UNPACK_DIR": str(tmp_path / "u")})
    assert sorted(p.name for p in (unpacked / "train").iterdir()) == ["blue", "green", "red"]


def test_a_corrupted_shard_is_refused(store, dataset, tmp_path):
    staged = staging.upload(dataset, store, "sharded", "pb")
    store.put_bytes(staged.shard_keys[0], b"not the shard")
    with pytest.raises(UserError, match="corrupted"):
        staging.download_staged(staged, store, tmp_path / "down")


def test_no_storage_account_is_one_line(monkeypatch):
    from platforms.clouds.azure.blob import BlobStore

    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UserError, match="no storage account"):
        BlobStore("platbench")
