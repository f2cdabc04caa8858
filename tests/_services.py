"""Shared by the AutoML service tests (tests/rekognition, tests/nyckel, tests/bench/test_bench_sweep_service.py):
one launch the way `platbench launch SERVICE` makes it, and one working folder per module (an MLflow store is
slow to create)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-runs")


def launch_service(name: str, settings: dict, data: Path, out: Path, per_class=8, **job):
    from platforms.core.api import Job
    from platforms.core.launch import launch
    from platforms.core.progress import JobProgress

    with JobProgress(enabled=False) as progress:
        return launch(name, Job(data=data, out=out, per_class=per_class, **job), settings, progress)


def killed_run(cwd: Path, platform: str):
    """The one run of `platform` marked killed in the working folder's MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id],
                                filter_string=f"tags.`platbench.status` = 'killed' and tags.`platbench.platform` = '{platform}'")
    return run
