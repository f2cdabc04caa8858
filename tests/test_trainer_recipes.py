"""The studies' training recipes as trainer options any run can use (issue 26): no augmentation and a constant
learning rate (Neuromation's protocol), label smoothing and TTA off, early stopping on validation accuracy with
the best epoch's weights restored before the test (JumpStart's: 10 epochs, patience 3)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from _cli import trainer_here
from conftest import assert_one_line_error
from trainer.early_stopping import BestEpoch, EarlyStopping
from trainer.errors import ConfigError
from trainer.hyperparameters import check_ranges
from trainer.models import PRESETS, with_overrides


# ------------------------------------------------------------------------------ the rule on a hand-made curve
def _run_rule(curve: list[float], patience: int) -> tuple[BestEpoch, int]:
    """(the rule after the epochs it let run, the last epoch run) on validation accuracies `curve`."""
    rule = BestEpoch(patience)
    for epoch, accuracy in enumerate(curve, 1):
        rule.update(epoch, accuracy)
        if rule.should_stop:
            return rule, epoch
    return rule, len(curve)


def test_early_stopping_rule_on_a_hand_made_validation_curve():
    # JumpStart's patience 3 over 10 epochs: best at epoch 4; 5, 6 and 7 are not better (a tie is not) → stop at 7
    curve = [0.50, 0.61, 0.70, 0.74, 0.73, 0.74, 0.72, 0.90, 0.91, 0.92]
    rule, last = _run_rule(curve, 3)
    assert (last, rule.best_epoch, rule.best_accuracy, rule.waited) == (7, 4, 0.74, 3)
    # patience 4 lets epoch 8 improve; the curve then rises to its end
    rule, last = _run_rule(curve, 4)
    assert (last, rule.best_epoch, rule.best_accuracy, rule.should_stop) == (10, 10, 0.92, False)
    # patience 1: the first epoch that is not better stops it
    assert _run_rule([0.2, 0.3, 0.3, 0.9], 1)[1] == 3
    # a flat curve: the first epoch is the best, ties never replace it
    rule, last = _run_rule([0.5] * 6, 2)
    assert (last, rule.best_epoch) == (3, 1)


def test_early_stopping_callback_stops_and_restores_the_best_epochs_weights():
    """The callback as Lightning calls it, epoch after epoch, on a network whose weights are the epoch's number:
    it stops the fit after `patience` epochs without a better validation accuracy, then restores epoch 2's
    weights and reports epoch 2's evaluation; its state survives a checkpoint."""
    curve = [0.6, 0.8, 0.7, 0.8, 0.75, 0.9]
    lines: list[str] = []
    stopper = EarlyStopping(3, lines.append)
    net = nn.Linear(2, 2)
    module = SimpleNamespace(net=net, last_eval={})
    trainer = SimpleNamespace(current_epoch=0, max_epochs=len(curve), should_stop=False)
    for epoch, accuracy in enumerate(curve, 1):
        if trainer.should_stop:
            break
        trainer.current_epoch = epoch - 1
        with torch.no_grad():
            net.weight.fill_(epoch)
        module.last_eval = {"val": {"accuracy": accuracy}, "test": {"accuracy": accuracy / 2, "epoch": epoch}}
        stopper.on_train_epoch_end(trainer, module)
    assert trainer.should_stop and trainer.current_epoch + 1 == 5
    assert stopper.best.record() == {"patience": 3, "best_epoch": 2, "best_val_accuracy": 0.8, "stopped_early": True}
    assert stopper.best_eval["test"] == {"accuracy": 0.4, "epoch": 2}
    assert "stopped after epoch 5" in lines[-1]

    resumed = EarlyStopping(3, lines.append)
    resumed.load_state_dict(stopper.state_dict())
    resumed.restore(net)
    assert torch.equal(net.weight, torch.full((2, 2), 2.0))
    assert resumed.best == stopper.best and resumed.best_eval == stopper.best_eval


def test_the_last_epoch_is_not_an_early_stop():
    stopper = EarlyStopping(1, lambda _: None)
    module = SimpleNamespace(net=nn.Linear(1, 1), last_eval={"val": {"accuracy": 0.5}})
    trainer = SimpleNamespace(current_epoch=0, max_epochs=2, should_stop=False)
    stopper.on_train_epoch_end(trainer, module)
    trainer.current_epoch = 1
    stopper.on_train_epoch_end(trainer, module)  # not better, but the schedule ends here anyway
    assert not trainer.should_stop and stopper.best.record()["stopped_early"] is False


# ------------------------------------------------------------------------------------------ the options
def test_no_augmentation_and_a_constant_learning_rate():
    hp = with_overrides(PRESETS["small"].hyperparameters, augment="none", lr_schedule="constant")
    assert (hp.flip, hp.translate) == (False, 0)  # recorded as what it trains with
    assert with_overrides(PRESETS["small"].hyperparameters).augment == "flip-translate"

    from trainer.module import Classifier

    def optimizers(hp):
        return Classifier(PRESETS["small"].build(3), PRESETS["small"], hp, 3, 5, ["test"]).configure_optimizers()

    opt = optimizers(hp)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == hp.lr  # no scheduler: the lr stays
    scheduled = optimizers(with_overrides(hp, lr_schedule="warmup-decay"))
    assert scheduled["lr_scheduler"]["interval"] == "step"


@pytest.mark.parametrize("values,word", [
    ({"augment": "mixup"}, "augment must be flip-translate or none"),
    ({"lr_schedule": "cosine"}, "lr_schedule must be warmup-decay or constant"),
    ({"early_stopping_patience": -1}, "early_stopping_patience"),
    ({"pretrained": 2}, "pretrained must be 0"),
    ({"augment": "none", "translate": 4}, "contradicts augment=none"),
])
def test_out_of_range_recipe_options_are_refused(values, word):
    with pytest.raises(ConfigError, match=word):
        check_ranges(values)


@pytest.mark.parametrize("flags,word", [
    (["--augment", "cutout"], "augment"),
    (["--lr-schedule", "step"], "lr_schedule"),
    (["--early-stopping-patience", "-2"], "early_stopping_patience"),
])
def test_the_trainer_refuses_bad_recipe_flags_in_one_line(tmp_path, digits_data, flags, word):
    out = tmp_path / "out"
    proc = trainer_here("train", "--data", str(digits_data), "--out", str(out), "--device", "cpu", *flags)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and word in proc.stderr, proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------- one short real run
def test_a_full_data_run_with_early_stopping_holds_out_validation_images(digits_data):
    """Early stopping needs images it does not train on: a full-data run holds out 20% of each class by the
    --per-class rule (trainer/data/subset.py); without a patience it trains on every image."""
    from trainer.data import cache, subset
    from trainer.train import TrainConfig, _settings, _validation_split

    data = cache.load(digits_data, 16)
    cfg = TrainConfig(data_dir=digits_data, output_dir=digits_data / "unused", model_dir=digits_data / "unused",
                      overrides={"early_stopping_patience": 3})
    train, val = _validation_split(cfg, _settings(cfg)[1], data)
    expected = subset.all_split(data.y_train, data.classes, 0)
    assert np.array_equal(train, expected[0]) and np.array_equal(val, expected[1])
    assert (len(train), len(val)) == (1442 - 288, 288) and not set(train) & set(val)
    cfg.overrides = {}
    assert _validation_split(cfg, _settings(cfg)[1], data) is None


def test_early_stopping_run_on_the_digits_reports_and_saves_the_best_epoch(tmp_path, digits_data):
    """JumpStart's protocol, shrunk to seconds: patience 1, no augmentation, a constant lr, on 40 digits a class
    (8 held out for validation). The figures reported, and the model saved, are the best validation epoch's."""
    from trainer.data import cache
    from trainer.inference import load_model
    from trainer.results import read_metrics
    from trainer.train import TrainConfig, run

    out = tmp_path / "run"
    cfg = TrainConfig(data_dir=digits_data, output_dir=out, model_dir=out / "model", device="cpu", model="small",
                      per_class=40, image_size=16,  # the digits are 8×8: 16 keeps them whole at a quarter of 32's cost
                      overrides={"epochs": 4, "batch_size": 32, "early_stopping_patience": 1, "augment": "none",
                                 "lr_schedule": "constant", "label_smoothing": 0.0, "tta": 0, "min_steps": 0})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two spin-waiting threads on a shared 2-core machine cost 13 s of CPU here, one 1 s
    try:
        results = run(cfg, echo=lambda _: None).results
    finally:
        torch.set_num_threads(threads)
    stop = results.early_stopping
    metrics = read_metrics(out)
    best = metrics[stop.best_epoch - 1]
    # the rule over the recorded curve: best = first epoch of the highest validation accuracy seen
    vals = [m["val_accuracy"] for m in metrics]
    assert stop.best_epoch == vals.index(max(vals)) + 1 and stop.best_val_accuracy == max(vals)
    assert results.epochs_completed == (stop.best_epoch + 1 if stop.stopped_early else 4) == len(metrics)
    # reported: the best epoch's test figures, not the last epoch's
    assert (results.test_accuracy, results.val_accuracy) == (best["test_accuracy"], best["val_accuracy"])
    assert results.hyperparameters["augment"] == "none" and results.hyperparameters["translate"] == 0
    # saved: the best epoch's weights, which give its test accuracy again
    data = cache.load(digits_data, 16)
    predicted = load_model(out / "model").probabilities(data.x_test).argmax(1)
    assert np.mean(predicted == data.y_test) == pytest.approx(best["test_accuracy"], abs=1e-9)
