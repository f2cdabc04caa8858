"""An empty MLflow store for tests that each need a store of their own: creating and migrating a new sqlite
store costs MLflow about a second of CPU, so the empty one is made once per pytest session (tests/_runs.py
session_folder: once however many modules and xdist workers ask) and each test works in a copy."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _runs import session_folder


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """The empty store's file (read only: copy it)."""
    from mlflow.tracking import MlflowClient

    def make(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()

    return session_folder(tmp_path_factory, "empty-mlflow-store", make) / "mlflow.db"


@pytest.fixture
def here(tmp_path, monkeypatch, empty_store) -> Path:
    """The test's folder as the working folder, with a copy of the empty store as its MLflow store."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return tmp_path
