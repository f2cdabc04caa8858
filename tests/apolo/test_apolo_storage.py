"""Apolo platform storage as platbench's object store (platforms/apolo/storage.py), through the real
apolo-sdk against the loopback platform: content-addressed staging that sends nothing the second time,
SHA-256-checked downloads, and a shard upload that continues from where an interrupted one stopped."""
from __future__ import annotations

import hashlib
import os

import pytest
from conftest import write_folder_dataset
from _apolo_server import ApoloServer, login

from platforms.core import staging
from platforms.errors import UserError


@pytest.fixture
def store(tmp_path):
    from platforms.apolo.session import Session
    from platforms.apolo.storage import ApoloStore

    server = ApoloServer(tmp_path / "platform")
    session = Session(str(login(server, tmp_path / "apolo-config")))
    s = ApoloStore("pb-cluster", session=session)
    s.server = server
    yield s
    session.close()
    server.close()


def test_staging_is_content_addressed_and_checked_on_the_way_back(store, tmp_path):
    data = write_folder_dataset(tmp_path / "colors", train_per_class=6, test_per_class=2)
    first = staging.upload(data, store, "sharded", "pb-org/pb-project/platbench")
    assert first.figures["upload_bytes_sent"] > 0 and first.data_uri.startswith(
        "storage://pb-cluster/pb-org/pb-project/platbench/datasets/")
    again = staging.upload(data, store, "sharded", "pb-org/pb-project/platbench")
    assert again.figures["upload_bytes_sent"] == 0 and "upload_s_per_mb" not in again.figures
    got = staging.download_staged(first, store, tmp_path / "down")
    assert got["download_bytes_received"] > 0 and got["download_s_per_mb"] > 0
    # a shard changed in storage is refused on the way back (SHA-256)
    shard = store.server.root / "storage" / first.shard_keys[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        staging.download_staged(first, store, tmp_path / "down2")


def test_an_interrupted_shard_upload_continues_where_it_stopped(store):
    data = os.urandom(3 * 2**20 + 123)
    key = f"pb-org/pb-project/platbench/shards/{hashlib.sha256(data).hexdigest()}.tar"
    store.put_bytes(key + ".part", data[:2 * 2**20 + 77])  # an upload cut in its third MiB
    before = store.snapshot()["bytes_up"]
    result = store.put_large(key, data, 2**20)
    assert result == {"parts": 4, "parts_skipped": 2}
    assert store.snapshot()["bytes_up"] - before == len(data) - 2 * 2**20  # the torn MiB again, then the rest
    assert store.get_bytes(key) == data and store.size(key + ".part") is None
    assert [k for k, _ in store.list("pb-org/pb-project/platbench/")] == [key]


def test_storage_outside_the_login_s_projects_is_refused(store):
    with pytest.raises(UserError, match="apolo storage: no access on cluster pb-cluster: No access to project"):
        store.put_bytes("other-org/other-project/x", b"1")
