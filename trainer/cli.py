"""`python -m trainer train [flags]` — the container's entry (the image's `train` executable runs it).

Where each directory comes from, in order: an explicit flag; the platform's environment
(trainer/environment.py); local defaults. Hyperparameters from the platform's own channel (SageMaker's
hyperparameters.json) are parsed by the same parser as flags, and flags given on the command line win.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trainer import environment, image_record
from trainer.data.staged import materialize
from trainer.errors import ConfigError, DataError
from trainer.hyperparameters import FLAGS as HYPERPARAMETER_FLAGS, check_ranges


def _fraction(text: str) -> float:
    return float(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer train", description="Train one platbench model.")
    p.add_argument("--data", type=Path, help="dataset folder (folder layout or CIFAR-10 python batches)")
    p.add_argument("--out", type=Path, help="output dir: results.json, metrics.jsonl, train.log")
    p.add_argument("--model-dir", type=Path, help="where the model weights go (default OUT/model)")
    p.add_argument("--checkpoint-dir", type=Path, help="epoch-end checkpoints; a rerun resumes from here")
    p.add_argument("--model", default="small", help="model preset: small | fast | resnet18 | a torchvision family (README: Models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int, help="train on N images per class (20%% held out for validation)")
    p.add_argument("--target-accuracy", type=_fraction, help="record train seconds to reach this test accuracy")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", help="Lightning precision, e.g. bf16-mixed, 16-mixed, 32-true")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--devices", type=int, default=1,
                   help="data-parallel processes on each node, one device each (>1: run under torchrun, DDP)")
    p.add_argument("--dataset-name")
    for flag, typ in HYPERPARAMETER_FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=f"override the preset's {flag}")
    return p


def channel_args(hyperparameters: dict[str, str]) -> list[str]:
    """A platform's hyperparameters (all strings) as flags, e.g. {"epochs": "10"} → ["--epochs", "10"].

    Keys may use `_` or `-`; reserved keys of the platforms' SDKs (sagemaker_*, _*) are skipped."""
    args: list[str] = []
    for key, value in hyperparameters.items():
        if key.startswith(("sagemaker_", "_")):
            continue
        flag = "--" + key.replace("_", "-")
        if flag == "--compile":
            if str(value).lower() in ("1", "true", "yes"):
                args.append(flag)
            continue
        args += [flag, str(value)]
    return args


def config_from_args(argv: list[str], env=None):
    from trainer.train import TrainConfig

    env = os.environ if env is None else env
    place = environment.resolve(env)
    p = parser()
    ns = p.parse_args(channel_args(place.hyperparameters) + argv)
    overrides = {flag.replace("-", "_"): getattr(ns, flag.replace("-", "_")) for flag in HYPERPARAMETER_FLAGS}
    check_ranges(overrides)  # before any data is staged or output folder made
    data = ns.data or place.data_dir
    if data is None:
        raise ConfigError("no dataset: pass --data DIR (or run on a platform that provides a data channel)")
    data = materialize(Path(data), env)
    out = ns.out or place.output_dir
    model_dir = ns.model_dir or (out / "model" if ns.out else place.model_dir)
    checkpoint_dir = ns.checkpoint_dir or (out / "checkpoints" if ns.out else place.checkpoint_dir)
    image = image_record.identity(env)
    if image.why_none:
        print(f"image identity: none recorded: {image.why_none}", file=sys.stderr)
    return TrainConfig(
        data_dir=Path(data), output_dir=Path(out), model_dir=Path(model_dir),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, model=ns.model, seed=ns.seed,
        per_class=ns.per_class, target_accuracy=ns.target_accuracy, image_size=ns.image_size, device=ns.device,
        precision=ns.precision, compile=ns.compile, dataset_name=ns.dataset_name, platform=place.platform,
        job_id=place.job_id, **image.config(),
        git_commit=env.get("PLATBENCH_GIT_COMMIT") or None, devices=ns.devices,
        overrides={k: v for k, v in overrides.items() if v is not None},
    ), place


def train_main(argv: list[str]) -> int:
    from trainer.train import run

    try:
        cfg, place = config_from_args(argv)
        try:
            topo = environment.topology()
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read this job's distributed layout: {exc}") from None
        if cfg.devices < 1:
            raise ConfigError("--devices must be at least 1")
        if not topo.launched and (cfg.devices > 1 or topo.nodes > 1):
            # several processes on this node, or one node of several: torchrun starts this node's ranks,
            # each running this same command (they see torchrun's variables and train as one DDP run)
            from trainer.distributed import launch_ranks

            return launch_ranks(argv, cfg.devices, topo)
        outcome = run(cfg)
    except (ConfigError, DataError) as exc:
        message = f"error: {exc}"
        print(message, file=sys.stderr)
        if environment.detect() == "sagemaker":
            _write_sagemaker_failure(message)
        return 2
    return outcome.exit_code


def _write_sagemaker_failure(message: str) -> None:
    """SageMaker shows /opt/ml/output/failure as the job's FailureReason (first 1024 characters).
    https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html"""
    try:
        failure = environment.sagemaker_root(os.environ) / "output/failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(message[:1024])
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m trainer {train,serve,check} [flags]   (train --help for the flags)")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "serve":
        from trainer.serve import serve_main

        return serve_main(rest)
    if command == "check":
        from trainer.check import main as check_main

        return check_main(rest)
    print(f"error: unknown command {command!r}; expected train, serve or check", file=sys.stderr)
    return 2
