"""The first platform: this machine, the trainer run in-process (the same `trainer.train.run` the image
runs), with a progress bar. Data is read where it lies, so there is nothing to stage or tear down.

`--devices N` (N > 1) runs N data-parallel ranks of `python -m trainer train` under torchrun on this one
node (one GPU each, or CPU processes with gloo): trainer/distributed.py."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from platforms.core import tracking
from platforms.local import SPEC
from platforms.core.api import Job, Outcome, Platform, PlanStep
from platforms.core.settings import typed_overrides
from platforms.errors import UserError


class Interrupted(BaseException):
    """Ctrl-C while training. Not a KeyboardInterrupt: Lightning turns that into sys.exit(1)."""


class _ProgressHooks:
    """Lightning-style hooks that drive the progress bar. A plain class, not a lightning.Callback: the trainer
    forwards them (trainer.train._as_lightning_callback), so `launch local` imports Lightning only where the
    trainer does (a stand-in trainer in the tests never does)."""

    def __init__(self, progress, total_epochs: int):
        self.progress, self.total_epochs = progress, total_epochs

    def on_train_start(self, trainer, module):
        self.progress.epochs(self.total_epochs, trainer.current_epoch)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx % 10 == 0:
            self.progress.batch(f"epoch {trainer.current_epoch + 1} batch {batch_idx + 1}/"
                                f"{trainer.num_training_batches}")

    def on_train_epoch_end(self, trainer, module):
        ev = module.last_eval.get("test", {})
        status = f"test acc {ev['accuracy']:.4f}" if ev else ""
        self.progress.epoch_done(trainer.current_epoch + 1, status)


class LocalPlatform(Platform):
    spec = SPEC

    def preflight(self, job: Job) -> list[str]:
        self.check(job)  # reads only the dataset folder and the settings: offline already
        return []

    def check(self, job: Job) -> None:
        if self.settings:
            raise UserError(f"the local platform takes no --set options (got {', '.join(self.settings)})")
        if job.devices > 1:
            import torch

            gpus = torch.cuda.device_count()
            if gpus and job.devices > gpus:
                raise UserError(f"--devices {job.devices}: only {gpus} GPU(s) visible (one per process)")
            if not gpus and job.devices > (os.cpu_count() or 1):
                raise UserError(f"--devices {job.devices}: no GPU visible and only {os.cpu_count()} CPU(s) for "
                                "the CPU processes")
        from trainer.data import cache, subset
        from trainer.errors import ConfigError, DataError
        from trainer.hyperparameters import check_ranges
        from trainer.models import PRESETS, with_overrides
        from trainer.train import check_settings

        if job.model not in PRESETS:
            raise UserError(f"unknown model {job.model!r}; choose one of: {', '.join(PRESETS)}")
        overrides = typed_overrides(job.hyperparameters)
        try:
            # what the trainer would refuse after its output folder and the MLflow run exist, refused first:
            # the merged settings, then the dataset (decoded into the fingerprint-keyed cache the trainer
            # then reads) and --per-class against its classes
            check_ranges(overrides)
            hp = with_overrides(PRESETS[job.model].hyperparameters, **overrides)
            check_settings(job.epochs or hp.epochs, hp.batch_size, job.target_accuracy)
            data = cache.load(job.data)
            if job.per_class is not None:
                subset.per_class_split(data.y_train, data.classes, job.per_class, job.seed)
        except (ConfigError, DataError) as exc:
            raise UserError(str(exc)) from None

    def run_tags(self, job: Job) -> dict[str, str]:
        # inside the image (docker-compose.gpu.yml): the image's own, from the project's record or the
        # caller's environment (trainer/image_record.py); natively: none
        from trainer.image_record import identity

        image = identity()
        return {k: v for k, v in ((tracking.Tag.IMAGE_DIGEST, image.digest), (tracking.Tag.IMAGE_ID, image.image_id)) if v}

    def plan(self, job: Job) -> list[PlanStep]:
        args = ["--data", str(job.data), "--out", str(job.out),
                *(["--checkpoint-dir", str(job.checkpoint_dir)] if job.checkpoint_dir else []), *job.trainer_args()]
        if job.devices > 1:
            from trainer.distributed import command_line
            from trainer.environment import Topology

            train = PlanStep(f"train {job.devices} data-parallel processes under torchrun on this machine (Lightning "
                             "DDP: one GPU each, else CPU processes with gloo)", command_line(args, job.devices, Topology()))
        else:
            train = PlanStep("train in this process, on the GPU if one is visible, else the CPU",
                             " ".join(["python -m trainer train", *args]))
        return [
            PlanStep(f"read the dataset in place from {job.data} (decoded once, cached by content fingerprint)"),
            train,
            PlanStep(f"write results.json, metrics.jsonl, train.log and model/ to {job.out}"),
            PlanStep("record the run in MLflow (params, per-epoch metrics, results, model)"),
        ]

    def submit(self, job: Job, staged: dict[str, Any]):
        from platforms.core.tracking import code_commit
        from trainer.image_record import identity
        from trainer.train import TrainConfig

        overrides = {k.replace("-", "_"): v for k, v in job.hyperparameters.items()}
        if job.epochs is not None:
            overrides["epochs"] = job.epochs
        return TrainConfig(
            data_dir=job.data, output_dir=job.out, model_dir=job.out / "model",
            checkpoint_dir=job.checkpoint_dir or job.out / "checkpoints", model=job.model, seed=job.seed,
            per_class=job.per_class, target_accuracy=job.target_accuracy, platform=self.name,
            git_commit=code_commit(), devices=job.devices,
            overrides=typed_overrides(overrides), **identity().config(),
        )

    def wait(self, handle, progress) -> Outcome:
        from trainer.errors import ConfigError, DataError
        from trainer.models import get_preset
        from trainer.train import run

        epochs = handle.overrides.get("epochs") or get_preset(handle.model).hyperparameters.epochs
        if handle.devices > 1:
            return self._wait_ranks(handle, progress, epochs)
        # the log lines are in train.log; the console shows the bar, and the lines themselves with --verbose
        echo = progress.print if progress.verbose else None
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            raise Interrupted()

        signal.signal(signal.SIGINT, on_sigint)
        progress.phase("training")
        try:
            outcome = run(handle, callbacks=[_ProgressHooks(progress, epochs)], echo=echo or (lambda s: None))
        except (ConfigError, DataError) as exc:
            raise UserError(str(exc)) from None
        except Interrupted:
            return Outcome("killed", handle.output_dir, message="interrupted (Ctrl-C); "
                           f"run again with --checkpoint-dir {handle.checkpoint_dir} to resume")
        finally:
            signal.signal(signal.SIGINT, previous)
        if outcome.status == "preempted":
            return Outcome("preempted", handle.output_dir, message="SIGTERM: checkpointed; "
                           f"run again with --checkpoint-dir {handle.checkpoint_dir} to resume")
        return Outcome("finished", handle.output_dir)

    def collect(self, handle, outcome: Outcome, dest: Path) -> Path:
        return handle.output_dir  # already here


    def _wait_ranks(self, cfg, progress, epochs: int) -> Outcome:
        """The ranks under torchrun (trainer/distributed.py); their stdout/stderr go to files in the output
        folder (rank 0 also writes train.log), the progress bar follows metrics.jsonl."""
        from trainer.distributed import EXIT_PREEMPTED, launch_ranks
        from trainer.environment import Topology
        from trainer.results import METRICS_FILE, read_metrics

        args = ["--data", str(cfg.data_dir), "--out", str(cfg.output_dir), "--model-dir", str(cfg.model_dir),
                "--checkpoint-dir", str(cfg.checkpoint_dir), "--model", cfg.model, "--seed", str(cfg.seed),
                *(["--per-class", str(cfg.per_class)] if cfg.per_class is not None else []),
                *(["--target-accuracy", str(cfg.target_accuracy)] if cfg.target_accuracy is not None else []),
                *[a for k, v in cfg.overrides.items() for a in ("--" + k.replace("_", "-"), str(v))]]
        # the trainer reads these from its environment (trainer/cli.py); the ranks inherit it
        saved = {k: os.environ.get(k) for k in ("PLATBENCH_GIT_COMMIT", "PLATBENCH_IMAGE_DIGEST", "PLATBENCH_IMAGE_ID")}
        os.environ.update({k: v for k, v in (("PLATBENCH_GIT_COMMIT", cfg.git_commit),
                                             ("PLATBENCH_IMAGE_DIGEST", cfg.image_digest),
                                             ("PLATBENCH_IMAGE_ID", cfg.image_id)) if v})
        stop = threading.Event()

        def follow() -> None:
            progress.epochs(epochs, 0)
            seen = 0
            while not stop.wait(1.0):
                try:
                    records = read_metrics(cfg.output_dir / METRICS_FILE)
                except (OSError, ValueError):
                    continue
                for rec in records[seen:]:
                    acc = rec.get("test_accuracy")
                    progress.epoch_done(rec["epoch"], f"test acc {acc:.4f}" if acc is not None else "")
                seen = len(records)

        progress.phase(f"training ({cfg.devices} processes, torchrun)")
        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        try:
            code = launch_ranks(args, cfg.devices, Topology(), log_dir=str(cfg.output_dir / "torchrun-logs"))
        finally:
            stop.set()
            watcher.join()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        resume = f"run again with --checkpoint-dir {cfg.checkpoint_dir} to resume"
        if code == 0:
            return Outcome("finished", cfg.output_dir)
        if code == EXIT_PREEMPTED:
            return Outcome("preempted", cfg.output_dir, message=f"SIGTERM: checkpointed; {resume}")
        if code == 130:
            return Outcome("killed", cfg.output_dir, message=f"interrupted (Ctrl-C); {resume}")
        return Outcome("failed", cfg.output_dir, message=f"a rank failed (logs in {cfg.output_dir / 'torchrun-logs'})")
