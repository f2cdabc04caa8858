"""Issue 28, one id: a run has MLflow's id and its results.json's run_id (the trainer's); `check`, `serve` and
`--baseline` find it by either, or a unique prefix of either."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from launcher_rigs import kit_store  # noqa: F401 (fixture: the kit's per-worker MLflow store)
from platforms.core import tracking
from platforms.core.launch import find_run
from platforms.errors import UserError


def test_a_run_is_found_by_its_mlflow_id_or_its_results_run_id(kit_store):
    c = tracking.client()
    # platbench's own experiment (its artifacts beside the store): made here with MLflow's default, it would put
    # every later run's artifacts of this worker in ./mlruns of the checkout
    exp_id = tracking.experiment_id(c)
    results_id = "results-" + uuid.uuid4().hex  # unique in the worker's shared store
    run = c.create_run(exp_id, tags={tracking.Tag.RESULTS_RUN_ID: results_id})
    assert find_run(run.info.run_id, "run").info.run_id == run.info.run_id
    assert find_run(results_id, "run").info.run_id == run.info.run_id
    assert find_run(results_id[:20], "run").info.run_id == run.info.run_id
    with pytest.raises(UserError, match="matches no runs.*MLflow's or results.json's"):
        find_run("results-" + "0" * 32, "run")
