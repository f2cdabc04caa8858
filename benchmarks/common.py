"""Helpers shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def cifar_shaped_tree(root: Path, train_per_class: int, test_per_class: int = 10, classes: int = 10) -> Path:
    """A folder dataset of random 32×32 PNGs (CIFAR-shaped) when no real data is given."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:05d}.png")
    return root


def dataset_arg(path: str | None, train_per_class: int) -> Path:
    if path:
        return Path(path)
    return cifar_shaped_tree(Path(tempfile.mkdtemp(prefix="platbench-bench-")) / "data", train_per_class)


def summary(name: str, seconds: list[float]) -> str:
    return (f"{name:28s} median {statistics.median(seconds):8.4f} s  min {min(seconds):8.4f} s  "
            f"(n={len(seconds)})")
