"""Two-process DDP on the CPU (gloo, under torchrun) against one process: training images/s per process,
from each run's own training clock (evaluation excluded), measured in the same run.

    .venv/bin/python -m benchmarks.ddp_scaling [--data DIR] [--epochs 4] [--model small] [--repeats 1]

Without --data the bundled digits are written to a temporary folder. Both runs train the same global
batches (each of the two ranks takes half of every batch), so the figure is strong scaling: perfect
scaling keeps images/s per process at ×1.00. torchrun gives each rank OMP_NUM_THREADS=1; the one-process
run gets the same, so a process is one core in both. Epoch 1 is a warm-up and not counted. Runs alternate
(one, two, one, two …) so machine noise hits both alike."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def train(data: Path, out: Path, epochs: int, model: str, devices: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "trainer", "train", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
           "--model", model, "--device", "cpu", "--devices", str(devices)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((out / "results.json").read_text())


def images_per_s_per_process(res: dict) -> float:
    """Global images an epoch (steps × global batch) over the epoch's training seconds, epochs 2…, per rank."""
    per_epoch = res["seconds"]["per_epoch"][1:]
    images = res["schedule"]["steps_per_epoch"] * min(res["hyperparameters"]["batch_size"],
                                                       res["dataset"]["train_count"])
    return images * len(per_epoch) / sum(per_epoch) / res["hardware"]["world_size"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--model", default="small")
    ap.add_argument("--repeats", type=int, default=1)
    ns = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="platbench-ddp-"))
    data = Path(ns.data) if ns.data else None
    if data is None:
        from trainer.data.prepare import digits, write_folder

        classes, splits = digits()
        data = write_folder(root / "digits", classes, splits)
    figures: dict[int, list[float]] = {1: [], 2: []}
    accuracy: dict[int, list[float]] = {1: [], 2: []}
    for r in range(ns.repeats):
        for devices in (1, 2):
            res = train(data, root / f"run-{devices}-{r}", ns.epochs, ns.model, devices)
            figures[devices].append(images_per_s_per_process(res))
            accuracy[devices].append(res["test_accuracy"])
    one, two = statistics.median(figures[1]), statistics.median(figures[2])
    for devices in (1, 2):
        print(f"{devices} process(es): {statistics.median(figures[devices]):8.1f} training images/s per process, "
              f"{devices * statistics.median(figures[devices]):8.1f} in all; test accuracy "
              f"{statistics.median(accuracy[devices]):.4f}  (n={len(figures[devices])}, {ns.epochs} epochs, {ns.model})")
    print(f"two processes / one, per process: ×{two / one:.2f}; in all: ×{2 * two / one:.2f} (perfect: ×1.00 / ×2.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
