"""A run's condition (platforms/core/condition.py): what must be equal for two runs to be compared, read
from what MLflow holds. That import_outputs records the one the report computes: tests/test_report_condition.py
(it shares that test's MLflow store)."""
from __future__ import annotations

from platforms.core import condition
from platforms.core.tracking import Tag

BASE = ({Tag.DATASET_FINGERPRINT: "f" * 64, Tag.MODEL: "small", Tag.IMAGE_DIGEST: "repo-a@sha256:" + "1" * 64,
         Tag.SOFTWARE + "torch": "2.4.0"},
        {"per_class": "20", "seed": "0", "epochs": "3", "hp.epochs": "3", "hp.batch_size": "64", "hp.lr": "0.1",
         "hp.warmup_fraction": "0.2", "target_accuracy": "0.9"},
        {"optimizer_steps": 60.0, "world_size": 2.0})


def with_(tags=None, params=None, metrics=None):
    t, p, m = BASE
    return condition.of({**t, **(tags or {})}, {**p, **(params or {})}, {**m, **(metrics or {})})


def test_runs_that_differ_only_by_seed_share_a_condition():
    assert with_(params={"seed": "7"}) == with_() and with_(params={"seed": "7"}).key == with_().key


def test_each_field_that_changes_the_job_changes_the_condition_and_is_named():
    base = with_()
    changes = {"dataset": with_(tags={Tag.DATASET_FINGERPRINT: "e" * 64}),
               "model": with_(tags={Tag.MODEL: "fast"}),
               "per_class": with_(params={"per_class": "5"}),
               "epochs": with_(params={"hp.epochs": "10"}),
               "batch_size": with_(params={"hp.batch_size": "128"}),
               "lr": with_(params={"hp.lr": "0.2"}),
               "schedule": with_(metrics={"optimizer_steps": 200.0}),
               "target": with_(params={"target_accuracy": "0.95"}),
               "devices": with_(metrics={"world_size": 4.0}),
               "device": with_(tags={Tag.GPU: "NVIDIA H100"}),
               "image": with_(tags={Tag.IMAGE_DIGEST: "repo-a@sha256:" + "2" * 64}),
               "software": with_(tags={Tag.SOFTWARE + "torch": "2.5.0"})}
    assert set(changes) == set(condition.FIELDS)
    for field, other in changes.items():
        assert other.key != base.key and base.differing(other) == [field], field
    assert condition.varying([base, *changes.values()]) == list(condition.FIELDS)


def test_one_spelling_per_value():
    """The same image pulled from two registries, a count as param or metric, none recorded as 1 device."""
    assert with_(tags={Tag.IMAGE_DIGEST: "repo-b@sha256:" + "1" * 64}) == with_()
    assert with_(params={"per_class": "20.0"}) == with_()
    t, p, m = BASE
    one = condition.of(t, p, {"optimizer_steps": 60.0})
    assert one.get("devices") == "1" and one == with_(metrics={"world_size": 1.0})
    assert with_().without("devices") == with_(metrics={"world_size": 8.0}).without("devices")



def test_a_study_recipe_is_part_of_the_schedule_and_its_defaults_are_not():
    """A run without augmentation, with a constant lr, early stopping or ImageNet weights is not pooled with
    one on the preset's recipe (issue 26's options); one that states the defaults is the same as one recorded
    before the options existed (no hp.augment param at all)."""
    from trainer.models import Hyperparameters

    base = with_()
    for key, value in {"augment": "none", "lr_schedule": "constant", "early_stopping_patience": "3",
                       "pretrained": "1"}.items():
        other = with_(params={"hp." + key: value})
        assert base.differing(other) == ["schedule"], key
    defaults = {k: str(getattr(Hyperparameters, k)) for k in condition.RECIPE_DEFAULTS}
    assert condition.RECIPE_DEFAULTS == defaults
    assert with_(params={"hp." + k: v for k, v in defaults.items()}) == base
