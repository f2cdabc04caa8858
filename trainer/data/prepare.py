"""Write datasets into the folder layout: `OUT/{train,test}/<class>/NNNNN.png`.

Written into a temporary sibling folder and renamed into place, so an interrupted prepare leaves nothing
half-written."""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from trainer.errors import DataError

SOURCES = ("cifar10", "digits")


def write_folder(
    out: Path,
    classes: list[str],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    progress: Callable[[int], None] | None = None,
) -> Path:
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} already exists and is not empty; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # not mkdtemp: its 0700 would survive the rename, and a container running as another uid could not read
    tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.mkdir()  # the umask's mode, like every folder below it
    try:
        for split, (images, labels) in splits.items():
            counters = [0] * len(classes)
            for name in classes:
                (tmp / split / name).mkdir(parents=True)
            for img, label in zip(images, labels):
                name = classes[int(label)]
                Image.fromarray(img).save(tmp / split / name / f"{counters[label]:05d}.png")
                counters[label] += 1
                if progress:
                    progress(1)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def digits() -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """scikit-learn's bundled handwritten digits (UCI, 1,797 images of 8×8, 17 grey levels), shipped
    inside the package, so the default job needs no download. Split per class: the last 20% of each
    class in the file's order is the test set, the rest train. Images stay 8×8 grey on disk; the
    trainer resizes on decode like any other folder dataset."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test_mask[idx[len(idx) - len(idx) // 5:]] = True
    classes = [str(int(c)) for c in bunch.target_names]
    return classes, {
        "train": (images[~test_mask], labels[~test_mask]),
        "test": (images[test_mask], labels[test_mask]),
    }


def cifar10(source: Path | None, download_root: Path) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """CIFAR-10 from python batches in `source`, or downloaded into `download_root` by torchvision."""
    from trainer.data import cifar

    root = source if source is not None else cifar.download(download_root)
    classes, x_train, y_train, x_test, y_test = cifar.read_batches(root)
    return classes, {"train": (x_train, y_train), "test": (x_test, y_test)}
