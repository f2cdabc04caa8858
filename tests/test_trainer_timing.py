"""The training clock: evaluation (validation and test sets, TTA included) never counts as training time.

A callback that sleeps in every evaluation batch is real behaviour Lightning runs inside its validation
loop, exactly where evaluation happens; it must move `seconds.eval`, never `seconds.train`."""
from __future__ import annotations

import statistics
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
    slow_cb = SlowEvaluation(2.0)
    slow = train(color_data, tmp_path / "slow", callbacks=[slow_cb], target_accuracy=0.4, overrides=hp)
    assert slow_cb.batches == 2
    print(f"epoch seconds {slow.seconds.per_epoch} with {slow_cb.seconds} s of evaluation sleep an epoch")
    # the sleep is evaluation: all of it lands in seconds.eval, none of it in any epoch's training clock
    # (an epoch holding its evaluation could not be shorter than the sleep; three steps take well under it)
    assert slow.seconds.eval >= 2 * slow_cb.seconds
    assert all(s < slow_cb.seconds for s in slow.seconds.per_epoch), slow.seconds
    assert_clock_consistent(slow, tmp_path / "slow")


def test_20x_larger_test_set_leaves_train_seconds_alone(tmp_path):
    # the same training images (same generator, same order) with 20 vs 400 test images per class
    small = write_folder_dataset(tmp_path / "small", train_per_class=40, test_per_class=20)
    large = write_folder_dataset(tmp_path / "large", train_per_class=40, test_per_class=400)
    hp = {"epochs": 3, "batch_size": 60, "eval_batch_size": 200}
    runs: dict[str, list] = {"small": [], "large": []}
    for i, name in enumerate(["small", "large", "large", "small"]):  # alternated: drifting load hits both
        res = train(small if name == "small" else large, tmp_path / f"{name}{i}", seed=3, overrides=hp)
        assert_clock_consistent(res, tmp_path / f"{name}{i}")
        runs[name].append(res)
    a, b = runs["small"][0], runs["large"][0]
    assert a.dataset.test_count * 20 == b.dataset.test_count
    # shared CI machines stall now and then for a second: compare the median epoch, not one sum
    epoch = {k: statistics.median(s for r in v for s in r.seconds.per_epoch) for k, v in runs.items()}
    evals = {k: statistics.median(r.seconds.eval for r in v) for k, v in runs.items()}
    train_s = {k: min(r.seconds.train for r in v) for k, v in runs.items()}
    ratio = epoch["large"] / epoch["small"]
    print(f"train seconds {train_s['small']:.3f} vs {train_s['large']:.3f} (ratio {train_s['large'] / train_s['small']:.2f},"
          f" median epoch ratio {ratio:.2f}); eval seconds {evals['small']:.3f} vs {evals['large']:.3f}")
    assert evals["large"] > 3 * evals["small"], runs  # the larger test set costs more...
    assert ratio <= 1.35, runs  # ...and none of it is training
