"""The first platform: this machine, the trainer run in-process (the same `trainer.train.run` the image
runs), with a progress bar. Data is read where it lies, so there is nothing to stage or tear down."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from platforms.core import tracking
from platforms.local import SPEC
from platforms.core.api import Job, Outcome, Platform, PlanStep
from platforms.core.settings import typed_overrides
from platforms.errors import UserError


class Interrupted(BaseException):
    """Ctrl-C while training. Not a KeyboardInterrupt: Lightning turns that into sys.exit(1)."""


def _progress_callback(progress, total_epochs: int):
    import lightning as L

    class RichProgress(L.Callback):
        def on_train_start(self, trainer, module):
            progress.epochs(total_epochs, trainer.current_epoch)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx % 10 == 0:
                progress.batch(f"epoch {trainer.current_epoch + 1} batch {batch_idx + 1}/{trainer.num_training_batches}")

        def on_train_epoch_end(self, trainer, module):
            ev = module.last_eval.get("test", {})
            status = f"test acc {ev['accuracy']:.4f}" if ev else ""
            progress.epoch_done(trainer.current_epoch + 1, status)

    return RichProgress()


class LocalPlatform(Platform):
    spec = SPEC

    def preflight(self, job: Job) -> list[str]:
        self.check(job)  # reads only the dataset folder and the settings: offline already
        return []

    def check(self, job: Job) -> None:
        if self.settings:
            raise UserError(f"the local platform takes no --set options (got {', '.join(self.settings)})")
        from trainer.data import cache
        from trainer.errors import DataError
        from trainer.models import PRESETS

        if job.model not in PRESETS:
            raise UserError(f"unknown model {job.model!r}; choose one of: {', '.join(PRESETS)}")
        typed_overrides(job.hyperparameters)
        try:
            # Decoding here (into the fingerprint-keyed cache the trainer then reads) reports a corrupt
            # or inconsistent dataset before an MLflow run or an output folder exists.
            cache.load(job.data)
        except DataError as exc:
            raise UserError(str(exc)) from None

    def run_tags(self, job: Job) -> dict[str, str]:
        # inside the image (docker-compose.gpu.yml) the caller passes the image's digest; natively: none
        digest = os.environ.get("PLATBENCH_IMAGE_DIGEST")
        return {tracking.Tag.IMAGE_DIGEST: digest} if digest else {}

    def plan(self, job: Job) -> list[PlanStep]:
        cmd = " ".join(["python -m trainer train", "--data", str(job.data), "--out", str(job.out),
                        *(["--checkpoint-dir", str(job.checkpoint_dir)] if job.checkpoint_dir else []),
                        *job.trainer_args()])
        return [
            PlanStep(f"read the dataset in place from {job.data} (decoded once, cached by content fingerprint)"),
            PlanStep("train in this process, on the GPU if one is visible, else the CPU", cmd),
            PlanStep(f"write results.json, metrics.jsonl, train.log and model/ to {job.out}"),
            PlanStep("record the run in MLflow (params, per-epoch metrics, results, model)"),
        ]

    def submit(self, job: Job, staged: dict[str, Any]):
        from platforms.core.tracking import code_commit
        from trainer.train import TrainConfig

        overrides = {k.replace("-", "_"): v for k, v in job.hyperparameters.items()}
        if job.epochs is not None:
            overrides["epochs"] = job.epochs
        return TrainConfig(
            data_dir=job.data, output_dir=job.out, model_dir=job.out / "model",
            checkpoint_dir=job.checkpoint_dir or job.out / "checkpoints", model=job.model, seed=job.seed,
            per_class=job.per_class, target_accuracy=job.target_accuracy, platform=self.name,
            git_commit=code_commit(),
            image_digest=os.environ.get("PLATBENCH_IMAGE_DIGEST") or None, overrides=typed_overrides(overrides),
        )

    def wait(self, handle, progress) -> Outcome:
        from trainer.errors import ConfigError, DataError
        from trainer.models import get_preset
        from trainer.train import run

        epochs = handle.overrides.get("epochs") or get_preset(handle.model).hyperparameters.epochs
        echo = None if progress.console.is_terminal else progress.print
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            raise Interrupted()

        signal.signal(signal.SIGINT, on_sigint)
        progress.phase("training")
        try:
            outcome = run(handle, callbacks=[_progress_callback(progress, epochs)], echo=echo or (lambda s: None))
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

