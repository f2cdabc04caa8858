"""CIFAR-10: torchvision's own download, the python batches read directly, and their conversion to
the folder layout (`train/<class>/NNNNN.png`) that the original benchmark shipped."""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np

from trainer.data.layout import CIFAR_TRAIN_BATCHES, cifar_batch_dir
from trainer.errors import DataError


def download(root: Path) -> Path:
    """Download and verify CIFAR-10 with torchvision (md5-checked); returns the batch folder."""
    from torchvision.datasets import CIFAR10

    root.mkdir(parents=True, exist_ok=True)
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - urllib/ssl/http errors: report one line
        raise DataError(f"could not download CIFAR-10 into {root}: {exc}") from None
    batch_dir = cifar_batch_dir(root)
    assert batch_dir is not None
    return batch_dir


# Everything a CIFAR-10 python batch needs to be rebuilt: dicts, lists, bytes and ints are pickle opcodes,
# not globals; the numpy array needs its reconstructor (numpy 1 pickles name numpy.core, numpy 2 numpy._core;
# protocol 5 uses _frombuffer), ndarray and dtype; Python 3 protocol-2 pickles spell bytes via _codecs.encode.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """pickle.load runs whatever callable a file names (os.system …): a downloaded or shared dataset folder
    is untrusted input. This one resolves only the globals the real batches use."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never holds")
        if module.startswith("numpy"):
            # numpy 2 moved numpy.core to numpy._core (the old name warns); numpy 1 has only numpy.core
            modern = module.replace("numpy.core", "numpy._core", 1)
            for candidate in dict.fromkeys((modern, module, module.replace("numpy._core", "numpy.core", 1))):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"missing CIFAR-10 batch file {path}") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"refusing CIFAR-10 batch file {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever else a damaged file raises while unpickling: one line
        raise DataError(f"corrupt CIFAR-10 batch file {path}: {exc}") from None
    if not isinstance(d, dict):
        raise DataError(f"corrupt CIFAR-10 batch file {path}: a {type(d).__name__}, not a dict")
    return d


def _batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    try:
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError) as exc:
        raise DataError(f"corrupt CIFAR-10 batch file {path}: {exc!r}") from None
    if len(images) != len(labels):
        raise DataError(f"corrupt CIFAR-10 batch file {path}: {len(images)} images, {len(labels)} labels")
    return np.ascontiguousarray(images), labels


def read_batches(root: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(classes, x_train NHWC uint8, y_train, x_test, y_test) from the python batches."""
    batch_dir = cifar_batch_dir(root)
    if batch_dir is None:
        raise DataError(f"no CIFAR-10 python batches in {root}")
    meta = _unpickle(batch_dir / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])]
    if not classes:
        raise DataError(f"corrupt CIFAR-10 batch file {batch_dir / 'batches.meta'}: no label_names")
    train = [_batch(batch_dir / name) for name in CIFAR_TRAIN_BATCHES]
    x_test, y_test = _batch(batch_dir / "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    for split, y in (("train", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"CIFAR-10 {split} labels fall outside the {len(classes)} classes of batches.meta")
    return classes, x_train, y_train, x_test, y_test
