"""Batches from tensors that stay on the training device: no DataLoader, no workers, no per-epoch
decoding. Augmentation (random flip, random translate with reflect padding) runs on the device too.

Each epoch's order and augmentation come from a generator seeded by (seed, epoch), so an epoch is the
same whether or not the run was interrupted and resumed before it."""
from __future__ import annotations

import math

import numpy as np
import torch


def to_device_uint8(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """NHWC uint8 numpy → NHWC uint8 tensor on `device` (a quarter of the bytes of float32)."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def normalize(x_uint8_nhwc: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC → float NCHW (channels_last in memory: a view, no copy), standardized per channel.
    Two passes: one multiply that converts while it scales, one in-place add."""
    scale = 1.0 / (255.0 * std)
    x = torch.mul(x_uint8_nhwc, scale)
    x.sub_(mean / std)
    return x.permute(0, 3, 1, 2)


def channel_stats(x_uint8_nhwc: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the images scaled to [0, 1], from each channel's histogram of its 256 values:
    the same figures as over a float copy of every pixel (1.2 GB for CIFAR-10, the first epoch's largest part).
    Counted a few thousand images at a time, which stay in the CPU's cache (3-4× faster than whole channels)."""
    counts = np.zeros((3, 256), dtype=np.int64)
    pixels = x_uint8_nhwc.reshape(-1, 3)
    step = 1 << 21
    for start in range(0, len(pixels), step):
        part = pixels[start:start + step]
        for c in range(3):
            counts[c] += np.bincount(part[:, c], minlength=256)
    counts = counts.astype(np.float64)
    v = np.arange(256) / 255.0
    n = counts.sum(1)
    mean = counts @ v / n
    std = np.sqrt((counts * (v - mean[:, None]) ** 2).sum(1) / n)
    return mean.tolist(), (std + 1e-8).tolist()


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad the H and W axes of an NHWC tensor (edge pixel not repeated), for any dtype: two
    gathers along one axis each with a short index vector."""
    def index(size: int) -> torch.Tensor:
        i = torch.arange(-pad, size + pad, device=x.device).abs()
        return torch.where(i > size - 1, 2 * (size - 1) - i, i)

    return x.index_select(1, index(x.shape[1])).index_select(2, index(x.shape[2]))


def augment_draws(translate: int, flip: bool, gen: torch.Generator) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flip) combination once, in a random order; position i of an epoch's shuffled
    order takes combination i mod len(draws). Positions are a random permutation of the images, so each
    image gets a uniformly random draw each epoch, and every batch holds every combination."""
    combos = [(dy, dx, f) for dy in range(-translate, translate + 1) for dx in range(-translate, translate + 1)
              for f in ((False, True) if flip else (False,))]
    perm = torch.randperm(len(combos), generator=torch.Generator().manual_seed(int(torch.randint(
        0, 2**31 - 1, (1,), generator=gen, device=gen.device))))
    return [combos[i] for i in perm.tolist()]


class TrainBatches:
    """An iterable Lightning can train from: shuffled, augmented, normalized batches on the device.

    Per epoch, on the device and in whole-epoch passes (no per-batch allocation): gather the resident,
    reflect-padded uint8 images in shuffled order; crop (translate) and flip them with one strided slice
    copy per augmentation draw, converting to float and scaling in the same copy, into a preallocated
    buffer; batches are views of that buffer.

    `passes` > 1 makes one epoch several shuffled, augmented passes over the images (each drawn after the
    last from the epoch's generator): a tiny set then gets enough optimizer steps an epoch (train.plan_schedule)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean: list[float], std: list[float],
                 seed: int, flip: bool = True, translate: int = 2, drop_last: bool = True, passes: int = 1,
                 shard: tuple[int, int] = (0, 1)):
        self.n, self.h, self.w, c = x.shape
        # data parallel (trainer/distributed.py): every rank draws the same global batches and trains on
        # its own contiguous slice (rank, world) of each, so the global batch and schedule stay the preset's
        self.rank, self.world = shard
        self.y = y
        self.batch_size = batch_size
        self.mean = torch.tensor(mean, device=x.device, dtype=torch.float32)
        self.std = torch.tensor(std, device=x.device, dtype=torch.float32)
        self.seed, self.flip, self.translate = seed, flip, translate
        # dropping a ragged last batch keeps BatchNorm statistics sane; never drop everything
        self.drop_last = drop_last and self.n >= batch_size
        self.epoch = 0
        self.passes = passes
        self.padded = reflect_pad(x, translate) if translate else x
        # Lightning fetches the next batch before it trains on the current one: a second pass must not
        # overwrite the buffer the current pass's last batch is a view of, so passes alternate two buffers
        self.buffers = [torch.empty((self.n, self.h, self.w, c), dtype=torch.float32, device=x.device)
                        for _ in range(2 if passes > 1 else 1)]

    @property
    def x(self) -> torch.Tensor:
        r = self.translate
        return self.padded[:, r:r + self.h, r:r + self.w] if r else self.padded

    @property
    def steps_per_pass(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __len__(self) -> int:
        return self.passes * self.steps_per_pass

    def generator(self) -> torch.Generator:
        gen = torch.Generator(device=self.padded.device)
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        return gen

    def epoch_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's (first pass's) normalized NCHW images and labels, in training order."""
        return self._pass(self.generator(), self.buffers[0])

    def _pass(self, gen: torch.Generator, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        order = torch.randperm(self.n, device=self.padded.device, generator=gen)
        src = self.padded.index_select(0, order)
        scale = 1.0 / (255.0 * self.std)
        draws = augment_draws(self.translate, self.flip, gen)
        r, h, w, k = self.translate, self.h, self.w, len(draws)
        for i, (dy, dx, f) in enumerate(draws):
            crop = src[i::k, r + dy:r + dy + h, r + dx:r + dx + w]
            torch.mul(crop.flip(2) if f else crop, scale, out=buffer[i::k])
        buffer.sub_(self.mean / self.std)
        return buffer.permute(0, 3, 1, 2), self.y.index_select(0, order)

    def __iter__(self):
        gen = self.generator()
        for p in range(self.passes):
            x, y = self._pass(gen, self.buffers[p % len(self.buffers)])
            for i in range(self.steps_per_pass):
                sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield _part(x[sl], self.rank, self.world), _part(y[sl], self.rank, self.world)


def _part(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank `rank`'s contiguous slice of `t` along its first axis (the whole of it for one process)."""
    return t if world == 1 else torch.tensor_split(t, world)[rank]


class EvalBatches:
    """Fixed-order, unaugmented batches for validation and test, normalized once and kept resident."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean: list[float], std: list[float],
                 shard: tuple[int, int] = (0, 1)):
        # data parallel: each rank evaluates its slice of the set; the module sums the ranks' tallies
        x, y = _part(x, *shard), _part(y, *shard)
        self.y, self.batch_size = y, batch_size
        m = torch.tensor(mean, device=x.device, dtype=torch.float32)
        s = torch.tensor(std, device=x.device, dtype=torch.float32)
        self.x = normalize(x, m, s)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield self.x[sl], self.y[sl]
