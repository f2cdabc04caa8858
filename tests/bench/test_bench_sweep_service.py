"""`platbench sweep` across the per-class ladder with an AutoML service (platforms/bench/sweep.py →
platforms/bench/automl.py): each cell is a service run of its own (upload, train, deploy, evaluate, load,
delete), nested under the sweep's parent run; the preflight refuses a ladder step the data cannot give."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)
from rich.console import Console

from platforms.errors import UserError

sys.path.insert(0, str(Path(__file__).parents[1] / "rekognition"))
from rekognition_server import RekognitionServer


@pytest.fixture
def service(aws, monkeypatch, tmp_path):
    import boto3

    server = RekognitionServer(train_seconds=0.05)
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", server.url)
    monkeypatch.chdir(tmp_path)
    bucket = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=bucket)
    yield server, [f"bucket={bucket}", "poll_seconds=0.02", "requests=10", "concurrency=2", "warmup=0"]
    server.close()


def _sweep(data, per_class, settings, tmp_path, dry_run=False):
    from platforms.bench.sweep import cli_main

    return cli_main(data, ["rekognition"], [], per_class, ["0"], None, None, [], settings, ["2"], "svc",
                    tmp_path / "runs", dry_run, True, Console(stderr=True))


def test_the_default_ladder_is_planned_for_a_service(color_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _sweep(color_data, [], ["bucket=pb-bucket"], tmp_path, dry_run=True) == 0
    out = capsys.readouterr().out
    cells = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("launch")]
    assert cells == [f"rekognition/small/pc{n}/seed0" for n in (5, 20, 80, 320, 1280)]
    assert "Plan for rekognition" in out and "create-project-version" in out


def test_a_service_sweeps_the_per_class_ladder(service, color_data, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    server, settings = service
    with pytest.raises(UserError, match="fewer than --per-class 80"):  # the colours have 40 per class
        _sweep(color_data, ["5,80"], settings, tmp_path)
    assert server.calls == []
    assert _sweep(color_data, ["5,20"], settings, tmp_path) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in summary["cells"]] == ["finished", "finished"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("platbench").experiment_id],
                              filter_string="tags.`platbench.kind` = 'service'")
    assert sorted(r.data.tags["platbench.sweep_cell"] for r in runs) == ["rekognition/small/pc20/seed0",
                                                                       "rekognition/small/pc5/seed0"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {summary["parent_run_id"]}
    by_cell = {r.data.tags["platbench.sweep_cell"]: r.data.metrics for r in runs}
    # the nested subsets, 80/20: 5 → 4 + 1 per class, 20 → 16 + 4
    assert by_cell["rekognition/small/pc5/seed0"]["images_train"] == 12
    assert by_cell["rekognition/small/pc20/seed0"]["images_val"] == 12
    assert all(m["final_test_accuracy"] > 0.8 and m["images_test"] == 36 for m in by_cell.values())
    assert server.projects == {} and len(server.ops("CreateProject")) == 2
