"""The training clock: evaluation (validation and test sets, TTA included) never counts as training time.

A callback that sleeps in every evaluation batch is real behaviour Lightning runs inside its validation
loop, exactly where evaluation happens; it must move `seconds.eval`, never `seconds.train`."""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import pytest
from conftest import write_folder_dataset

from trainer.results import read_metrics
from trainer.train import TrainConfig, run


class SlowEvaluation(L.Callback):
    """Sleeps after every evaluation batch (both the validation and the test loader)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.batches = 0

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.batches += 1
        time.sleep(self.seconds)


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
    hp = {"epochs": 3, "batch_size": 32, "eval_batch_size": 36}  # one test batch an epoch
    plain = train(color_data, tmp_path / "plain", target_accuracy=0.4, overrides=hp)
    slow_cb = SlowEvaluation(1.5)
    slow = train(color_data, tmp_path / "slow", callbacks=[slow_cb], target_accuracy=0.4, overrides=hp)
    slept = slow_cb.batches * slow_cb.seconds
    assert slow_cb.batches == 3 and slept == pytest.approx(4.5)
    # the sleep is evaluation: all of it lands in seconds.eval, none of it in seconds.train
    print(f"train seconds {plain.seconds.train:.3f} → {slow.seconds.train:.3f} with {slept:.1f} s of evaluation sleep")
    assert slow.seconds.eval >= slept
    assert slow.seconds.train < plain.seconds.train + 0.5 * slept, (plain.seconds, slow.seconds)
    for epoch_seconds in slow.seconds.per_epoch:  # no epoch's clock holds its 1.5 s sleeping batch
        assert epoch_seconds < max(plain.seconds.per_epoch) + 0.5 * slow_cb.seconds, slow.seconds
    assert_clock_consistent(plain, tmp_path / "plain")
    assert_clock_consistent(slow, tmp_path / "slow")


def test_20x_larger_test_set_leaves_train_seconds_alone(tmp_path):
    # the same training images (same generator, same order) with 12 vs 240 test images per class
    small = write_folder_dataset(tmp_path / "small", train_per_class=40, test_per_class=12)
    large = write_folder_dataset(tmp_path / "large", train_per_class=40, test_per_class=240)
    hp = {"epochs": 4, "batch_size": 16, "eval_batch_size": 60}
    a = train(small, tmp_path / "a", seed=3, overrides=hp)
    b = train(large, tmp_path / "b", seed=3, overrides=hp)
    assert a.dataset.test_count * 20 == b.dataset.test_count
    assert b.seconds.eval > 3 * a.seconds.eval, (a.seconds, b.seconds)  # the larger test set costs more...
    ratio = b.seconds.train / a.seconds.train
    print(f"train seconds {a.seconds.train:.3f} vs {b.seconds.train:.3f} (ratio {ratio:.2f}); "
          f"eval seconds {a.seconds.eval:.3f} vs {b.seconds.eval:.3f}")
    assert ratio <= 1.35, (a.seconds, b.seconds)  # ...and none of it is training
    assert_clock_consistent(a, tmp_path / "a")
    assert_clock_consistent(b, tmp_path / "b")
