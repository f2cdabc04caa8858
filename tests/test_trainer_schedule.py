"""The step budget of small --per-class runs: a fixed epoch count on 20 images per class is a handful of
optimizer steps and leaves the model near chance; `min_steps` raises the epochs, evaluation keeps the
preset's cadence, and results.json says what was run and why."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainer import loglines
from trainer.results import read_metrics
from trainer.train import TrainConfig, plan_schedule, run


def train(data: Path, out: Path, **kw):
    lines: list[str] = []
    cfg = TrainConfig(data_dir=data, output_dir=out, model_dir=out / "model", checkpoint_dir=out / "ckpt",
                      device="cpu", **kw)
    outcome = run(cfg, echo=lines.append)
    assert outcome.status == "finished"
    return outcome.results, lines


def test_plan_schedule():
    # full data: the preset's epochs, whatever the budget
    assert plan_schedule(10, 11, 200, None, 1437, 128) == {
        "epochs": 10, "steps_per_epoch": 11, "steps": 110, "min_steps": 200, "eval_every_epochs": 1, "reason": None}
    # a per-class run that already meets the budget is left alone
    assert plan_schedule(10, 40, 200, 500, 4000, 128)["epochs"] == 10
    # 20 per class of 10 classes: 16 train images each, one batch an epoch → 200 epochs, evaluated every 20
    s = plan_schedule(10, 1, 200, 20, 160, 128)
    assert (s["epochs"], s["steps"], s["eval_every_epochs"]) == (200, 200, 20)
    assert s["reason"] == ("--per-class 20: 160 training images make 1 step per epoch at batch size 128; epochs "
                           "raised from 10 to 200 to reach min_steps 200, evaluated every 20")
    # 80 per class: 5 steps an epoch → 40 epochs, evaluated every 4
    s = plan_schedule(10, 5, 200, 80, 640, 128)
    assert (s["epochs"], s["steps"], s["eval_every_epochs"]) == (40, 200, 4)
    # epochs a multiple of the cadence (last epoch evaluated), never more evaluations than the preset's epochs
    for epochs in (1, 3, 10, 30):
        for spe in (1, 2, 3, 7, 13):
            for min_steps in (0, 1, 50, 199, 200, 1000):
                s = plan_schedule(epochs, spe, min_steps, 5, 50, 64)
                assert s["steps"] >= min_steps and s["steps"] == s["epochs"] * spe
                assert s["epochs"] % s["eval_every_epochs"] == 0 and s["epochs"] // s["eval_every_epochs"] <= epochs
                assert s["epochs"] >= epochs and (s["reason"] is None) == (s["epochs"] == epochs)
                # no more steps than the budget needs, give or take one cadence of epochs
                assert s["reason"] is None or s["epochs"] < math.ceil(min_steps / spe) + s["eval_every_epochs"]


def test_raised_schedule_is_recorded_logged_and_evaluated_at_the_preset_cadence(color_data, tmp_path):
    res, lines = train(color_data, tmp_path, per_class=10, target_accuracy=0.01,
                       overrides={"epochs": 3, "batch_size": 8, "min_steps": 20})
    # 24 training images at batch 8: 3 steps an epoch; 20 steps need 7 epochs → cadence 3, 9 epochs
    assert res.schedule.model_dump() == {
        "epochs": 9, "steps_per_epoch": 3, "steps": 27, "min_steps": 20, "eval_every_epochs": 3,
        "reason": "--per-class 10: 24 training images make 3 steps per epoch at batch size 8; epochs raised from 3 "
                  "to 9 to reach min_steps 20, evaluated every 3"}
    assert res.hyperparameters["epochs"] == 3 and res.epochs_completed == 9  # asked for vs run
    epochs = read_metrics(tmp_path)
    assert [e["epoch"] for e in epochs] == list(range(1, 10))
    assert [e["epoch"] for e in epochs if "test_accuracy" in e] == [3, 6, 9]
    assert [e["epoch"] for e in epochs if "val_accuracy" in e] == [3, 6, 9]
    assert res.test_accuracy == epochs[-1]["test_accuracy"] and res.val_accuracy == epochs[-1]["val_accuracy"]
    assert res.epoch_to_target == 3 and res.seconds.to_target == pytest.approx(epochs[2]["train_seconds"], abs=1e-5)
    assert sum(res.seconds.per_epoch) == pytest.approx(res.seconds.train, abs=1e-4)
    assert f"Schedule: {res.schedule.reason} (27 steps)" in lines
    figures = loglines.parse("\n".join(lines))
    assert figures["optimizer_steps"] == [27] and len(figures["test_accuracy"]) == 3 + 1  # 3 epochs + the final


@pytest.mark.slow
def test_accuracy_rises_with_images_per_class_under_the_step_budget(digits_data, tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two spin-waiting threads on a shared 2-core machine take 5× longer
    try:
        accuracy = _accuracy_by_images_per_class(digits_data, tmp_path)
    finally:
        torch.set_num_threads(threads)
    print("test accuracy by images per class:", accuracy)
    assert accuracy[5] < accuracy[20] < accuracy[80], accuracy
    assert accuracy[20] > 0.6, accuracy  # the starved 20-per-class runs sat at 0.21–0.30 (chance is 0.10)


def _accuracy_by_images_per_class(digits_data: Path, tmp_path: Path) -> dict[int, float]:
    # 16 px (digits are 8×8 on disk) keeps three 200-step runs near half a minute on 2 cores
    accuracy = {}
    for per_class in (5, 20, 80):
        res, _ = train(digits_data, tmp_path / str(per_class), per_class=per_class, seed=0, image_size=16)
        assert res.schedule.min_steps == 200 and res.schedule.steps >= 200  # the preset's budget, met
        assert res.epochs_completed == res.schedule.epochs > res.hyperparameters["epochs"]
        accuracy[per_class] = res.test_accuracy
    return accuracy
