"""Which torch device a run uses: `auto` (CUDA when visible), `cpu` or `cuda`."""
from __future__ import annotations

from trainer.errors import ConfigError


def resolve_device(choice: str = "auto"):
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible")
    if choice not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {choice!r}")
    return torch.device(choice)
