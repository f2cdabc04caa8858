"""The trainer's machine-readable log lines: `- <Label>: <number>`, one figure a line, one regex each.

SageMaker's `metric_definitions` and any log scraper read these; the README lists them. Defined once
here; the launchers build their regexes from `METRICS`."""
from __future__ import annotations

import re

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

# metric name → label printed in the log. Per-epoch lines repeat; the final lines come once.
METRICS: dict[str, str] = {
    "epoch": "Epoch",
    "train_loss": "Train loss",
    "train_accuracy": "Train accuracy",
    "val_accuracy": "Validation accuracy",
    "test_accuracy": "Test accuracy",
    "test_top5_accuracy": "Test top-5 accuracy",
    "epoch_seconds": "Epoch seconds",
    "train_seconds": "Train seconds",
    "eval_seconds": "Eval seconds",
    "seconds_to_target": "Seconds to target",
    "optimizer_steps": "Optimizer steps",
    # plain: the network alone, one forward pass (what `serve` answers); evaluated: as the test accuracy was
    # measured, with the preset's test-time augmentation (the same figure for presets without TTA)
    "plain_throughput_images_per_s": "Plain throughput images/s",
    "plain_latency_ms_per_image": "Plain latency ms/image",
    "evaluated_throughput_images_per_s": "Evaluated throughput images/s",
    "evaluated_latency_ms_per_image": "Evaluated latency ms/image",
}


def line(name: str, value: float | int) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f"- {METRICS[name]}: {text}"


def regex(name: str) -> str:
    """A regex whose first group is the number, for one metric (SageMaker's `Regex` field)."""
    return rf"- {re.escape(METRICS[name])}: ({NUMBER})"


def parse(text: str) -> dict[str, list[float]]:
    """Every figure in a log, by metric name, in order of appearance."""
    found: dict[str, list[float]] = {}
    for name in METRICS:
        values = [float(m) for m in re.findall(rf"^{regex(name)}\s*$", text, flags=re.MULTILINE)]
        if values:
            found[name] = values
    return found
