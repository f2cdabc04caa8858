"""Timing a short step without the collector's pauses: this process holds a large heap (torch, MLflow, the
clouds' SDKs), and a full collection of it took 0.1–0.3 s here, which landed inside a 64-image batch's 15 ms
upload and made it read 39 s/MiB instead of ~2.5. As `timeit` does, the collector runs just before the step and
is off during it, so a step's seconds are the step's own."""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
