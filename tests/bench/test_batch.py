"""Batch inference over a dataset folder (`platbench predict`): in-process from the model directory and
through the real `serve` on 127.0.0.1, seconds per MB, accuracy equal to the trainer's own test
evaluation, corrupt files counted, MLflow, bad input."""
from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error, platbench

from _serving import shared_server, trained_model
from stand_in.cli import platbench_here


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)


@pytest.fixture(scope="module")
def sagemaker(request, tmp_path_factory, trained):
    return shared_server(request, tmp_path_factory, "sagemaker", trained[0])


def test_local_batch_inference_reproduces_the_trainers_test_accuracy(trained, digits_data, tmp_path):
    model, out = trained
    results = json.loads((out / "results.json").read_text())
    # in this process (tests/stand_in/cli.py); predict's subprocess form: test_bad_input_is_a_one_line_error's first
    proc = platbench_here("predict", str(digits_data / "test"), "--model-dir", str(model), "--json", "--out",
                          str(tmp_path / "preds.jsonl"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["mode"] == "local" and report["images"] == results["dataset"]["test_count"] == 355
    assert report["errors"] == 0 and report["labelled"] == 355
    # same decode, same normalisation, same TTA as the trainer's test evaluation → the same accuracy
    assert report["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    assert report["mb"] > 0 and report["seconds_per_mb"] == pytest.approx(report["seconds"] / report["mb"])
    assert report["model_load_seconds"] > 0 and set(report["phases"]) == {"read_decode", "predict"}
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert len(rows) == 355 and rows[0]["path"] == "0/00000.png" and rows[0]["label"] == "0"
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(report["mlflow_run_id"])
    assert run.data.tags["platbench.kind"] == "batch_inference"
    assert run.data.metrics["batch_seconds_per_mib"] == pytest.approx(report["seconds_per_mb"])


@pytest.mark.parametrize("fmt, batch", [("image", 1), ("json", 16)])
def test_endpoint_batch_inference_agrees_with_local(sagemaker, trained, digits_data, fmt, batch):
    from platforms.bench.batch import run_endpoint, run_local

    folder = digits_data / "test"
    local, local_rows = run_local(folder, trained[0], batch_size=128, limit=120)
    remote, remote_rows = run_endpoint(folder, f"127.0.0.1:{sagemaker.port}", concurrency=4, fmt=fmt, batch=batch,
                                       limit=120)
    assert remote.images == local.images == 120 and remote.errors == 0
    assert [r["class"] for r in remote_rows] == [r["class"] for r in local_rows]
    assert remote.mb == local.mb and remote.seconds_per_mb > 0
    assert remote.accuracy == local.accuracy
    assert remote.model.startswith("small; classes=10")


def test_unreadable_files_are_counted_not_fatal(trained, digits_data, tmp_path):
    from platforms.bench.batch import run_local

    folder = tmp_path / "imgs" / "3"
    folder.mkdir(parents=True)
    (folder / "good.png").write_bytes((digits_data / "test" / "3" / "00000.png").read_bytes())
    (folder / "bad.png").write_bytes(b"not an image")
    report, rows = run_local(tmp_path / "imgs", trained[0], batch_size=8)
    assert report.images == 2 and report.errors == 1 and report.labelled == 1
    bad = next(r for r in rows if r["path"].endswith("bad.png"))
    assert "not a PNG or JPEG" in bad["error"]


@pytest.mark.parametrize("args, words", [
    ([], "exactly one of --model-dir"),
    (["--model-dir", "M", "--endpoint", "127.0.0.1:1"], "exactly one of --model-dir"),
    (["--model-dir", "/nonexistent/model"], "does not exist"),
])
def test_bad_input_is_a_one_line_error(digits_data, tmp_path, args, words):
    # in this process (tests/stand_in/cli.py), but for the first: predict's one run through the console script
    run = platbench if args == [] else platbench_here
    proc = run("predict", str(digits_data / "test"), *args, "--no-track", cwd=tmp_path)
    assert_one_line_error(proc)
    assert words in proc.stderr
