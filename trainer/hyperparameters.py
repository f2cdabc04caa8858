"""The hyperparameters a run may override (the trainer's flags, `platbench launch --hp KEY=VALUE`): each one's
type and the values it may take, refused in one line before any folder, store or run exists."""
from __future__ import annotations

import math
from typing import Any, Callable

from trainer.errors import ConfigError

FLAGS = {  # flag → type
    "epochs": int, "batch-size": int, "lr": float, "momentum": float, "weight-decay": float,
    "label-smoothing": float, "warmup-fraction": float, "tta": int, "translate": int, "eval-batch-size": int,
    "min-steps": int, "augment": str, "lr-schedule": str, "early-stopping-patience": int, "pretrained": int,
}

AUGMENTS = ("flip-translate", "none")   # training augmentation: the preset's flip + translate, or none at all
LR_SCHEDULES = ("warmup-decay", "constant")  # the preset's warm-up then decay, or the lr at every step

# key → (allowed, what the line says is allowed). The bounds are those training needs: torch's SGD refuses a
# negative lr, momentum or weight decay only once the optimizer is built (after the run folder and MLflow run
# exist); label smoothing 1 leaves no signal; tta is 0 none, 1 mirror, 2 mirror + translate (trainer/module.py).
# The study recipes (issue 26): augment none and a constant lr (Neuromation's protocol), early stopping on
# validation accuracy with the best epoch's weights restored (JumpStart's), torchvision's pretrained weights.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "lr": (lambda v: v > 0, "above 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "warmup_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "tta": (lambda v: v in (0, 1, 2), "0 (none), 1 (mirror) or 2 (mirror + translate)"),
    "translate": (lambda v: v >= 0, "0 or more pixels"),
    "eval_batch_size": (lambda v: v >= 1, "at least 1"),
    "min_steps": (lambda v: v >= 0, "0 or more"),
    "augment": (lambda v: v in AUGMENTS, " or ".join(AUGMENTS)),
    "lr_schedule": (lambda v: v in LR_SCHEDULES, " or ".join(LR_SCHEDULES)),
    "early_stopping_patience": (lambda v: v >= 0, "0 (off) or more epochs"),
    "pretrained": (lambda v: v in (0, 1), "0 (random initialisation) or 1 (torchvision's ImageNet weights)"),
}


def check_ranges(values: dict) -> None:
    """ConfigError naming the first key (lr or batch_size form) whose value is out of its range, or a pair that
    contradicts itself; keys without a range (a preset's lr_start, flip, …) pass."""
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in RANGES or value is None:
            continue
        ok, allowed = RANGES[key]
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise ConfigError(f"hyperparameter {key}={value} is out of range: {key} must be {allowed}")
    values = {k.replace("-", "_"): v for k, v in values.items()}
    if values.get("augment") == "none" and values.get("translate"):
        raise ConfigError(f"hyperparameter translate={values['translate']} contradicts augment=none (no "
                          f"augmentation); drop one")
