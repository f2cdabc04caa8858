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
    """uint8 NHWC → float NCHW (channels_last in memory: a view, no copy), standardized per channel."""
    x = x_uint8_nhwc.float().div_(255.0).sub_(mean).div_(std)
    return x.permute(0, 3, 1, 2)


def channel_stats(x_uint8_nhwc: np.ndarray) -> tuple[list[float], list[float]]:
    x = x_uint8_nhwc.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0).tolist(), (x.std(0) + 1e-8).tolist()


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    """Index arithmetic of reflect padding (edge pixel not repeated), for any dtype and device."""
    i = i.abs()
    return torch.where(i > size - 1, 2 * (size - 1) - i, i)


def random_translate(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each NHWC image by up to `pad` pixels in each axis, filling with its reflection: one gather
    with reflected indices instead of materializing a padded copy."""
    n, h, w, _ = x.shape
    dy = torch.randint(-pad, pad + 1, (n,), device=x.device, generator=gen)
    dx = torch.randint(-pad, pad + 1, (n,), device=x.device, generator=gen)
    rows = _reflect(torch.arange(h, device=x.device)[None, :] + dy[:, None], h)[:, :, None]
    cols = _reflect(torch.arange(w, device=x.device)[None, :] + dx[:, None], w)[:, None, :]
    return x[torch.arange(n, device=x.device)[:, None, None], rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(2), x)


class TrainBatches:
    """An iterable Lightning can train from: shuffled, augmented, normalized batches on the device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean: list[float], std: list[float],
                 seed: int, flip: bool = True, translate: int = 2, drop_last: bool = True):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.mean = torch.tensor(mean, device=x.device, dtype=torch.float32)
        self.std = torch.tensor(std, device=x.device, dtype=torch.float32)
        self.seed, self.flip, self.translate = seed, flip, translate
        # dropping a ragged last batch keeps BatchNorm statistics sane; never drop everything
        self.drop_last = drop_last and len(x) >= batch_size
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def generator(self) -> torch.Generator:
        gen = torch.Generator(device=self.x.device)
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        return gen

    def __iter__(self):
        gen = self.generator()
        x = self.x
        if self.translate:
            x = random_translate(x, self.translate, gen)
        if self.flip:
            x = random_flip(x, gen)
        order = torch.randperm(len(x), device=x.device, generator=gen)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield normalize(x[idx], self.mean, self.std), self.y[idx]


class EvalBatches:
    """Fixed-order, unaugmented batches for validation and test."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean: list[float], std: list[float]):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.mean = torch.tensor(mean, device=x.device, dtype=torch.float32)
        self.std = torch.tensor(std, device=x.device, dtype=torch.float32)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield normalize(self.x[sl], self.mean, self.std), self.y[sl]
