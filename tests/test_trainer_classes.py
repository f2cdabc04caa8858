"""A dataset of fewer than two classes is no classification task: it trained to test accuracy 1.0000 and was
recorded FINISHED (issue 25). It is refused in one line before anything is created — no run folder, no
MLflow store, no cache entry — at `python -m trainer train` and at `platbench launch local`."""
from __future__ import annotations

from pathlib import Path

import pytest
from _cli import trainer_here
from conftest import assert_one_line_error, write_folder_dataset
from stand_in.cli import platbench_here

from trainer.data import layout
from trainer.errors import DataError


@pytest.fixture(scope="module")
def one_class(tmp_path_factory) -> Path:
    root = write_folder_dataset(tmp_path_factory.mktemp("one") / "one", train_per_class=4, test_per_class=2)
    for split in ("train", "test"):
        for name in ("green", "red"):
            for f in (root / split / name).iterdir():
                f.unlink()
            (root / split / name).rmdir()
    return root  # train/blue and test/blue only


def _entries(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_scan_refuses_one_class(one_class):
    with pytest.raises(DataError, match=r"^1 class \(blue\) in .*: a classifier needs at least 2 classes"):
        layout.scan_folder(one_class)


def test_trainer_train_refuses_one_class_creating_nothing(one_class, tmp_path):
    env = {"PLATBENCH_CACHE": str(tmp_path / "cache")}
    proc = trainer_here("train", "--data", str(one_class), "--out", str(tmp_path / "out"), "--device", "cpu", env=env)
    assert_one_line_error(proc)
    assert "1 class (blue)" in proc.stderr and "at least 2 classes" in proc.stderr
    assert _entries(tmp_path) == set()  # no output folder, no cache


def test_launch_local_refuses_one_class_creating_nothing(one_class, tmp_path):
    env = {"PLATBENCH_CACHE": str(tmp_path / "cache")}
    proc = platbench_here("launch", "local", "--data", str(one_class), cwd=tmp_path, env=env, drop=("MLFLOW_",))
    assert_one_line_error(proc)
    assert "1 class (blue)" in proc.stderr and "at least 2 classes" in proc.stderr
    assert _entries(tmp_path) == set()  # no runs/ folder, no mlflow.db, no cache
