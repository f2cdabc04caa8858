"""The Unity Catalog volume store (Files API through databricks-sdk) against the loopback workspace: the
object-store contract, the `dbfs://catalog.schema.volume` scheme in the registry, content-addressed staging
that resumes (only what the volume lacks is sent again), and a corrupted shard caught by its SHA-256 on the
job's side, failing the run with one line."""
from __future__ import annotations

import pytest
from conftest import write_folder_dataset
from dbx_workspace import job_cluster, workspace, workspace_server  # noqa: F401 - fixtures

from platforms.core import launch, staging
from platforms.core.api import Job
from platforms.core.progress import JobProgress

VOLUME = "main.platbench.stage"


server = workspace_server(VOLUME)


def test_store_contract_and_scheme(workspace):
    from platforms.core.registry import open_store

    store = open_store(f"dbfs://{VOLUME}")
    assert type(store).__name__ == "VolumeStore" and store.uri("a/b") == "dbfs:/Volumes/main/platbench/stage/a/b"
    assert store.bucket_exists() and not open_store("dbfs://main.platbench.nope").bucket_exists()
    assert store.put_bytes("t/x/one.bin", b"1234", if_absent=True)
    assert not store.put_bytes("t/x/one.bin", b"5678", if_absent=True)  # kept: overwrite=false answers 409
    assert store.get_bytes("t/x/one.bin") == b"1234" and store.size("t/x/one.bin") == 4 and store.size("t/no") is None
    store.put_bytes("t/two.bin", b"22")
    assert sorted(store.list("t/")) == [("t/two.bin", 2), ("t/x/one.bin", 4)]
    assert list(store.list("t/x")) == [("t/x/one.bin", 4)]
    assert store.delete_prefix("t/") == 2 and list(store.list("t/")) == []
    with pytest.raises(Exception, match="does not exist"):
        open_store("dbfs://main.platbench.nope").put_bytes("k", b"x")


def test_staging_is_content_addressed_and_resumes(workspace, tmp_path):
    from platforms.core.registry import open_store

    data = write_folder_dataset(tmp_path / "colors", train_per_class=6, test_per_class=2)
    store = open_store(f"dbfs://{VOLUME}")
    first = staging.upload(data, store, "sharded", "resume", shard_mb=32)
    shards = [k for k in first.shard_keys]
    assert first.figures["upload_objects_sent"] == len(shards) + 1  # the shards and the manifest
    # an upload interrupted before one shard and the manifest were written: only those are sent again
    root = store.root + "/"
    del workspace.files[root + shards[0]]
    del workspace.files[root + first.data_key]
    again = staging.upload(data, store, "sharded", "resume", shard_mb=32)
    assert again.figures["upload_objects_sent"] == 2 and again.figures["upload_objects_skipped"] == len(shards) - 1
    assert again.fingerprint == first.fingerprint


def test_a_corrupted_shard_fails_the_run_on_its_sha256(job_cluster, tmp_path, monkeypatch):
    workspace = job_cluster
    monkeypatch.chdir(tmp_path)
    data = write_folder_dataset(tmp_path / "colors", train_per_class=6, test_per_class=2)
    settings = {"volume": f"/Volumes/{VOLUME.replace('.', '/')}", "prefix": "corrupt", "poll_seconds": "0.2"}
    from platforms.core.registry import open_store

    staged = staging.upload(data, open_store(f"dbfs://{VOLUME}"), "sharded", "corrupt", shard_mb=32)
    path = f"/Volumes/{VOLUME.replace('.', '/')}/{staged.shard_keys[0]}"
    body = bytearray(workspace.files[path])
    body[len(body) // 2] ^= 0xFF  # same size: staging finds it present and does not send it again
    workspace.files[path] = bytes(body)
    outcome, _ = launch.launch("databricks", Job(data=data, out=tmp_path / "out", epochs=1), settings,
                               JobProgress(enabled=False))
    assert outcome.status == "failed"
    assert "SHA-256 mismatch" in outcome.message and "\n" not in outcome.message
