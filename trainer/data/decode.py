"""Image files → one uint8 NHWC array, decoded once (the cache keeps the result)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer.errors import DataError


def decode_one(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def decode_many(paths: list[Path], size: int) -> np.ndarray:
    """Decode in threads (Pillow releases the GIL while decoding); order follows `paths`."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    workers = min(32, (os.cpu_count() or 1) * 2)

    def work(i: int) -> None:
        out[i] = decode_one(paths[i], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(work, range(len(paths)), chunksize=256):
            pass
    return out
