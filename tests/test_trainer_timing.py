"""The training clock: evaluation (validation and test sets, TTA included) never counts as training time.

A callback that sleeps in every evaluation batch is real behaviour Lightning runs inside its validation
loop, exactly where evaluation happens; it must move `seconds.eval`, never `seconds.train`.

No duration bounds (the machine is shared): the checks are orderings of clock readings. The trainer's
recorder is the first callback, so it starts an epoch's clock before `Marks` sees the epoch start and stops
it before `Marks` sees the epoch end, and it pauses from before `Marks` sees an evaluation pass begin until
after it sees it end. So an epoch's training seconds can be at most the time between `Marks`' epoch marks
less the evaluation `Marks` saw inside it; were evaluation counted, they would exceed that. How much more a
larger test set costs is a measurement, not a test: `python -m benchmarks.eval_clock`."""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import pytest
from conftest import write_folder_dataset

from trainer.results import read_metrics
from trainer.train import TrainConfig, run

ROUNDED = 1e-6  # per-epoch seconds are stored to 6 decimals


class Marks(L.Callback):
    """perf_counter readings outside the trainer's clock: per epoch, the span since the previous epoch's
    end (or the start of training) and the evaluation time inside it."""

    def __init__(self):
        self.spans: list[float] = []
        self.evals: list[float] = []
        self._last = self._eval_t0 = 0.0
        self._eval = 0.0

    def on_train_start(self, trainer, module):
        self._last = time.perf_counter()

    def on_train_epoch_start(self, trainer, module):
        self._eval = 0.0

    def on_validation_epoch_start(self, trainer, module):
        self._eval_t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, module):
        self._eval += time.perf_counter() - self._eval_t0

    def on_train_epoch_end(self, trainer, module):
        now = time.perf_counter()
        self.spans.append(now - self._last)
        self.evals.append(self._eval)
        self._last = now

    def assert_evaluation_is_off_the_training_clock(self, res) -> None:
        assert len(self.spans) == len(res.seconds.per_epoch)
        for epoch, (seconds, span, evaluated) in enumerate(zip(res.seconds.per_epoch, self.spans, self.evals), 1):
            assert evaluated > 0, f"epoch {epoch} ran no evaluation"
            assert seconds <= span - evaluated + ROUNDED, (epoch, seconds, span, evaluated)
        assert res.seconds.eval >= sum(self.evals)  # the recorder's evaluation clock holds every pass


class SlowEvaluation(L.Callback):
    """Sleeps after every evaluation batch (both the validation and the test loader)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.batches = 0

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.batches += 1
        time.sleep(self.seconds)


@pytest.fixture(autouse=True)
def one_thread():
    """Timing on a shared 2-core machine: torch's default two intra-op threads spin-wait for each other
    when other processes hold the cores, and a 3-step epoch then takes anywhere from 0.1 to 6 s. One
    thread keeps these tests' figures steady; the trainer's clock is the same either way."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train(data: Path, out: Path, callbacks=None, **kw):
    cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", checkpoint_dir=out / "ckpt",
                      device="cpu", **kw)
    outcome = run(cfg, callbacks=callbacks, echo=lambda s: None)
    assert outcome.status == "finished"
    return outcome.results


def assert_clock_consistent(res, out: Path) -> None:
    assert sum(res.seconds.per_epoch) == pytest.approx(res.seconds.train, abs=1e-3)
    assert [e["epoch_seconds"] for e in read_metrics(out)] == res.seconds.per_epoch
    assert res.seconds.train + res.seconds.eval + res.seconds.data < res.seconds.total
    if res.seconds.to_target is not None:
        assert res.seconds.to_target <= res.seconds.train + 1e-9


def test_slow_evaluation_does_not_move_train_seconds(color_data, tmp_path):
    hp = {"epochs": 2, "batch_size": 32, "eval_batch_size": 36}  # 3 training steps, one test batch an epoch
    slow_cb, marks = SlowEvaluation(0.3), Marks()
    slow = train(color_data, tmp_path / "slow", callbacks=[slow_cb, marks], target_accuracy=0.4, overrides=hp)
    assert slow_cb.batches == 2
    print(f"epoch seconds {slow.seconds.per_epoch} with {slow_cb.seconds} s of evaluation sleep an epoch")
    # the sleep is evaluation: all of it lands in seconds.eval, none of it in any epoch's training clock
    assert slow.seconds.eval >= 2 * slow_cb.seconds
    assert all(e >= slow_cb.seconds for e in marks.evals), marks.evals
    marks.assert_evaluation_is_off_the_training_clock(slow)
    assert_clock_consistent(slow, tmp_path / "slow")


def test_20x_larger_test_set_leaves_train_seconds_alone(tmp_path):
    # 400 test images a class against 40 training images: evaluation is most of each epoch
    large = write_folder_dataset(tmp_path / "large", train_per_class=40, test_per_class=400)
    marks = Marks()
    res = train(large, tmp_path / "run", callbacks=[marks], seed=3,
                overrides={"epochs": 1, "batch_size": 60, "eval_batch_size": 200})
    assert res.dataset.test_count == 1200
    print(f"epoch seconds {res.seconds.per_epoch}, evaluation seen {marks.evals}, eval seconds {res.seconds.eval}")
    marks.assert_evaluation_is_off_the_training_clock(res)  # the larger test set costs evaluation time, no training
    assert_clock_consistent(res, tmp_path / "run")
