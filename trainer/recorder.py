"""One Lightning callback that owns the run's record: the training clock (evaluation kept off it),
per-epoch metrics, time to target accuracy, the log lines, and an atomic checkpoint at each epoch end.

Its state travels inside the checkpoint, so a resumed run continues the same clock and history."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import lightning as L
import torch

from trainer import loglines
from trainer.results import write_metrics

CHECKPOINT_FILE = "last.ckpt"


def _sync(module: L.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class EpochRecorder(L.Callback):
    def __init__(self, output_dir: Path, checkpoint_dir: Path | None, target_accuracy: float | None,
                 log: Callable[[str], None], on_epoch_start: Callable[[int], None] | None = None):
        self.output_dir = Path(output_dir)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.target = target_accuracy
        self.emit = log
        self.on_epoch_start = on_epoch_start
        # state (saved in checkpoints)
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.to_target: float | None = None
        self.epoch_to_target: int | None = None
        self.last_eval: dict = {}
        # per-epoch scratch
        self._t0: float | None = None   # running segment of the training clock, None while stopped
        self._in_epoch = False
        self._evaluated = False  # whether this epoch ran its evaluation (a schedule may skip some epochs)
        self._epoch_seconds = 0.0
        self._eval_t0: float | None = None

    # ---- the clock: runs from the epoch's start to its end, paused during every evaluation pass.
    # Lightning runs validation (our val and test loaders, TTA included) inside the training epoch, before
    # on_train_epoch_end, with trainer.training False: so pause on any evaluation start, whatever the stage.
    def on_train_epoch_start(self, trainer, module) -> None:
        if self.on_epoch_start:
            self.on_epoch_start(trainer.current_epoch)
        self._epoch_seconds = 0.0
        self._in_epoch = True
        self._evaluated = False
        self._start_clock(module)

    def _start_clock(self, module) -> None:
        _sync(module)  # work queued before this moment is not this segment's
        self._t0 = time.perf_counter()

    def _stop_clock(self, module) -> None:
        if self._t0 is not None:
            _sync(module)  # CUDA runs asynchronously: wait for the queued steps before reading the clock
            segment = time.perf_counter() - self._t0
            self._epoch_seconds += segment
            self.train_seconds += segment
            self._t0 = None

    def _eval_start(self, module) -> None:
        self._stop_clock(module)
        self._evaluated = self._evaluated or self._in_epoch
        _sync(module)
        self._eval_t0 = time.perf_counter()

    def _eval_end(self, module) -> None:
        if self._eval_t0 is not None:
            _sync(module)
            self.eval_seconds += time.perf_counter() - self._eval_t0
            self._eval_t0 = None
        if self._in_epoch:  # evaluation in the middle of an epoch: training resumes after it
            self._start_clock(module)

    def on_validation_start(self, trainer, module) -> None:
        self._eval_start(module)

    def on_validation_end(self, trainer, module) -> None:
        self._eval_end(module)

    def on_test_start(self, trainer, module) -> None:
        self._eval_start(module)

    def on_test_end(self, trainer, module) -> None:
        self._eval_end(module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._stop_clock(module)
        self._in_epoch = False
        epoch = trainer.current_epoch + 1
        evals = module.last_eval if self._evaluated else {}
        record = {"epoch": epoch, "epoch_seconds": round(self._epoch_seconds, 6),
                  "train_seconds": round(self.train_seconds, 6), "wall_time": time.time(),
                  **module.epoch_train_summary()}
        if "val" in evals:
            record["val_accuracy"] = evals["val"]["accuracy"]
            record["val_loss"] = evals["val"]["loss"]
        if "test" in evals:
            record["test_accuracy"] = evals["test"]["accuracy"]
            record["test_top5_accuracy"] = evals["test"]["top5_accuracy"]
            record["test_loss"] = evals["test"]["loss"]
            if self.target is not None and self.to_target is None and evals["test"]["accuracy"] >= self.target:
                self.to_target, self.epoch_to_target = self.train_seconds, epoch
        self.history.append(record)
        if evals:
            self.last_eval = evals
        if trainer.is_global_zero:  # data parallel: every rank keeps the record, rank 0 writes it
            write_metrics(self.output_dir, self.history)
            for name in ("epoch", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy",
                         "test_top5_accuracy", "epoch_seconds", "train_seconds"):
                if name in record:
                    self.emit(loglines.line(name, record[name]))
        if self.checkpoint_dir is not None:
            self._save(trainer)

    def _save(self, trainer) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        final = self.checkpoint_dir / CHECKPOINT_FILE
        tmp = final.with_name(f".{final.name}.tmp")
        trainer.save_checkpoint(tmp)  # every rank calls it (a collective); only rank 0 writes the file
        if trainer.is_global_zero:
            os.replace(tmp, final)

    # ---- checkpointed state
    def state_dict(self) -> dict:
        return {"history": self.history, "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                "to_target": self.to_target, "epoch_to_target": self.epoch_to_target, "last_eval": self.last_eval}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state["history"])
        self.train_seconds = state["train_seconds"]
        self.eval_seconds = state["eval_seconds"]
        self.to_target = state["to_target"]
        self.epoch_to_target = state["epoch_to_target"]
        self.last_eval = state["last_eval"]
