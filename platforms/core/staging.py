"""Staging a dataset into object storage, two ways, with upload/download seconds per MB measured.

**sharded** (platbench's way): the files the trainer reads are packed into a few deterministic tar shards
(one per class folder, split at `shard_mb`), each stored under the SHA-256 of its bytes:

    <prefix>/shards/<sha256>.tar                         content-addressed: an unchanged shard is never sent twice
    <prefix>/datasets/<fingerprint>/platbench-manifest.json   written last: its presence means "complete"

The dataset fingerprint is the trainer's own (trainer/data/layout.py: SHA-256 over every file's relative
path and content hash), computed from a local cache of file hashes keyed by (size, mtime), so a second,
unchanged upload is a stat of each file and one HEAD request. An interrupted upload resumes: finished
shards are found by key, and a half-sent shard continues from its last part (S3 multipart). The other
side unpacks the shards and checks each one's SHA-256 (trainer/data/staged.py, `materialize`), and the
trainer reports the fingerprint of what it read, which the launcher compares with the staged one.

**naive**: one object per file under `<prefix>/naive/<dataset name>/`, the way `aws s3 sync` / `gsutil cp -r`
would do it, so the report can show what sharding saves.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from platforms.errors import UserError
from platforms.core.store import ObjectStore

MANIFEST_NAME = "platbench-manifest.json"  # also named in trainer/environment.py (the unpacking side)
MANIFEST_VERSION = 1
MB = 1024 * 1024


@dataclass
class FileEntry:
    rel: str
    size: int
    sha256: str


@dataclass
class Scan:
    base: Path             # the folder the relative paths start from
    format: str            # folder | cifar-python
    name: str
    entries: list[FileEntry]
    fingerprint: str
    seconds: float
    hashed: int            # files whose hash was not in the local cache

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass
class Staged:
    """Where a dataset was staged and what it cost; JSON-serialisable (it rides in the job handle)."""

    mode: str                     # sharded | naive
    store_uri: str                # s3://bucket or gs://bucket
    prefix: str                   # the staging root, e.g. platbench
    data_key: str                 # sharded: the manifest's key; naive: the files' key prefix (ends in /)
    fingerprint: str
    name: str
    format: str
    files: int
    bytes: int
    shard_keys: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def data_uri(self) -> str:
        return self.store_uri.rstrip("/") + "/" + self.data_key

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Staged":
        return cls(**d)


# ---------------------------------------------------------------- scanning and fingerprinting

def cache_dir() -> Path:
    if os.environ.get("PLATBENCH_CACHE"):
        return Path(os.environ["PLATBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "platbench"


def dataset_files(root: Path) -> tuple[Path, str, list[Path]]:
    """Exactly the files the trainer reads (and fingerprints), with the folder their paths start from."""
    base, fmt, items = _dataset_items(root)
    return base, fmt, [Path(p) for _, p in items]


def _dataset_items(root: Path) -> tuple[Path, str, list[tuple[str, str]]]:
    """(relative path, absolute path) of every file the trainer reads, in its order. The folder layout is
    listed with os.scandir (no pathlib per file: 60,000 files in a fraction of a second) by the trainer's
    own rules (trainer/data/layout.py), which are asked for the error message when something is off."""
    from trainer.data import layout
    from trainer.errors import DataError

    try:
        fmt = layout.detect_format(root)
        if fmt == "cifar-python":
            base = layout.cifar_batch_dir(root)
            missing = [n for n in layout.CIFAR_FILES if not (base / n).is_file()]
            if missing:
                raise DataError(f"CIFAR-10 batches in {base} are incomplete: missing {', '.join(missing)}")
            return base, fmt, [(n, str(base / n)) for n in layout.CIFAR_FILES]
        items: list[tuple[str, str]] = []
        classes = {}
        for split in ("train", "test"):
            split_dir = os.path.join(root, split)
            with os.scandir(split_dir) as it:
                classes[split] = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        if not classes["train"] or classes["train"] != classes["test"]:
            layout.scan_folder(root)  # raises the trainer's own message
        for split in ("train", "test"):
            for name in classes[split]:
                d = os.path.join(root, split, name)
                with os.scandir(d) as it:
                    files = sorted(e.name for e in it if e.is_file() and os.path.splitext(e.name)[1].lower()
                                   in layout.IMAGE_SUFFIXES)
                if not files:
                    layout.scan_folder(root)
                items += [(f"{split}/{name}/{f}", os.path.join(d, f)) for f in files]
    except (DataError, FileNotFoundError, NotADirectoryError) as exc:
        if not isinstance(exc, DataError):
            try:
                layout.scan_folder(root)
            except DataError as inner:
                exc = inner
        raise UserError(str(exc)) from None
    return Path(root), fmt, items


class _HashCache:
    """(relative path, size, mtime_ns) → SHA-256, one JSON file per dataset folder."""

    def __init__(self, base: Path):
        key = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:20]
        self.path = cache_dir() / "staging" / f"hashes-{key}.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False

    def get(self, rel: str, st) -> Optional[str]:
        hit = self.data.get(rel)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        return None

    def put(self, rel: str, st, digest: str) -> None:
        self.data[rel] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, separators=(",", ":"))
        os.replace(tmp, self.path)


def fingerprint(entries: list[FileEntry]) -> str:
    """The trainer's dataset fingerprint (trainer.data.layout.fingerprint_files), from cached hashes."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.rel):
        digest.update(e.rel.encode() + b"\0")
        digest.update(bytes.fromhex(e.sha256))
    return digest.hexdigest()


def scan(root: Path, workers: int = 4) -> Scan:
    t0 = time.perf_counter()
    root = Path(root)
    base, fmt, items = _dataset_items(root)
    cache = _HashCache(base)
    entries: dict[str, FileEntry] = {}
    misses = []
    order = []
    for rel, path in items:
        st = os.stat(path)
        order.append(rel)
        digest = cache.get(rel, st)
        if digest is None:
            misses.append((path, rel, st))
        else:
            entries[rel] = FileEntry(rel, st.st_size, digest)

    def hash_one(item):
        path, rel, st = item
        with open(path, "rb") as f:
            return rel, st, hashlib.sha256(f.read()).hexdigest()

    with ThreadPoolExecutor(workers) as pool:
        for rel, st, digest in pool.map(hash_one, misses):
            entries[rel] = FileEntry(rel, st.st_size, digest)
            cache.put(rel, st, digest)
    cache.save()
    ordered = [entries[rel] for rel in order]
    return Scan(base, fmt, root.resolve().name, ordered, fingerprint(ordered), time.perf_counter() - t0, len(misses))


# ---------------------------------------------------------------- shards

def plan_shards(entries: list[FileEntry], shard_bytes: int) -> list[list[FileEntry]]:
    """One group per folder (a class of a split), cut into pieces of at most `shard_bytes`: a change in
    one class re-sends only that class's shard(s)."""
    groups: dict[str, list[FileEntry]] = {}
    for e in sorted(entries, key=lambda e: e.rel):
        groups.setdefault(e.rel.rpartition("/")[0], []).append(e)
    shards = []
    for _, members in sorted(groups.items()):
        current, size = [], 0
        for e in members:
            if current and size + e.size > shard_bytes:
                shards.append(current)
                current, size = [], 0
            current.append(e)
            size += e.size + 512
        if current:
            shards.append(current)
    return shards


def build_tar(base: Path, members: list[FileEntry]) -> bytes:
    """A byte-for-byte reproducible tar: sorted members, zero times and owners, mode 0644."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in members:
            data = (base / e.rel).read_bytes()
            if hashlib.sha256(data).hexdigest() != e.sha256:
                raise UserError(f"{base / e.rel} changed while it was being staged; run again")
            info = tarfile.TarInfo(e.rel)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members_id(members: list[FileEntry]) -> str:
    h = hashlib.sha256()
    for e in members:
        h.update(f"{e.rel}\0{e.sha256}\n".encode())
    return h.hexdigest()


# What a bucket hands back is untrusted (someone else may write to it): a digest names a key and a local
# folder only when it is a lowercase SHA-256 hex digest, so no `..`, `/` or absolute path can ride in it.
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHARD_REL = re.compile(r"shards/([0-9a-f]{64})\.tar")


def hex_digest(value, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise UserError(f"{what} {str(value)[:80]!r} is not a SHA-256 hex digest")
    return value


def manifest_key(prefix: str, fp: str) -> str:
    return f"{prefix.strip('/')}/datasets/{hex_digest(fp, 'dataset fingerprint')}/{MANIFEST_NAME}"


def shard_key(prefix: str, sha: str) -> str:
    return f"{prefix.strip('/')}/shards/{hex_digest(sha, 'shard SHA-256')}.tar"


def checked_manifest(raw: bytes, fingerprint: str, where: str) -> list[dict]:
    """The shard entries of a manifest read from a bucket, each checked before any becomes a key or a path:
    the fingerprint is the one expected, every shard is `shards/<sha256>.tar` with that same digest."""
    try:
        manifest = json.loads(raw)
        fp, shards = manifest["fingerprint"], manifest["shards"]
        if not isinstance(shards, list):
            raise TypeError("shards is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"dataset manifest {where} is unreadable ({exc})") from None
    hex_digest(fp, f"dataset manifest {where}: fingerprint")
    if fp != fingerprint:
        raise UserError(f"dataset manifest {where} describes dataset {fp[:12]}…, not {fingerprint[:12]}…")
    out = []
    for shard in shards:
        shard = shard if isinstance(shard, dict) else {}
        sha = hex_digest(shard.get("sha256"), f"dataset manifest {where}: shard sha256")
        match = _SHARD_REL.fullmatch(shard.get("key") if isinstance(shard.get("key"), str) else "")
        if match is None or match.group(1) != sha:
            raise UserError(f"dataset manifest {where}: shard key {str(shard.get('key'))[:80]!r} is not "
                            f"shards/<its sha256>.tar; refusing it")
        size = shard.get("size")
        out.append({**shard, "size": size if isinstance(size, int) and size >= 0 else None})
    return out


def safe_relative(key: str, prefix: str, dest: Path) -> Optional[Path]:
    """Where the object `key` (under `prefix`) lands inside `dest`, or None for a "folder" marker (a key
    ending in `/`). A key whose remainder is absolute, has `..`, `.` or empty segments, or a backslash is
    refused: it would write outside `dest` or onto another key's file."""
    rel = key[len(prefix):] if key.startswith(prefix) else None
    if rel is not None and prefix and not prefix.endswith("/"):
        rel = rel[1:] if rel.startswith("/") else None  # "run" + "/x": the separator belongs to the prefix
    if rel is not None and rel.endswith("/"):
        return None
    parts = rel.split("/") if rel else []
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
        raise UserError(f"object key {key!r} leaves or hides in {dest} (not a plain relative path under "
                        f"{prefix!r}); refusing to download anything from {prefix!r}")
    return Path(dest).joinpath(*parts)


# ---------------------------------------------------------------- uploads

def _figures(seconds: float, total_bytes: int, stats_before: dict, store: ObjectStore, **more) -> dict:
    """upload_s_per_mb is over the bytes this run actually sent (shards and manifest): a run that found
    every shard staged sent nothing, logs upload_bytes_sent 0 and no s/MiB (its seconds are a scan and a
    HEAD, not a transfer; the report shows it as cached). upload_mb is the dataset's size."""
    after = store.snapshot()
    sent = after["bytes_up"] - stats_before["bytes_up"]
    fig = {"upload_seconds": seconds, "upload_mb": total_bytes / MB, "upload_bytes_sent": sent,
           "upload_requests": after["requests"] - stats_before["requests"],
           "upload_retries": after["retries"] - stats_before["retries"]}
    if sent > 0:
        fig["upload_s_per_mb"] = seconds / (sent / MB)
    fig.update(more)
    return fig


def upload_sharded(root: Path, store: ObjectStore, prefix: str = "platbench", shard_mb: float = 64,
                   part_mb: float = 16, workers: int = 4,
                   on_progress: Optional[Callable[[int, int], None]] = None) -> Staged:
    """Stage `root` as content-addressed shards; a second, unchanged upload sends nothing."""
    t0 = time.perf_counter()
    before = store.snapshot()
    sc = scan(root)
    mkey = manifest_key(prefix, sc.fingerprint)
    existing = store.size(mkey)
    if existing is not None:
        try:
            # checked: these keys go into the job's input channel (a tampered manifest is staged over)
            keys = [f"{prefix.strip('/')}/{s['key']}" for s in checked_manifest(store.get_bytes(mkey), sc.fingerprint,
                                                                               store.uri(mkey))]
            staged = Staged("sharded", store.uri().rstrip("/"), prefix.strip("/"), mkey, sc.fingerprint, sc.name,
                            sc.format, len(sc.entries), sc.bytes, keys)
            staged.figures = _figures(time.perf_counter() - t0, sc.bytes, before, store, upload_scan_seconds=sc.seconds,
                                      upload_objects_sent=0, upload_objects_skipped=len(keys) + 1,
                                      upload_files_hashed=sc.hashed, upload_shards=len(keys))
            if on_progress:
                on_progress(sc.bytes, sc.bytes)
            return staged
        except UserError:
            pass  # unreadable or tampered manifest: stage again and overwrite it
    shards = plan_shards(sc.entries, int(shard_mb * MB))
    ids_path = cache_dir() / "staging" / "shard-ids.json"
    try:
        known_ids = json.loads(ids_path.read_text())
    except (OSError, ValueError):
        known_ids = {}
    done_bytes = [0]
    counts = {"sent": 0, "skipped": 0, "parts_skipped": 0}
    import threading

    lock = threading.Lock()

    def one(members: list[FileEntry]) -> dict:
        mid = _members_id(members)
        raw_size = sum(e.size for e in members)
        known = known_ids.get(mid)
        if not (isinstance(known, list) and len(known) == 2 and isinstance(known[0], str)
                and _HEX64.fullmatch(known[0]) and isinstance(known[1], int)):
            known = None  # a local cache entry that is not [sha256, size] is ignored, not trusted
        if known and store.size(shard_key(prefix, known[0])) == known[1]:
            entry = {"key": shard_key(prefix, known[0]), "sha256": known[0], "size": known[1], "files": len(members)}
            skipped = True
        else:
            data = build_tar(sc.base, members)
            sha = hashlib.sha256(data).hexdigest()
            key = shard_key(prefix, sha)
            entry = {"key": key, "sha256": sha, "size": len(data), "files": len(members)}
            skipped = store.size(key) == len(data)
            if not skipped:
                result = store.put_large(key, data, int(part_mb * MB))
                with lock:
                    counts["parts_skipped"] += result.get("parts_skipped", 0)
            with lock:
                known_ids[mid] = [sha, len(data)]
        with lock:
            counts["skipped" if skipped else "sent"] += 1
            done_bytes[0] += raw_size
            if on_progress:
                on_progress(done_bytes[0], sc.bytes)
        return entry

    try:
        with ThreadPoolExecutor(workers) as pool:
            entries = list(pool.map(one, shards))
    finally:  # atomically: another process may be staging (and writing this file) at the same time
        ids_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=ids_path.parent, prefix=ids_path.name)
        with os.fdopen(fd, "w") as f:
            json.dump(known_ids, f)
        os.replace(tmp, ids_path)
    manifest = {"platbench_manifest": MANIFEST_VERSION, "fingerprint": sc.fingerprint, "name": sc.name,
                "format": sc.format, "files": len(sc.entries), "bytes": sc.bytes, "shards": [
                    {**e, "key": e["key"][len(prefix.strip('/')) + 1:]} for e in entries]}
    store.put_bytes(mkey, json.dumps(manifest, indent=1).encode())
    staged = Staged("sharded", store.uri().rstrip("/"), prefix.strip("/"), mkey, sc.fingerprint, sc.name, sc.format,
                    len(sc.entries), sc.bytes, [e["key"] for e in entries])
    staged.figures = _figures(time.perf_counter() - t0, sc.bytes, before, store, upload_scan_seconds=sc.seconds,
                              upload_objects_sent=counts["sent"] + 1, upload_objects_skipped=counts["skipped"],
                              upload_parts_resumed=counts["parts_skipped"], upload_files_hashed=sc.hashed,
                              upload_shards=len(entries))
    return staged


def upload_naive(root: Path, store: ObjectStore, prefix: str = "platbench", workers: int = 10,
                 on_progress: Optional[Callable[[int, int], None]] = None) -> Staged:
    """One PUT per file, every time, 10 at once (the AWS CLI's default concurrency) — what a user does first."""
    base, fmt, files = dataset_files(Path(root))
    name = Path(root).resolve().name
    data_prefix = f"{prefix.strip('/')}/naive/{name}/"
    total = sum(p.stat().st_size for p in files)
    before = store.snapshot()
    t0 = time.perf_counter()
    done = [0]
    import threading

    lock = threading.Lock()

    def one(path: Path) -> None:
        store.put_file(data_prefix + path.relative_to(base).as_posix(), path)
        with lock:
            done[0] += path.stat().st_size
            if on_progress:
                on_progress(done[0], total)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))
    seconds = time.perf_counter() - t0
    sc = scan(Path(root))  # the fingerprint, for tracking; not part of the naive upload's time
    staged = Staged("naive", store.uri().rstrip("/"), prefix.strip("/"), data_prefix, sc.fingerprint, name, fmt,
                    len(files), total)
    staged.figures = _figures(seconds, total, before, store, upload_objects_sent=len(files), upload_objects_skipped=0)
    return staged


def upload(root: Path, store: ObjectStore, mode: str = "sharded", prefix: str = "platbench", **kwargs) -> Staged:
    if mode == "sharded":
        return upload_sharded(root, store, prefix, **kwargs)
    if mode == "naive":
        return upload_naive(root, store, prefix, **{k: v for k, v in kwargs.items() if k in ("workers", "on_progress")})
    raise UserError(f"unknown staging mode {mode!r}; choose sharded or naive")


# ---------------------------------------------------------------- downloads (local mode, collection)

def download_staged(staged: Staged, store: ObjectStore, dest: Path, workers: int = 4) -> dict:
    """Bring a staged dataset down the way the platform's input channel does (sharded: the manifest and
    its shards, keys kept relative to the staging root; naive: every file under the prefix), checking
    each shard's SHA-256. A shard already in `dest` with the right SHA-256 is not fetched again.

    Returns download figures: download_bytes_received counts the dataset's objects fetched (the manifest
    that says which to fetch is a lookup, like the upload's HEAD); download_s_per_mb is over those bytes
    and absent when the job found everything local (0 received)."""
    dest = Path(dest)
    before = store.snapshot()
    t0 = time.perf_counter()
    if staged.mode == "sharded":
        root = staged.prefix.strip("/") + "/"
        if staged.data_key != manifest_key(staged.prefix, staged.fingerprint):  # checks the fingerprint too
            raise UserError(f"staged dataset key {staged.data_key!r} is not the manifest of {staged.fingerprint[:12]}…")
        manifest_bytes = store.get_bytes(staged.data_key)
        shards = checked_manifest(manifest_bytes, staged.fingerprint, store.uri(staged.data_key))

        def one(shard: dict) -> int:
            path = dest / shard["key"]
            if path.is_file() and (shard["size"] is None or path.stat().st_size == shard["size"]) \
                    and _sha256_file(path) == shard["sha256"]:
                return 0  # already local
            n = store.get_file(root + shard["key"], path)
            if _sha256_file(path) != shard["sha256"]:
                path.unlink(missing_ok=True)
                raise UserError(f"shard {shard['key']} arrived corrupted (SHA-256 mismatch)")
            return n

        with ThreadPoolExecutor(workers) as pool:
            received = sum(pool.map(one, shards))
        _write_atomic(dest / staged.data_key[len(root):], manifest_bytes)  # last: its presence means complete
    else:
        # every key checked before the first byte is written
        targets = [(key, path) for key, _ in store.list(staged.data_key)
                   if (path := safe_relative(key, staged.data_key, dest)) is not None]

        with ThreadPoolExecutor(max(workers, 10)) as pool:
            received = sum(pool.map(lambda kv: store.get_file(*kv), targets))
    seconds = time.perf_counter() - t0
    after = store.snapshot()
    fig = {"download_seconds": seconds, "download_mb": staged.bytes / MB, "download_bytes_received": received,
           "download_retries": after["retries"] - before["retries"]}
    if received > 0:
        fig["download_s_per_mb"] = seconds / (received / MB)
    return fig


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_prefix(store: ObjectStore, prefix: str, dest: Path, workers: int = 8) -> tuple[int, float]:
    """Every object under prefix into dest (relative keys kept); returns (bytes, seconds). The keys come
    from a bucket: each is checked to stay inside dest (safe_relative) before the first byte is written."""
    t0 = time.perf_counter()
    targets = [(key, path) for key, _ in store.list(prefix)
               if (path := safe_relative(key, prefix, Path(dest))) is not None]
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(lambda kv: store.get_file(*kv), targets))
    return sum(sizes), time.perf_counter() - t0


def upload_tree(store: ObjectStore, src: Path, prefix: str, workers: int = 8) -> tuple[int, float]:
    """Every file under src to prefix/<relative path>; returns (bytes, seconds)."""
    t0 = time.perf_counter()
    files = [p for p in sorted(Path(src).rglob("*")) if p.is_file()]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: store.put_file(prefix.rstrip("/") + "/" + p.relative_to(src).as_posix(), p), files))
    return sum(p.stat().st_size for p in files), time.perf_counter() - t0
