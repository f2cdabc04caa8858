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
    from platforms.clouds.aws.s3 import S3Store

    store = S3Store(bucket or new_bucket_name())
    store.client.create_bucket(Bucket=store.bucket)
    return store


_STAGED_ONCE: dict = {}


@pytest.fixture
def staged_once(aws, dataset):
    """(store, staged) of `dataset` uploaded sharded under "pb" once per process, for the tests that read it or
    tamper with its manifest: the manifest is put back as it was after each test."""
    from platforms.clouds.aws.s3 import S3Store

    if not _STAGED_ONCE:
        store = s3_store()
        staged = staging.upload(dataset, store, "sharded", "pb")
        _STAGED_ONCE.update(bucket=store.bucket, staged=staged, manifest=store.get_bytes(staged.data_key))
    store = S3Store(_STAGED_ONCE["bucket"])  # a client through this test's proxy (tests/conftest_clouds.py)
    yield store, _STAGED_ONCE["staged"]
    store.put_bytes(_STAGED_ONCE["staged"].data_key, _STAGED_ONCE["manifest"])


def gcs_store(bucket=None):
    from google.cloud import storage

    from platforms.clouds.gcp.gcs import GCSStore

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


def test_manifest_lists_shards_relative_to_the_staging_root(staged_once, dataset):
    store, staged = staged_once
    manifest = json.loads(store.get_bytes(staged.data_key))
    assert manifest["fingerprint"] == staged.fingerprint and manifest["files"] == len(list(dataset.rglob("*.png")))
    assert all(s["key"].startswith("shards/") and len(s["sha256"]) == 64 for s in manifest["shards"])


# ---------------------------------------------------------------- s/MB over the bytes actually moved (issue 10)

def test_cached_upload_logs_bytes_sent_zero_and_no_s_per_mb(aws, dataset):
    """A run that finds every shard staged sent nothing: its seconds are a scan, not a transfer."""
    store = s3_store()
    first = staging.upload(dataset, store, "sharded", "pb")
    mb_sent = first.figures["upload_bytes_sent"] / 2**20
    assert first.figures["upload_s_per_mb"] == pytest.approx(first.figures["upload_seconds"] / mb_sent)
    again = staging.upload(dataset, store, "sharded", "pb")
    assert again.figures["upload_bytes_sent"] == 0
    assert "upload_s_per_mb" not in again.figures and again.figures["upload_seconds"] > 0


def test_partly_staged_upload_s_per_mb_is_over_the_bytes_it_sent(aws, tmp_path):
    data = write_folder_dataset(tmp_path / "d", train_per_class=10, test_per_class=4)
    store = s3_store()
    staging.upload(data, store, "sharded", "pb")
    victim = sorted((data / "train/red").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    again = staging.upload(data, store, "sharded", "pb")
    sent = again.figures["upload_bytes_sent"]
    assert 0 < sent < again.bytes  # one shard and the manifest, not the dataset
    assert again.figures["upload_s_per_mb"] == pytest.approx(again.figures["upload_seconds"] / (sent / 2**20))


def test_download_that_finds_its_shards_local_logs_no_s_per_mb(aws, dataset, tmp_path):
    store = s3_store()
    staged = staging.upload(dataset, store, "sharded", "pb")
    first = staging.download_staged(staged, store, tmp_path / "ch")
    got = first["download_bytes_received"]
    assert got >= staged.bytes and first["download_s_per_mb"] == pytest.approx(first["download_seconds"] / (got / 2**20))
    again = staging.download_staged(staged, store, tmp_path / "ch")
    assert again["download_bytes_received"] == 0 and "download_s_per_mb" not in again


# ---------------------------------------------------------------- inputs from a bucket are untrusted (issue 10)

HOSTILE_SHARD_KEYS = ["../../escaped.tar", "/etc/escaped.tar", "shards/../../escaped.tar", "shards/x.tar",
                      "shards/" + "a" * 64 + ".tar/../../../escaped"]


@pytest.mark.parametrize("bad", HOSTILE_SHARD_KEYS)
def test_download_refuses_a_manifest_whose_shard_keys_leave_the_folder(staged_once, tmp_path, bad):
    store, staged = staged_once
    manifest = json.loads(store.get_bytes(staged.data_key))
    manifest["shards"][0]["key"] = bad
    store.put_bytes(staged.data_key, json.dumps(manifest).encode())
    with pytest.raises(UserError, match="shard key"):
        staging.download_staged(staged, store, tmp_path / "deep/er/ch")
    assert not list((tmp_path / "deep").rglob("*.tar")) and not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("field, bad", [("fingerprint", "../../" + "a" * 58), ("fingerprint", "A" * 64),
                                        ("sha256", "../x"), ("sha256", 7)])
def test_download_refuses_a_manifest_with_a_non_hex_digest(staged_once, tmp_path, field, bad):
    store, staged = staged_once
    manifest = json.loads(store.get_bytes(staged.data_key))
    if field == "fingerprint":
        manifest["fingerprint"] = bad
    else:
        manifest["shards"][0]["sha256"] = bad
    store.put_bytes(staged.data_key, json.dumps(manifest).encode())
    with pytest.raises(UserError, match="hex digest"):
        staging.download_staged(staged, store, tmp_path / "ch")
    assert not (tmp_path / "ch").exists() or not list((tmp_path / "ch").rglob("*.tar"))


def test_a_fingerprint_that_is_no_hex_digest_never_becomes_a_key_or_a_path(staged_once, tmp_path):
    for bad in ("../../etc", "a" * 63 + "/", "", "g" * 64):
        with pytest.raises(UserError, match="hex digest"):
            staging.manifest_key("pb", bad)
    store, staged = staged_once
    forged = staging.Staged.from_dict({**staged.to_dict(), "fingerprint": "../../x"})
    with pytest.raises(UserError, match="hex digest"):
        staging.download_staged(forged, store, tmp_path / "ch")


def test_upload_does_not_trust_a_hostile_manifest_already_in_the_bucket(aws, dataset):
    """The cached path hands the manifest's shard keys to the job's input channel: a tampered manifest
    is staged over, not passed on."""
    store = s3_store()
    first = staging.upload(dataset, store, "sharded", "pb")
    manifest = json.loads(store.get_bytes(first.data_key))
    manifest["shards"][0]["key"] = "../../../home/user/.ssh/id_rsa"
    store.put_bytes(first.data_key, json.dumps(manifest).encode())
    again = staging.upload(dataset, store, "sharded", "pb")
    assert again.shard_keys == first.shard_keys
    assert json.loads(store.get_bytes(first.data_key))["shards"][0]["key"].startswith("shards/")


@pytest.mark.parametrize("bad", ["run/../../escaped", "run/a/../../../escaped", "run//etc/escaped",
                                 "run/./../escaped"])
def test_download_prefix_refuses_keys_that_leave_the_destination(aws, tmp_path, bad):
    store = s3_store()
    store.put_bytes("run/ok.txt", b"fine")
    store.put_bytes(bad, b"owned")
    # a security check fails rather than skips: were the key normalised on the way, the hostile listing this
    # test needs would not exist, and the refusal below would go unproved
    assert bad in {k for k, _ in store.list("run/")}, f"the server normalised {bad!r}: nothing hostile to refuse"
    dest = tmp_path / "a/b/c/dest"
    with pytest.raises(UserError, match="leaves"):
        staging.download_prefix(store, "run/", dest)
    assert not list(tmp_path.rglob("escaped")) and not (dest / "ok.txt").exists()  # checked before any write


def test_download_prefix_skips_folder_markers_and_keeps_safe_keys(aws, tmp_path):
    store = s3_store()
    store.put_bytes("run/a/b.txt", b"one")
    store.put_bytes("run/a/", b"")  # the console's "folder" object
    got, _ = staging.download_prefix(store, "run/", tmp_path / "d")
    assert got == 3 and (tmp_path / "d/a/b.txt").read_bytes() == b"one"


def test_naive_download_refuses_keys_that_leave_the_destination(aws, dataset, tmp_path):
    store = s3_store()
    naive = staging.upload(dataset, store, "naive", "pb")
    store.put_bytes(naive.data_key + "train/../../../escaped", b"owned")
    hostile = naive.data_key + "train/../../../escaped"
    assert hostile in {k for k, _ in store.list(naive.data_key)}, "the server normalised the key: nothing to refuse"
    with pytest.raises(UserError, match="leaves"):
        staging.download_staged(naive, store, tmp_path / "x/y/z/down")
    assert not list(tmp_path.rglob("escaped"))


def _tarball(members: list) -> bytes:
    """A .tar.gz of hand-made members: (name, kind, payload/target)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                         "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = extra
            tar.addfile(info)
    return buf.getvalue()


HOSTILE_TARBALLS = {
    "dotdot": [("../escaped", "file", b"owned")],
    "deep dotdot": [("a/b/../../../escaped", "file", b"owned")],
    "absolute": [("/tmp/escaped-platbench-test", "file", b"owned")],
    "symlink out": [("link", "symlink", "../.."), ("link/escaped", "file", b"owned")],
    "absolute symlink": [("link", "symlink", "/etc")],
    "hardlink out": [("hl", "hardlink", "/etc/passwd")],
    "hardlink dotdot": [("hl", "hardlink", "../../outside")],
    "device": [("dev", "chr", None)],
    "fifo": [("pipe", "fifo", None)],
    "symlink then through it": [("a", "symlink", "b/../.."), ("a/escaped", "file", b"owned")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARBALLS))
def test_collect_tarballs_refuses_hostile_members_on_every_python(aws, tmp_path, case):
    """The member check runs on every Python the package allows (>=3.10), before any byte is written;
    filter='data' is tarfile's own second guard where it exists."""
    from platforms.sagemaker.emulator import collect_tarballs

    store = s3_store()
    store.put_bytes("out/job/output/output.tar.gz", _tarball(HOSTILE_TARBALLS[case]))
    store.put_bytes("out/job/output/model.tar.gz", _tarball([("model.pt", "file", b"weights")]))
    dest = tmp_path / "a/b/c/dest"
    with pytest.raises(UserError, match="refusing"):
        collect_tarballs(store, "out/job/output", dest, "0" * 64, "sagemaker job job")
    assert not list(tmp_path.rglob("escaped")) and not Path("/tmp/escaped-platbench-test").exists()
    assert not [p for p in dest.rglob("*") if not p.is_dir()]  # nothing half-written


def test_collect_tarballs_keeps_a_link_that_stays_inside(aws, tmp_path):
    from platforms.sagemaker.emulator import collect_tarballs

    store = s3_store()
    store.put_bytes("o/output.tar.gz", _tarball([("sub", "dir", None), ("sub/a.txt", "file", b"a"),
                                                 ("latest.txt", "symlink", "sub/a.txt")]))
    store.put_bytes("o/model.tar.gz", _tarball([("model.pt", "file", b"weights")]))
    got = collect_tarballs(store, "o", tmp_path / "d", "0" * 64, "job")  # no results.json: nothing to compare
    assert got["collect_mb"] > 0
    assert (tmp_path / "d/latest.txt").read_bytes() == b"a" and (tmp_path / "d/model/model.pt").is_file()


def test_teardown_aborts_only_this_runs_multipart_uploads(aws):
    """Another process's upload under the same prefix is in flight: teardown must leave it alone.
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html (by key and UploadId)"""
    import os

    from platforms.clouds.aws.s3 import S3Store

    store = s3_store()
    other = S3Store(store.bucket)
    foreign = other.client.create_multipart_upload(Bucket=store.bucket, Key="pb/shards/theirs.tar")["UploadId"]
    foreign_same_key = other.client.create_multipart_upload(Bucket=store.bucket, Key="pb/shards/mine.tar")["UploadId"]

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_large("pb/shards/mine.tar", os.urandom(11 * 2**20), 5 * 2**20, on_part=interrupt)
    assert store.abort_incomplete("pb/") <= 1
    left = {u["UploadId"] for u in store.client.list_multipart_uploads(Bucket=store.bucket,
                                                                        Prefix="pb/").get("Uploads", [])}
    assert left == {foreign, foreign_same_key}


CONCURRENT_STAGER = """
import sys, time
from pathlib import Path
from platforms.core import staging
from platforms.clouds.aws.s3 import S3Store

go = Path(sys.argv[3])
Path(sys.argv[4]).touch()  # imported: ready for the go
while not go.exists():
    time.sleep(0.01)
staged = staging.upload_sharded(Path(sys.argv[1]), S3Store(sys.argv[2]), "pb", shard_mb=64, part_mb=5)
print(staged.fingerprint, staged.figures["upload_bytes_sent"])
"""


def test_two_processes_staging_the_same_dataset_at_once_both_succeed(aws, tmp_path):
    """Two real processes, one bucket, one dataset of multipart shards, started together: both finish,
    no unfinished upload is left, and what is staged downloads and unpacks to the same fingerprint."""
    import os
    import subprocess
    import sys

    from trainer.data.staged import materialize

    rng = __import__("numpy").random.default_rng(0)
    data = tmp_path / "big"
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("a", "b"):
            (data / split / cls).mkdir(parents=True)
            for i in range(n):  # ~2 MiB each: the train shards take three 5 MiB parts
                (data / split / cls / f"{i}.png").write_bytes(rng.bytes(2 * 2**20 - i))
    store = s3_store()
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_STAGER, str(data), store.bucket, str(go), str(ready[i])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PLATBENCH_CACHE": str(tmp_path / f"cache{i}")})
             for i in range(2)]
    from conftest import wait_for

    wait_for(lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in procs), 120,
             "both staging processes to import", interval=0.05)  # both imported and waiting (or one died: below)
    go.write_text("go")
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    assert len({o.split()[0] for o, _ in outs}) == 1
    assert store.client.list_multipart_uploads(Bucket=store.bucket, Prefix="pb/").get("Uploads", []) == []
    fp = outs[0][0].split()[0]
    staged = staging.Staged("sharded", store.uri().rstrip("/"), "pb", staging.manifest_key("pb", fp), fp, "big",
                            "folder", 16, 0)
    staging.download_staged(staged, store, tmp_path / "ch")
    unpacked = materialize(tmp_path / "ch", {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack")})
    assert layout.fingerprint(unpacked) == fp
    assert len({k for k, _ in store.list("pb/shards/")}) == 4


KILLED_UPLOADER = """
import os, sys
from platforms.clouds.aws.s3 import S3Store

def die(done, total):
    if done == 2:
        os._exit(9)  # killed outright: no teardown, no abort

S3Store(sys.argv[1]).put_large("pb/shards/big.tar", bytes(range(256)) * (12 * 2**12), 5 * 2**20, on_part=die)
"""


def test_an_upload_whose_process_died_is_resumed_by_the_next_one(aws):
    import subprocess
    import sys

    store = s3_store()
    proc = subprocess.run([sys.executable, "-c", KILLED_UPLOADER, store.bucket], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    data = bytes(range(256)) * (12 * 2**12)
    assert store.put_large("pb/shards/big.tar", data, 5 * 2**20) == {"parts": 3, "parts_skipped": 2}
    assert store.get_bytes("pb/shards/big.tar") == data
    assert store.client.list_multipart_uploads(Bucket=store.bucket, Prefix="pb/").get("Uploads", []) == []
