"""A small dataset of one's own on defaults: two real CIFAR-10 classes, ~160 training images, `--model small`
with no hyperparameter flags (issue 25: such a set made ~10 optimizer steps and ended at chance).

    .venv/bin/python -m benchmarks.two_class [--zip /work/shared/data/cifar10-jpg.zip]
        [--classes airplane,automobile] [--train-per-class 80] [--test-per-class 100] [--seeds 0,1,2]
        [--hp min_steps=0]

The first `--train-per-class` images of each class's train folder are the training set and the first
`--test-per-class` of its test folder the test set (the archive's own order: nothing picked by hand). Each
seed is one `trainer.train.run` on the CPU; prints its test accuracy, schedule and training seconds. Goal:
test accuracy >= 0.85 on defaults. `--hp KEY=VALUE` overrides a hyperparameter, to compare a schedule.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import zipfile
from pathlib import Path

DEFAULT_ZIP = Path("/work/shared/data/cifar10-jpg.zip")


def extract(archive: Path, dest: Path, classes: list[str], per_split: dict[str, int]) -> Path:
    """dest/{train,test}/<class>/ with the first N images of each class and split, in the archive's order."""
    with zipfile.ZipFile(archive) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        for split, count in per_split.items():
            for cls in classes:
                prefix = f"cifar10-jpg/{split}/{cls}/"
                chosen = [n for n in names if n.startswith(prefix)][:count]
                if len(chosen) < count:
                    raise SystemExit(f"{archive}: {prefix} has {len(chosen)} images, fewer than {count}")
                out = dest / split / cls
                out.mkdir(parents=True, exist_ok=True)
                for name in chosen:
                    (out / Path(name).name).write_bytes(z.read(name))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    ap.add_argument("--classes", default="airplane,automobile")
    ap.add_argument("--train-per-class", type=int, default=80)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--model", default="small")
    ap.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    from trainer.models import get_preset
    from trainer.train import TrainConfig, run

    known = get_preset(args.model).hyperparameters.to_dict()
    overrides = {}
    for item in args.hp:
        key, _, value = item.partition("=")
        overrides[key] = type(known[key])(value) if key in known else value
    classes = args.classes.split(",")
    accuracies = []
    with tempfile.TemporaryDirectory(prefix="platbench-two-class-") as tmp:
        data = extract(args.zip, Path(tmp) / "two-class", classes,
                       {"train": args.train_per_class, "test": args.test_per_class})
        for seed in (int(s) for s in args.seeds.split(",")):
            out = Path(tmp) / f"seed{seed}"
            cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", model=args.model, seed=seed,
                              device="cpu", cache_dir=Path(tmp) / "cache", overrides=overrides)
            res = run(cfg, echo=lambda s: None).results
            s = res.schedule
            accuracies.append(res.test_accuracy)
            print(f"seed {seed}: test accuracy {res.test_accuracy:.4f} ({res.dataset.test_count} test images), "
                  f"{s.steps} steps ({s.epochs} epochs × {s.passes_per_epoch} passes × "
                  f"{s.steps_per_epoch // s.passes_per_epoch} steps), train {res.seconds.train:.1f} s; "
                  f"schedule reason: {s.reason}", flush=True)
    print(f"{len(classes)} classes, {args.train_per_class * len(classes)} training images, {args.model}, "
          f"overrides {overrides or 'none'}: test accuracy mean {statistics.mean(accuracies):.4f}, "
          f"min {min(accuracies):.4f} over {len(accuracies)} seeds")


if __name__ == "__main__":
    main()
