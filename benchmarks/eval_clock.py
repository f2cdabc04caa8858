"""What evaluation costs, kept off the training clock: the figures tests/test_trainer_timing.py and
tests/test_training.py no longer assert as durations (issue 29: a shared machine makes any bound flaky).

    .venv/bin/python -m benchmarks.eval_clock [--rounds 2] [--model small]

1. A 20× larger test set (400 vs 20 images a class, the same training images): evaluation seconds grow
   with it, training seconds an epoch do not. Printed: the eval ratio (expect well over 3) and the median
   epoch's train ratio (expect about 1; the tests prove ≤ by clock orderings, not this ratio).
2. TTA: the as-evaluated throughput of `--tta-model` (fast: 6 passes an image) against one pass of its
   network, from the same run's results.json. Printed: plain / evaluated (expect about the number of passes).

Runs alternate (small, large, large, small, …) so drifting machine load hits both alike; the baseline of each
ratio is measured in the same run."""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import cifar_shaped_tree, summary
from trainer.train import TrainConfig, run


def _train(data: Path, out: Path, model: str, **overrides):
    cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", checkpoint_dir=out / "ckpt",
                      device="cpu", model=model, seed=3, overrides=overrides)
    outcome = run(cfg, echo=lambda s: None)
    assert outcome.status == "finished", outcome
    return outcome.results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="pairs of (small, large) runs, alternated")
    ap.add_argument("--model", default="small")
    ap.add_argument("--tta-model", default="fast")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="platbench-eval-clock-"))
    small = cifar_shaped_tree(root / "small", train_per_class=40, test_per_class=20, classes=3)
    large = cifar_shaped_tree(root / "large", train_per_class=40, test_per_class=400, classes=3)
    hp = {"epochs": 3, "batch_size": 60, "eval_batch_size": 200}
    runs: dict[str, list] = {"small": [], "large": []}
    order = [name for r in range(args.rounds) for name in (("small", "large") if r % 2 == 0 else ("large", "small"))]
    for i, name in enumerate(order):
        runs[name].append(_train(small if name == "small" else large, root / f"{name}{i}", args.model, **hp))
    evals = {k: [r.seconds.eval for r in v] for k, v in runs.items()}
    epochs = {k: [s for r in v for s in r.seconds.per_epoch] for k, v in runs.items()}
    for k in runs:
        print(summary(f"eval seconds, {k} test set", evals[k]))
        print(summary(f"train s/epoch, {k} test set", epochs[k]))
    print(f"eval ratio large/small {statistics.median(evals['large']) / statistics.median(evals['small']):.2f}; "
          f"median epoch train ratio {statistics.median(epochs['large']) / statistics.median(epochs['small']):.2f}")
    res = _train(small, root / "tta", args.tta_model, epochs=1, batch_size=60)
    print(f"{args.tta_model} (tta={res.hyperparameters['tta']}): plain {res.plain_throughput_images_per_s:.1f} "
          f"images/s, as evaluated {res.evaluated_throughput_images_per_s:.1f} images/s, ratio "
          f"{res.plain_throughput_images_per_s / res.evaluated_throughput_images_per_s:.2f}")


if __name__ == "__main__":
    main()
