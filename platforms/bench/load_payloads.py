"""What `platbench load` and batch inference send: PNG/JPEG files named or found under folders, random CIFAR-10
sized PNGs when none are given, as raw image bodies or Vertex-style JSON with N base64 instances each."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from platforms.core.transport import CONTENT_TYPES, Payload
from platforms.errors import UserError

IMAGE_SUFFIXES = tuple(CONTENT_TYPES)


def synthetic_images(n: int = 32, size: int = 32, seed: int = 0) -> list[bytes]:
    """Random RGB PNGs of CIFAR-10's size, for when no images are given."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def image_files(paths: list[Path], limit: Optional[int] = None) -> list[Path]:
    """PNG/JPEG files named directly or found (sorted, recursively) under the folders named."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p} does not exist")
    if not files:
        raise UserError(f"no .png/.jpg images in {', '.join(map(str, paths))}")
    return files[:limit] if limit else files


def make_payloads(images: list[tuple[bytes, str]], fmt: str, batch: int) -> list[Payload]:
    """(bytes, content type) images → request bodies: one raw image each (`image`), or Vertex-style
    JSON with `batch` base64 instances each (`json`)."""
    if fmt == "image":
        if batch != 1:
            raise UserError("--batch needs --format json (a raw image body holds one image)")
        return [Payload(body, ctype, 1) for body, ctype in images]
    if fmt != "json":
        raise UserError(f"--format must be image or json, not {fmt!r}")
    if batch < 1:
        raise UserError("--batch must be at least 1")
    payloads = []
    for start in range(0, len(images), batch):
        group = [images[(start + j) % len(images)][0] for j in range(batch)]
        doc = {"instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in group]}
        payloads.append(Payload(json.dumps(doc).encode(), "application/json", batch))
    return payloads


def load_images(paths: list[Path], limit: int = 256) -> list[tuple[bytes, str]]:
    if not paths:
        return [(b, "image/png") for b in synthetic_images()]
    return [(f.read_bytes(), CONTENT_TYPES[f.suffix.lower()]) for f in image_files(paths, limit)]
