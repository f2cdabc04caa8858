"""Untrusted inputs on the trainer's side, each a hand-made hostile file: CIFAR-10 batches that run code when
unpickled, checkpoints that do the same, staged tar shards and manifests that reach outside their folder,
and gs:// model objects whose names climb out of the destination. Each is refused in one line and
leaves nothing behind."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from _cli import trainer_here
from conftest import assert_one_line_error, run_cmd, write_cifar_batches

from trainer.data import cache, cifar
from trainer.data.staged import STAGED_MANIFEST, materialize
from trainer.errors import ConfigError, DataError


class RunsCode:
    """Unpickling this runs `touch <marker>` through os.system: what a hostile pickle does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------ CIFAR batches
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_real_batch_structure_at_every_protocol(tmp_path, protocol):
    root = write_cifar_batches(tmp_path / "c", per_batch=10)
    d = root / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        obj = pickle.loads((d / name).read_bytes())
        if "filenames" not in str(obj.keys()) and name != "batches.meta":
            obj[b"filenames"] = [f"img_{i}.png".encode() for i in range(10)]  # as in the real batches
        (d / name).write_bytes(pickle.dumps(obj, protocol=protocol))
    classes, x_train, y_train, x_test, y_test = cifar.read_batches(root)
    assert classes == [f"class{i}" for i in range(10)] and x_train.shape == (50, 32, 32, 3)
    raw = pickle.loads((d / "test_batch").read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(x_test.transpose(0, 3, 1, 2).reshape(10, -1), raw[b"data"])


def _hostile_batch(root: Path, marker: Path, name: str = "data_batch_3") -> Path:
    path = root / "cifar-10-batches-py" / name
    path.write_bytes(pickle.dumps({b"data": RunsCode(marker), b"labels": [0]}, protocol=2))
    return path


def test_cifar_batch_that_runs_code_is_refused(tmp_path):
    root = write_cifar_batches(tmp_path / "c", per_batch=10)
    marker = tmp_path / "pwned"
    path = _hostile_batch(root, marker)
    with pytest.raises(DataError) as info:
        cache.load(root, cache_dir=tmp_path / "cache")
    assert str(info.value) == (f"refusing CIFAR-10 batch file {path}: it refers to posix.system, which a CIFAR-10 "
                               f"batch never holds")
    assert not marker.exists()


def test_cifar_batch_that_runs_code_is_one_line_from_the_trainer_cli(tmp_path):
    root = write_cifar_batches(tmp_path / "c", per_batch=10)
    marker = tmp_path / "pwned"
    _hostile_batch(root, marker, "batches.meta")
    # in this process (tests/_cli.py): `python -m trainer train`'s subprocess refusal is test_training's
    proc = trainer_here("train", "--data", str(root), "--out", str(tmp_path / "o"), "--device", "cpu",
                        env={"PLATBENCH_CACHE": str(tmp_path / "cache")})
    assert_one_line_error(proc)
    assert "refusing CIFAR-10 batch file" in proc.stderr and "posix.system" in proc.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ checkpoints
def test_resume_loads_checkpoints_without_unpickling_code(color_data, tmp_path):
    from trainer.train import TrainConfig, run

    cfg = TrainConfig(data_dir=color_data, output_dir=tmp_path / "o", model_dir=tmp_path / "o/model",
                      checkpoint_dir=tmp_path / "ckpt", device="cpu", overrides={"epochs": 1, "batch_size": 60})
    first = run(cfg, echo=lambda s: None).results
    # a genuine checkpoint resumes through Lightning with weights_only=True: tensors and plain containers only
    again = run(cfg, echo=lambda s: None).results
    assert again.resumed_from_epoch == 1 and again.test_accuracy == first.test_accuracy

    import torch

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "ckpt/last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["callbacks"]["evil"] = RunsCode(marker)  # a real checkpoint with one hostile object inside
    torch.save(state, ckpt)
    with pytest.raises(ConfigError, match=r"checkpoint .*last.ckpt cannot be loaded safely \(") as info:
        run(cfg, echo=lambda s: None)
    assert "\n" not in str(info.value)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ staged shards
def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _stage(root: Path, shards: list[bytes], fingerprint: str = "a" * 64, key_for=None) -> Path:
    entries = []
    for data in shards:
        sha = hashlib.sha256(data).hexdigest()
        (root / "shards").mkdir(parents=True, exist_ok=True)
        (root / "shards" / f"{sha}.tar").write_bytes(data)
        entries.append({"key": key_for(sha) if key_for else f"shards/{sha}.tar", "sha256": sha, "size": len(data)})
    mdir = root / "datasets" / "manifest-dir"
    mdir.mkdir(parents=True)
    (mdir / STAGED_MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "shards": entries}))
    return root


def test_a_good_staged_dataset_unpacks(tmp_path):
    root = _stage(tmp_path / "bucket", [_tar([_file("train/a/1.png", b"one"), _file("test/a/2.png", b"two")])])
    out = materialize(root, {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack")})
    assert out == tmp_path / "unpack/platbench-data" / ("a" * 64)
    assert (out / "train/a/1.png").read_bytes() == b"one" and (out / "test/a/2.png").read_bytes() == b"two"


HOSTILE_SHARDS = {
    "absolute path": ([_file("/tmp/platbench-evil-abs")], "unsafe path '/tmp/platbench-evil-abs'"),
    "dot-dot": ([_file("train/../../evil")], "unsafe path 'train/../../evil'"),
    "symlink out": ([_special("train/link", tarfile.SYMTYPE, "/etc/passwd")], "'train/link' is a symlink"),
    "symlink then write through it": ([_special("train", tarfile.SYMTYPE, ".."), _file("train/evil")],
                                      "'train' is a symlink"),
    "hard link": ([_special("train/hl", tarfile.LNKTYPE, "/etc/passwd")], "'train/hl' is a hard link"),
    "char device": ([_special("train/dev", tarfile.CHRTYPE)], "'train/dev' is a device"),
    "block device": ([_special("train/blk", tarfile.BLKTYPE)], "'train/blk' is a device"),
    "fifo": ([_special("train/fifo", tarfile.FIFOTYPE)], "'train/fifo' is a fifo"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SHARDS))
def test_hostile_shard_is_refused_before_anything_is_written(tmp_path, case):
    members, words = HOSTILE_SHARDS[case]
    good = _tar([_file("train/a/ok.png")])
    root = _stage(tmp_path / "bucket", [good, _tar(members)])
    unpack = tmp_path / "unpack"
    with pytest.raises(DataError, match="refusing to unpack it") as info:
        materialize(root, {"PLATBENCH_UNPACK_DIR": str(unpack)})
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "evil").exists() and not Path("/tmp/platbench-evil-abs").exists()
    assert not list((unpack / "platbench-data").iterdir())  # the half-unpacked folder is gone too


@pytest.mark.parametrize("fingerprint", ["../../../escape", "/tmp/abs", "A" * 64, "a" * 63, 42])
def test_manifest_fingerprint_must_be_a_hex_digest_before_it_names_a_folder(tmp_path, fingerprint):
    root = _stage(tmp_path / "bucket", [_tar([_file("train/a/1.png")])], fingerprint=fingerprint)
    with pytest.raises(DataError, match="is not a SHA-256 hex digest"):
        materialize(root, {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack" / "x")})
    assert not (tmp_path / "unpack").exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("key", ["../outside.tar", "/etc/passwd", "shards/../../outside.tar"])
def test_manifest_shard_key_cannot_leave_the_dataset(tmp_path, key):
    (tmp_path / "outside.tar").write_bytes(_tar([_file("train/a/1.png")]))
    root = _stage(tmp_path / "bucket", [_tar([_file("train/a/1.png")])], key_for=lambda sha: key)
    with pytest.raises(DataError, match="is not a relative path inside the dataset"):
        materialize(root, {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack")})


def test_hostile_staged_data_is_one_line_from_the_trainer_cli(tmp_path):
    root = _stage(tmp_path / "bucket", [_tar([_file("train/../../evil")])])
    # in this process (tests/_cli.py): the CIFAR-10 refusal above is `train` through the real entry point
    proc = trainer_here("train", "--data", str(root), "--out", str(tmp_path / "o"),
                        env={"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpack")})
    assert_one_line_error(proc)
    assert "unsafe path 'train/../../evil'" in proc.stderr


# ------------------------------------------------------------------------------------------ serve gs://
class ObjectServer(ThreadingHTTPServer):
    """Cloud Storage's JSON API, the two calls a model copy makes (objects.list, media download), holding
    object names the real service accepts (any UTF-8 but `.`/`..` alone) and the storage emulator refuses
    (`a/../../x`, `a//etc/x`). The official SDK sends the requests."""

    daemon_threads = True

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.downloads: list[str] = []
        super().__init__(("127.0.0.1", 0), _ObjectHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ObjectHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.split("/")
        if url.path.startswith("/storage/v1/b/") and url.path.endswith("/o"):  # objects.list
            bucket, prefix = parts[4], query.get("prefix", [""])[0]
            items = [{"kind": "storage#object", "bucket": bucket, "name": n, "size": str(len(d))}
                     for n, d in sorted(self.server.objects.items()) if n.startswith(prefix)]
            return self._send(200, json.dumps({"kind": "storage#objects", "items": items}).encode())
        if url.path.startswith("/download/storage/v1/b/") and "/o/" in url.path:  # media download
            name = urllib.parse.unquote(url.path.split("/o/", 1)[1])
            if name in self.server.objects:
                self.server.downloads.append(name)
                return self._send(200, self.server.objects[name], "application/octet-stream")
        self._send(404, b'{"error": {"code": 404, "message": "not found"}}')


@pytest.fixture
def object_server(monkeypatch):
    def start(objects: dict[str, bytes]) -> ObjectServer:
        server = ObjectServer(objects)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        started.append(server)
        return server

    started: list[ObjectServer] = []
    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def own_tmpdir(tmp_path, monkeypatch):
    """tempfile.mkdtemp under a folder of this test's own, so escapes and leftovers can be seen."""
    import tempfile

    root = tmp_path / "tmp" / "deep" / "er"
    root.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_gs_model_copy_downloads_the_objects_under_the_prefix(object_server, own_tmpdir):
    from trainer.serve import resolve_model_dir

    object_server({"model/model.json": b"{}", "model/sub/w.pt": b"w", "other/x": b"no"})
    got, cleanup = resolve_model_dir(None, {"AIP_STORAGE_URI": "gs://bkt/model"})
    assert got == cleanup and got.parent == own_tmpdir
    assert (got / "model.json").read_bytes() == b"{}" and (got / "sub/w.pt").read_bytes() == b"w"
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["model.json", "sub/w.pt"]


@pytest.mark.parametrize("name", ["model/../../../evil", "model//tmp/platbench-evil-gs", "model/sub/../../../evil",
                                  "model/..", "model/a\\..\\..\\evil"])
def test_gs_model_copy_refuses_names_that_leave_its_folder(object_server, own_tmpdir, name):
    from trainer.serve import resolve_model_dir

    server = object_server({"model/model.json": b"{}", name: b"evil"})
    with pytest.raises(ConfigError, match="object name would be written outside the model folder") as info:
        resolve_model_dir(None, {"AIP_STORAGE_URI": "gs://bkt/model/"})
    assert str(info.value).startswith(f"gs://bkt/{name}: ") and "\n" not in str(info.value)
    assert name not in server.downloads
    assert not list(own_tmpdir.iterdir())  # the partial copy is removed
    top = own_tmpdir.parents[2]
    assert [p.name for p in top.rglob("evil")] == [] and not Path("/tmp/platbench-evil-gs").exists()


def test_serve_with_a_hostile_gs_model_is_one_line(object_server, tmp_path):
    (tmp_path / "t").mkdir()
    server = object_server({"m/model.json": b"{}", "m/../../evil": b"evil"})
    proc = run_cmd([sys.executable, "-m", "trainer", "serve", "--port", "0"],
                   env={"AIP_STORAGE_URI": "gs://bkt/m", "TMPDIR": str(tmp_path / "t"),
                        "STORAGE_EMULATOR_HOST": server.url}, timeout=120)
    assert_one_line_error(proc)
    assert "outside the model folder" in proc.stderr
    assert not (tmp_path / "evil").exists() and not list((tmp_path / "t").iterdir())


def test_hostile_pickle_helper_really_runs_code(tmp_path):
    """The hostile inputs above are real: plain pickle.loads of one runs the command."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()
