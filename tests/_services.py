"""Shared by the AutoML service tests (tests/rekognition, tests/nyckel, tests/bench/test_bench_sweep_service.py):
one launch the way `platbench launch SERVICE` makes it, and one working folder per module (an MLflow store is
slow to create)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest


class Faults:
    """Mixin for the loopback service servers (ThreadingHTTPServer): the test tells a route or operation to
    fail `times` times (`fail`), the handler takes the fault when that request comes (`take_fault`)."""
    faults: list
    lock: threading.Lock

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def fail(self, where: str, what: str, times: int) -> None:
        with self.lock:
            self.faults.append([where, what, times])

    def take_fault(self, where: str):
        with self.lock:
            for f in self.faults:
                if f[0] == where and f[2] > 0:
                    f[2] -= 1
                    return f[1]
        return None


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
