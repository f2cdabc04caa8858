"""The images-per-class ablation: N training images per class, deterministic per seed, 20% of them held out
for validation, with the training and the validation sets each nested across N (the studies' method: the
5 are inside the 20, "the same for the validation set").

The rule: each class's images are put in one seeded order; the first N of that order are the class's N.
Every position in the order has one role, whatever N: position i (0-based) is validation exactly when the
validation count rises there, validation_count(i + 1) > validation_count(i), with
validation_count(N) = max(1, round(0.2 N)) for N >= 2 (one image is training only). So at every N the
class has validation_count(N) validation images (20% at every multiple of 5, 1 at N = 2…7) and the rest
train; a larger N only adds images to each set, and no image is ever trained on at one N and validated
on at another."""
from __future__ import annotations

import numpy as np

from trainer.errors import DataError

VAL_FRACTION = 0.2


def validation_count(n: int) -> int:
    """Validation images among a class's first n: 20%, at least one once there are two."""
    return 0 if n < 2 else max(1, round(n * VAL_FRACTION))


def _roles(n: int) -> np.ndarray:
    """is-validation of positions 0 … n-1 of a class's order (the same prefix for every n)."""
    counts = np.array([validation_count(k) for k in range(n + 1)])
    return np.diff(counts) > 0


def _cut(order: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    val = _roles(n)
    return order[:n][~val], order[:n][val]


def _order(labels: np.ndarray, label: int, seed: int) -> np.ndarray:
    # one generator per (seed, class): the order of a class never depends on N or on other classes
    return np.random.default_rng([seed, label]).permutation(np.flatnonzero(labels == label))


def per_class_split(labels: np.ndarray, classes: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into `labels`: each class's first N in its seeded order, cut by the module's rule."""
    if n < 2:
        raise DataError("--per-class must be at least 2 (one image for training, one for validation)")
    train, val = [], []
    for label, name in enumerate(classes):
        order = _order(labels, label, seed)
        if len(order) < n:
            raise DataError(f"class {name!r} has {len(order)} training images, fewer than --per-class {n}")
        tr, va = _cut(order, n)
        train.append(tr)
        val.append(va)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def all_split(labels: np.ndarray, classes: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every training image, cut by the same rule at N = the class's size (classes may differ in size; a
    class of one image is training only): equal to per_class_split whenever every class has N images."""
    train, val = [], []
    for label in range(len(classes)):
        order = _order(labels, label, seed)
        tr, va = _cut(order, len(order))
        train.append(tr)
        val.append(va)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
