"""The trainer's data path vs torchvision ImageFolder + DataLoader, per epoch from the second on.

    .venv/bin/python -m benchmarks.data_path [--data DIR] [--epochs 3] [--workers 2]

Both deliver the same thing to a training step: shuffled batches of normalized float tensors with a
random flip and a ±2 px reflect-padded translate. platbench decodes once (cache) and augments the
resident uint8 tensor; ImageFolder decodes every file every epoch in DataLoader workers. Epoch 1
(platbench: listing, reading, hashing and decoding the files, cache write; ImageFolder: listing the files,
DataLoader's worker start-up) is compared on its own; torch and torchvision are imported before either clock
starts (a training imports both anyway).
Goals: epoch 1 no slower than ImageFolder's (≤ 1.0×), ≥ 20× from the second epoch on.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision  # noqa: F401  (imported before the clocks: see above)

from benchmarks.common import dataset_arg, summary


def platbench_epochs(data_dir: Path, epochs: int, batch_size: int) -> list[float]:
    from trainer.data import cache
    from trainer.data.batches import TrainBatches, channel_stats, to_device_uint8

    times = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="platbench-cache-") as cache_dir:  # a fresh cache: epoch 1 decodes
        data = cache.load(data_dir, cache_dir=Path(cache_dir))
    mean, std = channel_stats(data.x_train)
    batches = TrainBatches(to_device_uint8(data.x_train, torch.device("cpu")), torch.from_numpy(data.y_train),
                           batch_size, mean, std, seed=0)
    load = time.perf_counter() - t0
    for epoch in range(epochs):
        batches.epoch = epoch
        t0 = time.perf_counter()
        n = 0
        for x, y in batches:
            n += len(y)
        times.append(time.perf_counter() - t0)
    times[0] += load
    return times


def imagefolder_epochs(data_dir: Path, epochs: int, batch_size: int, workers: int) -> list[float]:
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=2, padding_mode="reflect"), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26)),
    ])
    t0 = time.perf_counter()  # epoch 1 lists the files, as platbench's scans them
    ds = datasets.ImageFolder(str(data_dir / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    times = []
    for epoch in range(epochs):
        if epoch:
            t0 = time.perf_counter()
        n = 0
        for x, y in loader:
            n += len(y)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder dataset (default: 10 classes × 1000 random CIFAR-shaped PNGs)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data_dir = dataset_arg(args.data, 1000)
    ours = platbench_epochs(data_dir, args.epochs, args.batch_size)
    theirs = imagefolder_epochs(data_dir, args.epochs, args.batch_size, args.workers)
    print(f"data: {data_dir}, batch {args.batch_size}, DataLoader workers {args.workers}")
    print(f"epoch 1: platbench {ours[0]:.3f} s (hash, decode, cache write, epoch), ImageFolder {theirs[0]:.3f} s: "
          f"{ours[0] / theirs[0]:.2f}× ImageFolder's time (goal ≤ 1.0×)")
    print(summary("platbench, epochs 2+", ours[1:]))
    print(summary("ImageFolder+DataLoader, 2+", theirs[1:]))
    print(f"speed-up from epoch 2 on, medians: {statistics.median(theirs[1:]) / statistics.median(ours[1:]):.1f}×"
          f"  (goal ≥ 20×); best of each: {min(theirs[1:]) / min(ours[1:]):.1f}×")


if __name__ == "__main__":
    main()
