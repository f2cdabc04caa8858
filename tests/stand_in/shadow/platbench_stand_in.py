"""The stand-in trainer: `trainer.train.run` replaying a golden run instead of training (tests/stand_in says
why and how a job reaches it). It speaks the trainer's contract (docs/design.md) with the trainer's own
torch-free modules: the directories come from trainer/cli.py and trainer/environment.py as for the real
trainer, the dataset fingerprint from trainer/data/layout.py, results.json / metrics.jsonl from
trainer/results.py, the log lines from trainer/loglines.py. It imports no torch and no Lightning.

What it writes is the golden run's (a real trainer run on the same data, PLATBENCH_STAND_IN_GOLDEN), one
epoch at a time: an epoch's metrics.jsonl record and log lines, then its checkpoint. Epochs beyond the
golden run's repeat its last-but-one figures and the final epoch is always the golden's last, so the final
figures (accuracy, confusion matrix, per class) agree with the golden model it copies. Clocks, dates and
identities are this run's own. It refuses, as a one-line error exit 2, a dataset, model, per-class or
image size other than the golden run's: it has no figures for them.

Knobs (environment):
  PLATBENCH_STAND_IN_GOLDEN         the golden run's output folder (required)
  PLATBENCH_STAND_IN_EPOCH_SECONDS  how long an epoch takes (default 0.05)
  PLATBENCH_STAND_IN_FAIL           exit: raise after PLATBENCH_STAND_IN_FAIL_AFTER epochs (a crash: a
                                    traceback and exit 1 as a script); hang: stop making progress there
                                    (SIGTERM still checkpoints-and-exits, as Lightning's handler does);
                                    hang-once: hang only in a run that did not resume from a checkpoint
                                    (a node reclaimed once: the restarted job goes on)
  PLATBENCH_STAND_IN_FAIL_AFTER     epochs done before failing (default 0)
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

from trainer import loglines
from trainer.data import layout
from trainer.errors import ConfigError
from trainer.results import (LOG_FILE, METRICS_FILE, MODEL_CARD, MODEL_WEIGHTS, RESULTS_FILE, Results,
                             atomic_write_text, read_metrics, read_results, write_metrics, write_results)
from trainer.train import (EXIT_PREEMPTED, RunOutcome, TrainConfig, _check_identity, log_results,
                           plan_schedule, step_budget_applies)

CHECKPOINT_FILE = "last.ckpt"  # trainer/recorder.py's name (that module imports Lightning)
FORMAT = "platbench-stand-in-checkpoint-1"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        raise ConfigError(f"{name}={os.environ[name]!r} is not a number") from None


class Golden:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not (self.folder / RESULTS_FILE).is_file():
            raise ConfigError(f"stand-in: no golden run in {self.folder} (PLATBENCH_STAND_IN_GOLDEN)")
        self.results = read_results(self.folder)
        self.records = read_metrics(self.folder / METRICS_FILE)

    def record(self, epoch: int, epochs: int) -> dict:
        """The golden figures of `epoch` of a run of `epochs`: the last epoch is always the golden's last."""
        n = len(self.records)
        i = n - 1 if epoch == epochs else min(epoch, max(n - 1, 1)) - 1
        return dict(self.records[i])


def _refuse_what_the_golden_run_did_not_train(cfg: TrainConfig, golden: Results, fingerprint: str) -> None:
    theirs = {"dataset fingerprint": golden.dataset.fingerprint, "model": golden.model,
              "per_class": golden.dataset.per_class, "image_size": golden.dataset.image_size}
    mine = {"dataset fingerprint": fingerprint, "model": cfg.model, "per_class": cfg.per_class,
            "image_size": cfg.image_size}
    differ = [k for k in theirs if theirs[k] != mine[k]]
    if differ:
        raise ConfigError("stand-in: the golden run has no figures for this job: " + "; ".join(
            f"{k} {mine[k]!r} (golden: {theirs[k]!r})" for k in differ))


def _sigterm_flag() -> tuple[threading.Event, Callable[[], None]]:
    """A SIGTERM sets the flag (Lightning's handler does the same: training stops at the next step)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return flag, lambda: None
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    return flag, lambda: signal.signal(signal.SIGTERM, previous)


def _wait(seconds: float, stop: threading.Event) -> None:
    end = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < end:
        time.sleep(min(0.02, max(0.0, end - time.monotonic())))


def _hooks(callbacks: list, name: str, *args) -> None:
    """Call a Lightning-style hook on the caller's callbacks (platforms/local's progress bar)."""
    for cb in callbacks:
        hook = getattr(cb, name, None)
        if hook is not None:
            hook(*args)


def run(cfg: TrainConfig, callbacks: list | None = None, echo: Optional[Callable[[str], None]] = None) -> RunOutcome:
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    golden = Golden(Path(os.environ.get("PLATBENCH_STAND_IN_GOLDEN", "")))
    g = golden.results
    unknown = set(cfg.overrides) - set(g.hyperparameters)
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
    hp = {**g.hyperparameters, **cfg.overrides}
    if hp["epochs"] < 1 or hp["batch_size"] < 1:
        raise ConfigError("epochs and batch_size must be at least 1")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        raise ConfigError("--target-accuracy is a fraction in (0, 1], e.g. 0.94")
    epoch_seconds = _env_float("PLATBENCH_STAND_IN_EPOCH_SECONDS", 0.05)
    fail = os.environ.get("PLATBENCH_STAND_IN_FAIL", "")
    fail_after = int(_env_float("PLATBENCH_STAND_IN_FAIL_AFTER", 0))
    if fail not in ("", "exit", "hang", "hang-once"):
        raise ConfigError(f"PLATBENCH_STAND_IN_FAIL={fail!r}: expected exit, hang or hang-once")

    fingerprint = layout.fingerprint(Path(cfg.data_dir))  # as the trainer's cache does; DataError when unreadable
    _refuse_what_the_golden_run_did_not_train(cfg, g, fingerprint)
    data_seconds = time.perf_counter() - t_start
    dataset = g.dataset.model_copy(update={"name": cfg.dataset_name or Path(cfg.data_dir).resolve().name})
    batch = min(hp["batch_size"], dataset.train_count)
    steps_per_pass = dataset.train_count // batch  # drop_last, as trainer/data/batches.py's TrainBatches
    schedule = plan_schedule(hp["epochs"], steps_per_pass, hp["min_steps"], cfg.per_class, dataset.train_count, batch,
                             step_budget_applies(cfg.per_class, cfg.overrides))

    out, log_file = Path(cfg.output_dir), None
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / LOG_FILE).open("a")
    say = echo if echo is not None else (lambda s: print(s, flush=True))

    def log(text: str) -> None:
        log_file.write(text + "\n")
        log_file.flush()
        say(text)

    stop, restore = _sigterm_flag()
    try:
        if schedule["passes_per_epoch"] > 1:
            log(f"Schedule: {schedule['reason']} ({schedule['steps']} steps)")
        state = {"history": [], "train_seconds": 0.0, "to_target": None, "epoch_to_target": None}
        resumed_from = None
        ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
        if ckpt_dir is not None:
            _check_identity(ckpt_dir, {"model": cfg.model, "dataset": fingerprint, "seed": cfg.seed,
                                       "per_class": cfg.per_class, "image_size": cfg.image_size,
                                       "hyperparameters": hp})
            last = ckpt_dir / CHECKPOINT_FILE
            if last.is_file():
                try:
                    saved = json.loads(last.read_text())
                    assert saved.pop("format") == FORMAT
                except (ValueError, AssertionError, KeyError, AttributeError, UnicodeDecodeError):
                    raise ConfigError(f"checkpoint {last} is not a stand-in checkpoint; remove it or use "
                                      "another --checkpoint-dir") from None
                state = saved
                resumed_from = len(state["history"])  # epochs done, as the trainer counts them
                log(f"Resuming from {last} after epoch {resumed_from}")
        if fail == "hang-once" and resumed_from is not None:
            fail = ""
        fake_trainer = SimpleNamespace(current_epoch=len(state["history"]), num_training_batches=schedule["steps_per_epoch"],
                                       is_global_zero=True)
        fake_module = SimpleNamespace(last_eval={})
        callbacks = callbacks or []
        _hooks(callbacks, "on_train_start", fake_trainer, fake_module)
        for epoch in range(len(state["history"]) + 1, hp["epochs"] + 1):
            fake_trainer.current_epoch = epoch - 1
            _hooks(callbacks, "on_train_epoch_start", fake_trainer, fake_module)
            if fail and epoch > fail_after:
                if fail == "exit":
                    raise RuntimeError(f"stand-in: failing on demand in epoch {epoch} (PLATBENCH_STAND_IN_FAIL=exit)")
                _wait(math.inf, stop)  # hang: no progress until SIGTERM
            t0 = time.perf_counter()
            _wait(epoch_seconds, stop)
            _hooks(callbacks, "on_train_batch_end", fake_trainer, fake_module, None, None, 0)
            if stop.is_set():
                log(f"SIGTERM received: stopping; the last epoch-end checkpoint is in {cfg.checkpoint_dir}")
                return RunOutcome("preempted", None, EXIT_PREEMPTED)
            took = time.perf_counter() - t0
            state["train_seconds"] += took
            rec = {**golden.record(epoch, hp["epochs"]), "epoch": epoch, "epoch_seconds": round(took, 6),
                   "train_seconds": round(state["train_seconds"], 6), "wall_time": time.time()}
            if (cfg.target_accuracy is not None and state["to_target"] is None and "test_accuracy" in rec
                    and rec["test_accuracy"] >= cfg.target_accuracy):
                state["to_target"], state["epoch_to_target"] = state["train_seconds"], epoch
            state["history"].append(rec)
            write_metrics(out, state["history"])
            for name in ("epoch", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy",
                         "test_top5_accuracy", "epoch_seconds", "train_seconds"):
                if name in rec:
                    log(loglines.line(name, rec[name]))
            fake_module.last_eval = {"test": {"accuracy": rec.get("test_accuracy", 0.0)}}
            _hooks(callbacks, "on_train_epoch_end", fake_trainer, fake_module)
            if ckpt_dir is not None:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(ckpt_dir / CHECKPOINT_FILE, json.dumps({"format": FORMAT, **state}))

        # the golden model and the golden final figures; this run's identity, clocks and schedule
        model_dir = Path(cfg.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / MODEL_WEIGHTS).write_bytes((golden.folder / "model" / MODEL_WEIGHTS).read_bytes())
        atomic_write_text(model_dir / MODEL_CARD, (golden.folder / "model" / MODEL_CARD).read_text())
        history = state["history"]
        per_epoch = [h["epoch_seconds"] for h in history]
        train = state["train_seconds"]
        results = g.model_copy(update={
            "run_id": uuid.uuid4().hex, "status": "finished", "platform": cfg.platform, "job_id": cfg.job_id,
            "image_digest": cfg.image_digest, "image_id": cfg.image_id, "image_build_id": cfg.image_build_id,
            "git_commit": cfg.git_commit, "started_at": started.isoformat(),
            "finished_at": datetime.now(timezone.utc).isoformat(), "dataset": dataset, "hyperparameters": hp,
            "seed": cfg.seed, "target_accuracy": cfg.target_accuracy, "epoch_to_target": state["epoch_to_target"],
            "epochs_completed": len(history), "resumed_from_epoch": resumed_from,
            "schedule": g.schedule.model_copy(update=schedule),
            "seconds": g.seconds.model_copy(update={
                "total": time.perf_counter() - t_start + (train if resumed_from else 0.0), "data": data_seconds,
                "train": train, "per_epoch": per_epoch, "to_target": state["to_target"], "eval": 0.0}),
        })
        results = Results.model_validate(results.model_dump())  # the schema's checks, as write_results' caller
        write_results(out, results)
        log_results(log, results, schedule["steps"])  # the real trainer's final log lines
        return RunOutcome("finished", results, 0)
    finally:
        restore()
        log_file.close()
