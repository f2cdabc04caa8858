"""`platbench reproduce STUDY`: the plan (--dry-run, no credentials), one-line refusals that leave nothing behind,
and Nyckel's protocol end to end on this machine — the stand-in trainer (tests/stand_in) for the training, the
trainer's real server for the request plans (the figures on the page that come from serving, not training)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from _markdown import table_rows
import yaml
from conftest import assert_one_line_error
from mlflow.tracking import MlflowClient
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here

from platforms.reproduce import protocol

NO_CREDENTIALS = ("AWS_", "AZURE_", "GOOGLE_", "DATABRICKS_", "APOLO_", "NYCKEL_")


@pytest.mark.parametrize("study", ["neuromation", "nyckel", "jumpstart", "aws-azure", "roboflow"])
def test_dry_run_on_cloud_platforms_needs_no_credentials_and_creates_nothing(study, tmp_path, digits_data):
    proc = platbench_here("reproduce", study, "--dry-run", "--platform", "local,sagemaker,azureml", "--data",
                          str(digits_data), cwd=tmp_path, drop=NO_CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"reproduce {study}: ") and "nothing is created" in out
    proto = protocol.load(study)
    runs = len(proto.local.models or proto.recipe.models) * max(1, len(proto.recipe.lr_factors)) * 3 \
        * max(1, len(proto.local.ladder)) * len(proto.local.seeds)
    assert f"{runs} training run(s)" in out
    # priced where a price is known, nothing billed here, each cloud run with its USD
    assert "runs on this machine: nothing billed" in out and re.search(r"sagemaker/\S+ .*USD/h", out)
    assert f"total for {runs} runs: " in out  # runs, not the plan's merged lines (one per platform and group)
    for step in proto.not_built:
        assert f"not built: {step}" in out
    if proto.requests:  # where the request plans run: this machine's targets, each cloud's endpoint with its price
        from trainer.device import driver_version

        for target in proto.targets:
            gpu_skipped = target == "torch-gpu" and not driver_version()
            assert f"target local/{target}: " + ("skipped — no NVIDIA driver" if gpu_skipped else "") in out
        assert re.search(r"target sagemaker/endpoint: .*\(instance_type ml\.m5\.large\).*\n    Cost plan: the endpoint at 0\.1150 "
                         r"USD/h .*\(per deployment", out)
        assert re.search(r"target azureml/endpoint: .*\n    Cost plan: the endpoint at \d+\.\d+ USD/h", out)
        assert "on local/torch-cpu" in out and "sagemaker/endpoint, azureml/endpoint" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_shows_the_studys_request_plans_and_horizon(tmp_path):
    # without --data: the bundled digits, named but not written here
    out = platbench_here("reproduce", "nyckel", "--dry-run", cwd=tmp_path).stdout
    assert "data the bundled digits (runs/reproduce/data/digits when run)" in out
    assert "requests latency: single invokes, one at a time" in out and "0 retries" in out
    assert "requests thousand_at_10: 1,000 requests over 10 concurrent connections" in out
    assert "counted as failed, not retried" in out
    assert "cost horizon (the study's): hour 1 h, day 24 h, month 730.5 h, year 8760 h" in out
    assert list(tmp_path.iterdir()) == []
    full = platbench_here("reproduce", "nyckel", "--dry-run", "--full", "--data", str(tmp_path), cwd=tmp_path).stdout
    assert "5 images/class [5, 20, 80, 320, 1280]" in full and "1000 requests at concurrency 10" in full


@pytest.mark.parametrize("args, words", [
    (["atlantis"], "unknown study 'atlantis'; choose one of: aws-azure, jumpstart, neuromation, nyckel, roboflow"),
    (["nyckel", "--platform", "nowhere"], "nowhere"),
    (["nyckel", "--data", "no/such/folder"], "--data no/such/folder: no such folder"),
    (["nyckel", "--max-usd", "-1"], "--max-usd"),
    (["nyckel", "--platform", "sagemaker", "--set", "sagemaker:colour=blue", "--dry-run"],
     "--set sagemaker:colour: neither sagemaker's training settings nor its endpoint's take 'colour'"),
    # the endpoint is checked before any training starts, not after it
    (["nyckel", "--platform", "local,sagemaker", "--set", "sagemaker:endpoint.startup_timeout=5"],
     "sagemaker endpoint: startup_timeout"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(args, words, tmp_path):
    proc = platbench_here("reproduce", *args, cwd=tmp_path)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and words in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_broken_protocol_is_one_line(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    doc = yaml.safe_load((protocol.studies_dir() / "nyckel.yaml").read_text())
    doc["figures"][0]["quantity"] = "happiness"
    (studies / "nyckel.yaml").write_text(yaml.safe_dump(doc))
    proc = platbench_here("reproduce", "nyckel", "--dry-run", cwd=tmp_path, env={"PLATBENCH_STUDIES": str(studies)})
    assert_one_line_error(proc)
    assert "unknown quantity happiness" in proc.stderr


def small_nyckel(folder: Path) -> Path:
    """Nyckel's protocol with every image (the stand-in replays one full-data run) and few requests."""
    doc = yaml.safe_load((protocol.studies_dir() / "nyckel.yaml").read_text())
    doc["local"] = {"ladder": [], "epochs": 2, "seeds": [0], "requests_scale": 0.03}
    folder.mkdir()
    (folder / "nyckel.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    return folder


def test_nyckel_end_to_end_runs_tags_and_renders_its_page(stand_in, tmp_path):
    studies = small_nyckel(tmp_path / "studies")
    # in this process; the sweep's worker and the server are the subprocesses the command starts (the stand-in's)
    env = {**stand_in.env(), "PLATBENCH_STUDIES": str(studies)}
    proc = platbench_here("reproduce", "nyckel", "--data", str(stand_in.data), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduce nyckel: wrote runs/reproduce/nyckel/study-nyckel.md" in proc.stdout
    # every run in MLflow tagged with the study: the sweep's parent and cell, and one load run per request plan
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert {r.data.tags.get("platbench.study") for r in runs} == {"nyckel"}
    plans = {r.data.tags.get("platbench.study_plan"): r for r in runs if r.data.tags.get("platbench.kind") == "load"}
    assert set(plans) == {"latency", "thousand_at_10"}
    # the study's request plans as it ran them: single invokes and 10 concurrent, no retries
    assert plans["latency"].data.params["concurrency"] == "1" and plans["latency"].data.params["retries"] == "0"
    assert plans["thousand_at_10"].data.params["concurrency"] == "10"
    assert plans["thousand_at_10"].data.params["requests"] == "30"

    md = (tmp_path / "runs" / "reproduce" / "nyckel" / "study-nyckel.md").read_text()
    html = (tmp_path / "runs" / "reproduce" / "nyckel" / "study-nyckel.html").read_text()
    assert 'id="study-nyckel"' in html and "Reproduced study" in html
    rows = {(r[0], r[1]): r for r in table_rows(md, "Quantity")}
    # the published figure beside platbench's, same unit, n, and what still differs in one line
    lat = rows[("median latency, single invokes", "AWS Rekognition Custom Labels")]
    p50 = plans["latency"].data.metrics["load_latency_p50_ms"]
    assert lat[2] == "167 ms" and lat[3] == f"local · small: {fmt(p50)} ms (n = 1)"
    assert "platbench ran on local, not on AWS Rekognition Custom Labels" in lat[4]
    assert lat[5] == '"Latency and Throughput", median response time'
    thousand = rows[("seconds for 1,000 requests at 10 concurrent", "Nyckel")]
    assert "scaled to 1,000 from 30 requests" in thousand[4]
    # their month beside ours: the hours their figure implies
    month = rows[("endpoint cost per month", "AWS Rekognition Custom Labels")]
    assert month[2] == "2,922 USD/month" and "their figure implies 730.50 h" in month[4]
    assert "no priced endpoint run of rekognition" in month[4]
    # what cannot be measured here, with why
    unmeasured = [r[0] for r in table_rows(md, "Not measured here")]
    assert "median latency, single invokes — Hugging Face AutoTrain" in unmeasured
    assert any(u.startswith("developer experience") for u in unmeasured)

    # the report has the same page as a section of its own
    rep = platbench_here("report", "--out", "report", cwd=tmp_path, env=env)
    assert rep.returncode == 0, rep.stderr
    report_md = (tmp_path / "report" / "report.md").read_text()
    assert '<a id="study-nyckel"></a>' in report_md and "| median latency, single invokes | AWS Rekognition Custom Labels | 167 ms |" in report_md


def fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.4g}"


def test_neuromation_real_tiny_run_trains_by_the_studys_recipe(digits_data, tmp_path):
    """The one real training of these tests (the bundled digits, one epoch): the recipe's settings reach the
    trainer and are what it recorded — no augmentation, a constant learning rate, no smoothing, no TTA."""
    studies = tmp_path / "studies"
    studies.mkdir()
    doc = yaml.safe_load((protocol.studies_dir() / "neuromation.yaml").read_text())
    doc["local"]["epochs"] = 1
    (studies / "neuromation.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    proc = platbench_here("reproduce", "neuromation", "--data", str(digits_data), cwd=tmp_path,
                          env={"PLATBENCH_STUDIES": str(studies)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    training = [r for r in runs if r.data.tags.get("platbench.kind") is None]
    assert len(training) == 1 and training[0].data.tags["platbench.study"] == "neuromation"
    hp = training[0].data.params
    assert (hp["hp.augment"], hp["hp.lr_schedule"], float(hp["hp.label_smoothing"]), hp["hp.tta"]) == (
        "none", "constant", 0.0, "0")
    md = (tmp_path / "runs" / "reproduce" / "neuromation" / "study-neuromation.md").read_text()
    row = table_rows(md, "Platform")[0]
    acc = 100 * training[0].data.metrics["final_test_accuracy"]
    assert row[:3] == ["local", "small", "all"] and row[3] == f"{acc:.2f} % (n = 1)"


def test_the_local_versions_own_settings_reach_each_model_and_not_the_full_study(tmp_path):
    """Roboflow's small version trains at batch 64 (a pass of the digits is 23 steps, not 2 at fast's 1,024), with
    resnet18's lr scaled to that batch; `--full` keeps the study's recipe as written."""
    from platforms.reproduce import plan as plan_mod

    proto = protocol.load("roboflow")
    local = {g.model: g.hp for g in plan_mod.make(proto, ["local"], tmp_path).groups}
    assert local == {"fast": {"batch_size": "64"}, "resnet18": {"batch_size": "64", "lr": "0.05"}}
    full = {g.model: g.hp for g in plan_mod.make(proto, ["local"], tmp_path, full=True).groups}
    assert full == {"fast": {}, "resnet18": {}}
