"""Staging against real loopback servers: moto's S3 and the Cloud Storage emulator (tests/conftest_clouds.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from conftest_clouds import aws, gcs, gcs_server, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from platforms.errors import UserError
from platforms.core import staging
from trainer.data import layout


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("ds") / "colors", train_per_class=30, test_per_class=8)


def s3_store(bucket=None):
    from platforms.sagemaker.storage import S3Store

    store = S3Store(bucket or new_bucket_name())
    store.client.create_bucket(Bucket=store.bucket)
    return store


def gcs_store(bucket=None):
    from google.cloud import storage

    from platforms.vertex.storage import GCSStore

    name = bucket or new_bucket_name()
    client = storage.Client(project="test")
    client.create_bucket(name)
    return GCSStore(name, project="test")


def test_shards_follow_class_folders_and_are_reproducible(dataset):
    sc = staging.scan(dataset)
    assert sc.fingerprint == layout.fingerprint(dataset)  # the trainer's own identity of the dataset
    shards = staging.plan_shards(sc.entries, 64 * 2**20)
    assert len(shards) == 6  # train/test × 3 classes
    assert {e.rel.rpartition("/")[0] for e in shards[0]} == {"test/blue"}
    small = staging.plan_shards(sc.entries, 20_000)
    assert len(small) > 6 and all(len({e.rel.rpartition("/")[0] for e in s}) == 1 for s in small)
    assert staging.build_tar(sc.base, shards[0]) == staging.build_tar(sc.base, shards[0])


@pytest.mark.parametrize("cloud", ["s3", "gcs"])
def test_sharded_upload_skips_what_is_there_and_round_trips(cloud, dataset, tmp_path, request):
    request.getfixturevalue("aws" if cloud == "s3" else "gcs")
    store = s3_store() if cloud == "s3" else gcs_store()
    first = staging.upload(dataset, store, "sharded", "pb")
    assert first.figures["upload_objects_sent"] == 7  # 6 shards + the manifest, written last
    assert first.figures["upload_s_per_mb"] > 0 and first.figures["upload_retries"] == 0
    keys = {k for k, _ in store.list("pb/")}
    assert f"pb/datasets/{first.fingerprint}/platbench-manifest.json" in keys
    assert len([k for k in keys if k.startswith("pb/shards/")]) == 6

    second = staging.upload(dataset, store, "sharded", "pb")
    assert second.figures["upload_objects_sent"] == 0 and second.figures["upload_bytes_sent"] == 0
    assert second.figures["upload_requests"] <= 2 and second.figures["upload_files_hashed"] == 0

    got = staging.download_staged(first, store, tmp_path / "channel")
    assert got["download_s_per_mb"] > 0
    from trainer.data.staged import materialize

    unpacked = materialize(tmp_path / "channel", {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack")})
    assert layout.fingerprint(unpacked) == first.fingerprint


def test_changed_file_resends_only_its_shard(aws, tmp_path):
    data = write_folder_dataset(tmp_path / "d", train_per_class=10, test_per_class=4)
    store = s3_store()
    staging.upload(data, store, "sharded", "pb")
    victim = sorted((data / "train/red").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")  # still a PNG to PIL? irrelevant: only bytes matter here
    again = staging.upload(data, store, "sharded", "pb")
    assert again.figures["upload_objects_sent"] == 2  # train/red's shard and the new manifest
    assert again.figures["upload_objects_skipped"] == 5
    assert again.figures["upload_files_hashed"] == 1


def test_interrupted_multipart_upload_resumes_from_its_parts(aws):
    import os

    store = s3_store()
    data = os.urandom(12 * 2**20)  # three 5 MiB parts (the last one short)

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_large("pb/shards/big.tar", data, 5 * 2**20, on_part=interrupt)
    assert store.size("pb/shards/big.tar") is None
    sent_before = store.snapshot()["bytes_up"]
    result = store.put_large("pb/shards/big.tar", data, 5 * 2**20)
    assert result == {"parts": 3, "parts_skipped": 2}
    assert store.snapshot()["bytes_up"] - sent_before == len(data) - 10 * 2**20
    assert store.get_bytes("pb/shards/big.tar") == data


def test_s3_5xx_throttling_and_resets_are_retried_and_counted(aws, dataset):
    store = s3_store()
    aws.fail(lambda m, p, h: m == "PUT" and "/shards/" in p, "503", 2)
    aws.fail(lambda m, p, h: m == "PUT" and "/shards/" in p, "throttle", 1)
    aws.fail(lambda m, p, h: m == "HEAD" and "/shards/" in p, "reset", 1)
    staged = staging.upload(dataset, store, "sharded", "pb")
    assert staged.figures["upload_retries"] == 4
    assert staging.upload(dataset, store, "sharded", "pb").figures["upload_objects_sent"] == 0


def test_gcs_5xx_and_throttling_are_retried_and_counted(gcs, dataset):
    store = gcs_store()
    gcs.fail(lambda m, p, h: m == "POST" and "/upload/" in p, "503", 1)
    gcs.fail(lambda m, p, h: m == "POST" and "/upload/" in p, "throttle", 1)
    staged = staging.upload(dataset, store, "sharded", "pb")
    assert staged.figures["upload_retries"] == 2
    assert {k for k, _ in store.list("pb/shards/")} == {"pb/" + s.split("pb/", 1)[1] for s in staged.shard_keys}


def test_naive_upload_is_one_object_per_file(aws, dataset, tmp_path):
    store = s3_store()
    naive = staging.upload(dataset, store, "naive", "pb")
    files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.png"))
    assert sorted(k[len(naive.data_key):] for k, _ in store.list(naive.data_key)) == files
    assert naive.figures["upload_objects_sent"] == len(files) and naive.fingerprint == layout.fingerprint(dataset)
    staging.download_staged(naive, store, tmp_path / "down")
    assert layout.fingerprint(tmp_path / "down") == naive.fingerprint


def test_corrupted_shard_is_refused_on_the_other_side(aws, dataset, tmp_path):
    from trainer.data.staged import materialize
    from trainer.errors import DataError

    store = s3_store()
    staged = staging.upload(dataset, store, "sharded", "pb")
    staging.download_staged(staged, store, tmp_path / "ch")
    shard = tmp_path / "ch" / staged.shard_keys[0][len("pb/"):]
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    with pytest.raises(DataError, match="SHA-256"):
        materialize(tmp_path / "ch", {"PLATBENCH_UNPACK_DIR": str(tmp_path / "u")})
    # and a shard corrupted in the bucket is caught on download
    store.put_bytes(staged.shard_keys[0], b"not the shard")
    with pytest.raises(UserError, match="corrupted"):
        staging.download_staged(staged, store, tmp_path / "ch2")


def test_manifest_lists_shards_relative_to_the_staging_root(aws, dataset):
    store = s3_store()
    staged = staging.upload(dataset, store, "sharded", "pb")
    manifest = json.loads(store.get_bytes(staged.data_key))
    assert manifest["fingerprint"] == staged.fingerprint and manifest["files"] == len(list(dataset.rglob("*.png")))
    assert all(s["key"].startswith("shards/") and len(s["sha256"]) == 64 for s in manifest["shards"])
