"""Image files → one uint8 NHWC array, decoded once (the cache keeps the result).

JPEGs go through torchvision's libjpeg-turbo decoder in batches (about 10× Pillow's per-file cost on
CIFAR-sized images) and give the same pixels as Pillow's decode (both use libjpeg-turbo's default
islow DCT and fancy upsampling; tests/test_data.py checks RGB, grey and progressive files). Everything
else — PNGs, CMYK JPEGs, files torchvision refuses — goes through Pillow, which stays the reference.
"""
from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer.errors import DataError

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_BATCH = 1024  # files per decode_jpeg call: large enough to amortize the call, small enough to retry


def _finish(img: Image.Image, size: int) -> np.ndarray:
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_one(path: Path, size: int, data: bytes | None = None) -> np.ndarray:
    """Pillow's decode of one file (`data`: its bytes, when already read)."""
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            return _finish(img, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def _jpeg_batch(contents: list[bytes]) -> list | None:
    """torchvision's decode of JPEG bytes, channels as stored (1 grey, 3 RGB, 4 CMYK); None if any fails."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bytes are read-only buffers; decode_jpeg only reads
        tensors = [torch.frombuffer(b, dtype=torch.uint8) for b in contents]
    try:
        return decode_jpeg(tensors, mode=ImageReadMode.UNCHANGED)
    except RuntimeError:
        return None


def _decode_chunk(contents: list[bytes], size: int) -> tuple[np.ndarray | None, list | None]:
    """One batch of JPEGs: as one NHWC array when every file is a size×size RGB JPEG (CIFAR's case: one
    stack and copy instead of a Python step per image), else torchvision's tensors (None: it failed)."""
    import torch

    decoded = _jpeg_batch(contents)
    if decoded is not None and all(t.shape == (3, size, size) for t in decoded):
        return torch.stack(decoded).permute(0, 2, 3, 1).numpy(), None
    return None, decoded


def decode_many(paths: list[Path], size: int, contents: list[bytes] | None = None) -> np.ndarray:
    """Decode every file (`contents`: their bytes, already read for the fingerprint); order follows `paths`.
    JPEG batches are decoded on every core (torchvision's decoder releases the GIL)."""
    if contents is None:
        contents = [p.read_bytes() for p in paths]
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    jpegs = [i for i, b in enumerate(contents) if b.startswith(JPEG_MAGIC)]
    pillow = sorted(set(range(len(paths))) - set(jpegs))
    chunks = [jpegs[start:start + JPEG_BATCH] for start in range(0, len(jpegs), JPEG_BATCH)]
    with ThreadPoolExecutor(max_workers=_cores()) as pool:
        results = pool.map(lambda chunk: _decode_chunk([contents[i] for i in chunk], size), chunks)
        for chunk, (stacked, decoded) in zip(chunks, results):
            if stacked is not None:
                out[chunk] = stacked
                continue
            if decoded is None:  # one bad file spoils the batch: Pillow finds it (and names it)
                pillow += chunk
                continue
            for i, t in zip(chunk, decoded):
                channels, h, w = t.shape
                if channels == 4:  # CMYK: Pillow's conversion is the reference
                    pillow.append(i)
                    continue
                hwc = t.permute(1, 2, 0).numpy()
                if channels == 1:
                    hwc = np.repeat(hwc, 3, axis=2)  # Pillow's L → RGB copies the grey into each channel
                out[i] = hwc if (h, w) == (size, size) else _finish(Image.fromarray(hwc), size)
    for i in pillow:
        out[i] = decode_one(paths[i], size, contents[i])
    return out


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
