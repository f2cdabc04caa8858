"""Lightning trainer vs a raw-PyTorch twin: the same network, data, batches, optimizer, schedule and
loss, timed per epoch on the CPU. Goal: Lightning ≤ 1.03× the raw loop.

    .venv/bin/python -m benchmarks.lightning_overhead [--data DIR] [--epochs 6] [--model small]

Both train from the same decoded data; epoch 1 of each is a warm-up and not counted. The two are
run in alternation (L, raw, L, raw …, one run each per round) so machine noise hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import dataset_arg, summary
from trainer.data import cache
from trainer.data.batches import TrainBatches, channel_stats, to_device_uint8
from trainer.models import get_preset, param_groups, with_overrides
from trainer.train import TrainConfig, run


def raw_epochs(data, model: str, epochs: int, batch_size: int, seed: int = 0) -> list[float]:
    preset = get_preset(model)
    hp = with_overrides(preset.hyperparameters, epochs=epochs, batch_size=batch_size)
    torch.manual_seed(seed)
    net = preset.build(len(data.classes))
    mean, std = channel_stats(data.x_train)
    batches = TrainBatches(to_device_uint8(data.x_train, torch.device("cpu")), torch.from_numpy(data.y_train),
                           batch_size, mean, std, seed)
    opt = torch.optim.SGD(param_groups(net, preset, hp), lr=hp.lr, momentum=hp.momentum,
                          weight_decay=hp.weight_decay, nesterov=True)
    total = epochs * len(batches)
    warm = max(1, int(total * hp.warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: hp.lr_start + (1 - hp.lr_start) * s / warm if s < warm
                                              else 1 + (hp.lr_end - 1) * min(1.0, (s - warm) / max(1, total - warm)))
    times = []
    net.train()
    for epoch in range(epochs):
        batches.epoch = epoch
        t0 = time.perf_counter()
        loss_sum = torch.zeros(())
        hits = torch.zeros((), dtype=torch.long)
        for x, y in batches:
            logits = net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=hp.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(y)  # the same per-epoch figures the Lightning module keeps
            hits += (logits.detach().argmax(1) == y).sum()
        float(loss_sum), int(hits)
        times.append(time.perf_counter() - t0)
    return times


def lightning_epochs(data_dir: Path, model: str, epochs: int, batch_size: int) -> list[float]:
    out = Path(tempfile.mkdtemp(prefix="platbench-bench-"))
    cfg = TrainConfig(data_dir=data_dir, output_dir=out, model_dir=out / "model", checkpoint_dir=None, model=model,
                      device="cpu", overrides={"epochs": epochs, "batch_size": batch_size})
    outcome = run(cfg, echo=lambda s: None)
    return outcome.results.seconds.per_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="dataset folder (default: 10 classes × 500 random CIFAR-shaped PNGs)")
    ap.add_argument("--model", default="small")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data_dir = dataset_arg(args.data, 500)
    data = cache.load(data_dir)
    print(f"data: {data_dir} ({len(data.x_train)} train images), model {args.model}, batch {args.batch_size}, "
          f"{args.epochs} epochs × {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    light, raw = [], []
    for i in range(args.rounds):  # alternate which goes first, so neither always runs on a warmer machine
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            if side == 0:
                light += lightning_epochs(data_dir, args.model, args.epochs, args.batch_size)[1:]
            else:
                raw += raw_epochs(data, args.model, args.epochs, args.batch_size)[1:]
    print(summary("Lightning (train clock)", light))
    print(summary("raw PyTorch twin", raw))
    # On a shared machine a load spike lands on one side; the best epoch of each (timeit's rule) is the
    # figure least bent by it, the median shows how noisy the run was.
    print(f"ratio Lightning / raw per epoch, best of each: {min(light) / min(raw):.3f}  (goal ≤ 1.03)")
    print(f"ratio Lightning / raw per epoch, medians:      {statistics.median(light) / statistics.median(raw):.3f}")


if __name__ == "__main__":
    main()
