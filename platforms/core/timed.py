"""Timing without the collector's pauses: this process holds a large heap (torch, MLflow, the clouds' SDKs), and
a full collection of it took 0.1–0.3 s here — inside a 64-image batch's 15 ms upload it read 39 s/MiB instead of
~2.5, inside a request it is the client's pause counted as the endpoint's latency.

- `without_gc`: a short step (one batch) runs with the collector off, after a collection, as `timeit` does.
- `frozen_heap`: a long run (a load test, a batch inference) runs with the heap it started with collected and
  frozen: collections still run, but scan only the objects the run makes, so they stay short and nothing the run
  makes goes uncollected."""
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


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
