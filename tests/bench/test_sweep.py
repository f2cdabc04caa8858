"""`platbench sweep` through the real CLI on this machine (model small, bundled digits data; the cells run the
stand-in trainer, tests/_sweep.py says why): one parent run, nested children, bounded concurrency, and resuming
after the coordinator is killed outright (finished cells skipped, the still-running worker re-attached, the rest
launched, nothing run twice). Ctrl-C is passed on to the running job, which is marked killed and resumable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import VENV_BIN, assert_one_line_error, platbench

from mlflow.tracking import MlflowClient

from _sweep import SWEEP_ARGS, SWEEP_NAME, swept  # shared with the report tests
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, digits_data) -> Path:
    return swept(tmp_path_factory, digits_data)


def _runs(cwd: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("platbench")
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_one_parent_run_and_four_nested_children(sweep_dir):
    runs = _runs(sweep_dir)
    parents = [r for r in runs if r.data.tags.get("platbench.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["platbench.sweep"] == SWEEP_NAME and parent.info.status == "FINISHED"
    assert parent.data.tags["platbench.status"] == "finished" and parent.data.tags["platbench.sweep_sessions"] == "2"
    children = [r for r in runs if r is not parent]
    assert len(children) == 4  # the cell the killed coordinator left running was not run twice
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(r.data.tags["platbench.sweep_cell"] for r in children) == [
        "local/small/pc20/seed0", "local/small/pc20/seed1", "local/small/pc5/seed0", "local/small/pc5/seed1"]
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["platbench.status"] == "finished"
        assert r.data.tags["platbench.sweep"] == SWEEP_NAME
        cell = r.data.tags["platbench.sweep_cell"]
        assert r.data.params["per_class"] == cell.split("/")[2][2:] and r.data.params["seed"] == cell[-1]
        assert r.data.params["epochs"] == "1" and r.data.params["model"] == "small"


def test_resume_skips_finished_and_reattaches_to_the_running_worker(sweep_dir):
    doc = json.loads((sweep_dir / "session2.json").read_text())
    how = {c["cell"]: c["how"] for c in doc["cells"]}
    assert how["local/small/pc5/seed0"] == "skipped"
    assert how["local/small/pc5/seed1"] == "reattached"
    assert how["local/small/pc20/seed0"] == how["local/small/pc20/seed1"] == "launched"
    assert all(c["status"] == "finished" and c["run_id"] for c in doc["cells"])
    reattached = next(c for c in doc["cells"] if c["how"] == "reattached")
    run = MlflowClient(tracking_uri=f"sqlite:///{sweep_dir / 'mlflow.db'}").get_run(reattached["run_id"])
    assert run.data.tags["platbench.pid"] == (sweep_dir / "worker-pid").read_text()  # the first session's worker


def test_local_runs_one_at_a_time(sweep_dir):
    children = [r for r in _runs(sweep_dir) if r.data.tags.get("platbench.kind") != "sweep"]
    spans = sorted((r.info.start_time, r.info.end_time) for r in children)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end - 1000, spans  # no two local runs overlap (ms; 1 s of MLflow bookkeeping slack)


def test_a_finished_sweep_has_nothing_left_to_do(sweep_dir):
    before = len(_runs(sweep_dir))
    data = (sweep_dir / "data").read_text()  # the sweep's dataset path (the sweep may be another worker's)
    # in this process (tests/stand_in/cli.py); sweep's subprocess form: test_bad_input_is_one_line's first
    proc = platbench_here("sweep", "--data", data, *SWEEP_ARGS, "--dry-run", cwd=sweep_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("skip (finished)") == 4 and "  launch " not in proc.stdout
    assert "local 1 (one device" in proc.stdout and "Plan for local" in proc.stdout
    assert len(_runs(sweep_dir)) == before  # a dry run writes nothing


def test_ctrl_c_is_passed_on_and_the_job_marked_killed(stand_in, tmp_path):
    """The cell's worker runs the stand-in trainer (tests/stand_in; it replays every training image: 'all')."""
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "sweep", "--data", str(stand_in.data), "--per-class", "all",
                             "--seeds", "0", "--epochs", "200", "--hp", "batch_size=8", "--name", "stop"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **stand_in.env(epoch_seconds=0.5)})
    ckpt = tmp_path / "runs/sweeps/stop/local-small-pcall-seed0/checkpoints/last.ckpt"
    deadline = time.time() + 600
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert ckpt.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "passing it on" in out + err
    runs = _runs(tmp_path)
    parent = next(r for r in runs if r.data.tags.get("platbench.kind") == "sweep")
    child = next(r for r in runs if r.data.tags.get("platbench.kind") != "sweep")
    assert child.info.status == "KILLED" and child.data.tags["platbench.status"] == "killed"
    assert parent.info.status == "KILLED" and parent.data.tags["platbench.status"] == "killed"
    assert ckpt.exists()  # what a sweep started again resumes from


# ------------------------------------------------------------------------------------------ no training
def test_matrix_order_names_and_limits():
    from platforms.bench import sweep

    spec = sweep.SweepSpec(data="/d", platforms=["local", "sagemaker"], models=["small", "fast"],
                           per_class=[20, None, 5], seeds=[0, 1])
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 3 * 2 and len({c.key for c in cells}) == len(cells)
    assert [c.per_class for c in cells[:8]] == [5] * 8 and cells[-1].per_class is None
    assert cells[0].key == "local/small/pc5/seed0" and cells[1].platform == "sagemaker"
    assert cells[-1].key == "sagemaker/fast/pcall/seed1" and cells[-1].dirname == "sagemaker-fast-pcall-seed1"
    assert spec.default_name() == sweep.SweepSpec(**{**spec.__dict__}).default_name()
    assert spec.default_name() != sweep.SweepSpec(**{**spec.__dict__, "epochs": 3}).default_name()
    assert sweep.parse_concurrency([], ["local", "sagemaker"]) == (4, {"local": 1})
    assert sweep.parse_concurrency(["8", "local=2"], ["local"]) == (8, {"local": 2})
    assert sweep.parse_list(["0,1", "2", "1"], "--seeds", int) == [0, 1, 2]
    assert sweep.parse_list(["5,all"], "--per-class", sweep.per_class_value) == [5, None]
    assert sweep.parse_settings(["sagemaker:spot=true", "region=eu-west-1"], ["local", "sagemaker"]) == {
        "sagemaker": {"spot": "true", "region": "eu-west-1"}}
    mixed = sweep.SweepSpec(data="/d", platforms=["local", "sagemaker", "vertex"], models=["small"], per_class=[5],
                            seeds=[0], settings={"sagemaker": {"local": "true"}})
    co = sweep.Coordinator(mixed, "n", Path("o"), 4, {"local": 1}, None, quiet=True)
    assert co.pool("local") == co.pool("sagemaker") == "local" and co.pool("vertex") == "vertex"  # this machine: one


@pytest.mark.parametrize("args, words", [
    (["--platform", "nowhere"], "unknown platform"),
    (["--per-class", "1"], "--per-class"),
    (["--seeds", "x"], "--seeds"),
    (["--concurrency", "0"], "at least 1"),
    (["--concurrency", "vertex=2"], "not one of this sweep's platforms"),
    (["--set", "region=x"], "say which platform"),
    (["--name", "bad name"], "--name"),
    (["--model", "huge"], "unknown model"),
])
def test_bad_input_is_one_line(args, words, digits_data, tmp_path):
    # in this process (tests/stand_in/cli.py), but for the first: sweep's one refusal through the console script
    run = platbench if args == ["--platform", "nowhere"] else platbench_here
    proc = run("sweep", "--data", str(digits_data), "--epochs", "1", *args, cwd=tmp_path)
    assert_one_line_error(proc)
    assert words in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_name_cannot_be_reused_for_a_different_sweep(digits_data, tmp_path, monkeypatch):
    from platforms.bench import sweep
    from platforms.core import tracking
    from platforms.errors import UserError
    from rich.console import Console

    monkeypatch.chdir(tmp_path)
    spec = sweep.SweepSpec(data=str(digits_data), platforms=["local"], models=["small"], per_class=[5], seeds=[0])
    c = tracking.client()
    exp = tracking.experiment_id(c)
    co = sweep.Coordinator(spec, "same", tmp_path / "out", 1, {"local": 1}, Console(), quiet=True)
    co.open_parent(c, exp).end("FINISHED")
    grown = sweep.SweepSpec(**{**spec.__dict__, "seeds": [0, 1]})  # more seeds: the same sweep, grown
    sweep.Coordinator(grown, "same", tmp_path / "out", 1, {}, Console(), quiet=True).open_parent(c, exp).end("FINISHED")
    other = sweep.SweepSpec(**{**spec.__dict__, "epochs": 5})
    with pytest.raises(UserError, match="different definition.*epochs"):
        sweep.Coordinator(other, "same", tmp_path / "out", 1, {}, Console(), quiet=True).open_parent(c, exp)


def test_default_seeds_are_as_many_as_the_tests_need_to_call_a_difference(digits_data, tmp_path):
    from platforms.core.stats import can_call

    for platforms, seeds in (("local", 4), ("local,sagemaker,vertex", 5)):
        proc = platbench_here("sweep", "--data", str(digits_data), "--platform", platforms, "--per-class", "5",
                              "--dry-run", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert f"× {seeds} seed(s) [{', '.join(map(str, range(seeds)))}]" in proc.stdout, proc.stdout
        groups = max(2, len(platforms.split(",")))
        assert can_call([seeds] * groups, 0.05) and not can_call([seeds - 1] * groups, 0.05)
    assert not (tmp_path / "mlflow.db").exists()
