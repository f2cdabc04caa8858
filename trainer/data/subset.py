"""The images-per-class ablation: N training images per class, nested across N and deterministic per
seed (the 5 are inside the 20, the 20 inside the 80 …), with 20% of them held out for validation."""
from __future__ import annotations

import numpy as np

from trainer.errors import DataError

VAL_FRACTION = 0.2


def per_class_split(labels: np.ndarray, classes: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into `labels`. For each class the same seeded permutation is cut at N, so a
    smaller N is always a prefix of a larger one; the last 20% of each class's N form the validation set."""
    if n < 2:
        raise DataError("--per-class must be at least 2 (one image for training, one for validation)")
    n_val = max(1, round(n * VAL_FRACTION))
    train, val = [], []
    for label, name in enumerate(classes):
        idx = np.flatnonzero(labels == label)
        if len(idx) < n:
            raise DataError(f"class {name!r} has {len(idx)} training images, fewer than --per-class {n}")
        # one generator per (seed, class): the order of a class never depends on N or on other classes
        order = np.random.default_rng([seed, label]).permutation(idx)
        train.append(order[: n - n_val])
        val.append(order[n - n_val: n])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
