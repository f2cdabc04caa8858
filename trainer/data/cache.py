"""Decode a dataset once into a uint8 cache keyed by its content fingerprint.

The cache file `<cache>/<fingerprint>-<size>px.npz` holds NHWC uint8 arrays and labels; a second run on
the same bytes reads it back (one sequential read) instead of decoding tens of thousands of files.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data import layout
from trainer.errors import DataError

CACHE_FORMAT = 1


@dataclass
class Decoded:
    name: str
    format: str
    fingerprint: str
    classes: list[str]
    x_train: np.ndarray  # (N, H, W, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    image_size: int
    cache_hit: bool
    seconds: float


def default_cache_dir() -> Path:
    if os.environ.get("PLATBENCH_CACHE"):
        return Path(os.environ["PLATBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "platbench"


def _save(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(root: Path, image_size: int = 32, cache_dir: Path | None = None, name: str | None = None) -> Decoded:
    """Read a dataset in either layout, through the cache."""
    t0 = time.perf_counter()
    root = Path(root)
    fmt = layout.detect_format(root)
    if fmt == "folder":
        scanned = layout.scan_folder(root)
        # Each file is read once: hashed now, decoded from the same bytes if the cache misses.
        contents = [p.read_bytes() for p in scanned.train.files + scanned.test.files]
        fp = layout.fingerprint_files(root, scanned.train.files + scanned.test.files, contents)
    else:
        scanned = contents = None
        fp = layout.fingerprint(root)
    cache_dir = cache_dir or default_cache_dir()
    cache_file = cache_dir / f"{fp}-{image_size}px.npz"
    name = name or root.resolve().name
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                if int(z["format"]) == CACHE_FORMAT:
                    return Decoded(name, fmt, fp, [str(c) for c in z["classes"]], z["x_train"], z["y_train"],
                                   z["x_test"], z["y_test"], image_size, True, time.perf_counter() - t0)
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache (e.g. cut short by a crash in an older version): decode again
    if fmt == "folder":
        from trainer.data.decode import decode_many

        assert scanned is not None and contents is not None
        classes = scanned.classes
        n_train = len(scanned.train.files)
        x_train = decode_many(scanned.train.files, image_size, contents[:n_train])
        x_test = decode_many(scanned.test.files, image_size, contents[n_train:])
        del contents
        y_train = np.asarray(scanned.train.labels, dtype=np.int64)
        y_test = np.asarray(scanned.test.labels, dtype=np.int64)
    else:
        from trainer.data import cifar

        classes, x_train, y_train, x_test, y_test = cifar.read_batches(root)
        if x_train.shape[1] != image_size:
            raise DataError(f"CIFAR-10 batches are 32×32; --image-size {image_size} is not supported for them")
    _save(cache_file, format=np.int64(CACHE_FORMAT), classes=np.asarray(classes), x_train=x_train,
          y_train=y_train, x_test=x_test, y_test=y_test)
    return Decoded(name, fmt, fp, classes, x_train, y_train, x_test, y_test, image_size, False,
                   time.perf_counter() - t0)
