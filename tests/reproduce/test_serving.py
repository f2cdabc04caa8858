"""`platbench reproduce`'s request plans at each deployment target (platforms/reproduce/execute.py): a study's plans
against the trained model on this machine exported to ONNX and served by onnxruntime (`trainer serve --runtime
onnx`), and on a SageMaker endpoint (moto's control plane, the real `serve` behind the loopback runtime, as
tests/sagemaker/test_sagemaker_endpoint.py has them) deployed once, every plan run through the SDK, then deleted.
The trained runs are logged here as the sweep logs them (the model is the session's digits run): what is under
test is the serving, not the training."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest_clouds import aws, moto_server  # noqa: F401 (fixtures)
from _endpoint_servers import model, container, sagemaker_env, _nothing_left, _sent  # noqa: F401 (fixtures)

from platforms.errors import UserError
from platforms.reproduce import protocol

# with the serving fixtures of tests/sagemaker/test_sagemaker_endpoint.py: one model, one `serve`, one worker
pytestmark = pytest.mark.xdist_group("sagemaker-endpoint")


def small_roboflow(targets: list[str]) -> protocol.Protocol:
    """Roboflow's protocol on the session's `small` model, at `targets`, with the fewest requests (10 a plan)."""
    proto = protocol.load("roboflow")
    local = proto.local.model_copy(update={"models": ["small"], "requests_scale": 0.01})
    return proto.model_copy(update={"local": local, "targets": targets})


def log_trained(plan, platform: str, model_dir: Path) -> None:
    """A finished run of the plan's group on `platform`, as the sweep logs a cell: its sweep and its model."""
    from platforms.core import tracking
    from platforms.core.tracking import Tag

    with tracking.tracked_run(f"{platform}-small", {"model": "small", "seed": 0, "per_class": None},
                              {Tag.PLATFORM: platform, Tag.MODEL: "small",
                               Tag.SWEEP: plan.sweep_name(plan.groups[0])}) as run:
        run.client.log_artifacts(run.run_id, str(model_dir), "model")
        run.tags({Tag.STATUS: "finished"})
        run.end("FINISHED")


def test_request_plans_on_onnx_here_and_on_a_sagemaker_endpoint_tagged_apart_and_deleted(
        sagemaker_env, model, digits_data, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from platforms.report import data
    from platforms.report.sections import Report
    from platforms.reproduce import execute, plan as plan_mod

    proxy, runtime, settings = sagemaker_env
    monkeypatch.chdir(tmp_path)
    # the account's settings go to training and endpoint alike; endpoint.KEY to the endpoint alone
    set_ = {"sagemaker": {**settings, "endpoint.name": "pb-reproduce"}}
    plan = plan_mod.make(small_roboflow(["onnx-cpu"]), ["local", "sagemaker"], digits_data, settings=set_)
    assert "name" not in plan.settings["sagemaker"] and plan.endpoint_settings["sagemaker"]["name"] == "pb-reproduce"
    assert plan.endpoint_settings["sagemaker"]["bucket"] == plan.settings["sagemaker"]["bucket"] == settings["bucket"]
    for platform in plan.platforms:
        log_trained(plan, platform, model)

    said: list[str] = []
    assert [s.label for s in plan.serving()] == ["local/onnx-cpu", "sagemaker/endpoint"]
    assert [execute.serve_and_load(plan, s, None, said.append) for s in plan.serving()] == [0, 0]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("platbench").experiment_id],
                              "tags.`platbench.kind` = 'load'")
    got = {(r.data.tags["platbench.platform"], r.data.tags["platbench.study_target"], r.data.tags["platbench.study_plan"]): r
           for r in runs}
    # every request plan at each target, recorded as `platbench load` records it, tagged with study, plan, target
    assert sorted(got) == [("local", "onnx-cpu", "parallel_100"), ("local", "onnx-cpu", "single"),
                           ("sagemaker", "endpoint", "parallel_100"), ("sagemaker", "endpoint", "single")]
    for (platform, _, rp), r in got.items():
        assert r.data.tags["platbench.study"] == "roboflow" and r.data.tags["platbench.status"] == "finished"
        assert r.data.metrics["load_ok"] == 10 and r.data.metrics["load_failed"] == 0
        assert r.data.params["concurrency"] == ("1" if rp == "single" else "100") and r.data.params["retries"] == "0"
    # this machine's server ran onnxruntime; the endpoint went through the SDK to the container
    assert got[("sagemaker", "endpoint", "single")].data.params["target"] == "sagemaker:pb-reproduce"
    assert got[("local", "onnx-cpu", "single")].data.params["target"].startswith("http://127.0.0.1:")
    assert runtime.calls >= 20
    # deployed once for both plans, then deleted with everything it needed
    assert len(_sent(proxy, "CreateEndpoint")) == 1
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-reproduce"]
    _nothing_left(settings["bucket"])
    assert any("deleting endpoint pb-reproduce" in line for line in said)

    # the page: a row per platform/target, never pooled
    section = Report(data.gather(None, latency=False)).study_section(plan.proto)
    serving = next(b for b in section.blocks if getattr(b, "id", None) == "study-roboflow-serving")
    assert [r[:3] for r in serving.rows] == [["local/onnx-cpu", "small", "single"],
                                            ["local/onnx-cpu", "small", "parallel_100"],
                                            ["sagemaker/endpoint", "small", "single"],
                                            ["sagemaker/endpoint", "small", "parallel_100"]]


def test_a_setting_neither_training_nor_the_endpoint_takes_is_one_line(digits_data):
    from platforms.reproduce import plan as plan_mod

    proto = small_roboflow(["torch-cpu"])
    with pytest.raises(UserError, match=r"^--set sagemaker:colour: neither sagemaker's training settings nor its "
                                        r"endpoint's take 'colour'; training: .*instance_type.*; endpoint "
                                        r"\(endpoint\.KEY\): .*startup_timeout"):
        plan_mod.make(proto, ["sagemaker"], digits_data, settings={"sagemaker": {"colour": "blue"}})
    with pytest.raises(UserError, match=r"^--set sagemaker:endpoint.spot: sagemaker's endpoint takes no 'spot'"):
        plan_mod.make(proto, ["sagemaker"], digits_data, settings={"sagemaker": {"endpoint.spot": "true"}})
    # a key the endpoint alone takes goes to the endpoint alone; endpoint.KEY wins over the shared key
    plan = plan_mod.make(proto, ["sagemaker"], digits_data, settings={"sagemaker": {
        "startup_timeout": "120", "instance_type": "ml.g5.xlarge", "endpoint.instance_type": "ml.c5.large"}})
    assert plan.settings == {"sagemaker": {"instance_type": "ml.g5.xlarge"}}
    assert plan.endpoint_settings == {"sagemaker": {"startup_timeout": "120", "instance_type": "ml.c5.large"}}


def test_aws_azures_pipeline_endpoint_takes_its_settings(digits_data):
    # aws-azure has no request plans, but its per-batch pipeline deploys an endpoint on each platform
    from platforms.reproduce import plan as plan_mod
    from platforms.reproduce import protocol

    plan = plan_mod.make(protocol.load("aws-azure"), ["sagemaker"], digits_data, settings={"sagemaker": {
        "region": "us-east-1", "endpoint.instance_type": "ml.c5.large"}})
    assert plan.endpoint_settings == {"sagemaker": {"region": "us-east-1", "instance_type": "ml.c5.large"}}


def test_no_endpoint_starts_once_the_budget_stopped_something(model, digits_data, tmp_path, monkeypatch):
    """One budget for the whole command: after the budget stopped a sweep's cell (or an endpoint), the request
    plans deploy nothing more; one line says so and the command's code is 1, as `platbench sweep`'s is."""
    from platforms.reproduce import execute, plan as plan_mod
    from platforms.reproduce.ledger import Ledger

    monkeypatch.chdir(tmp_path)
    plan = plan_mod.make(small_roboflow(["torch-cpu"]), ["sagemaker"], digits_data)
    log_trained(plan, "sagemaker", model)
    ledger = Ledger(5.0, spent=1.0, stopped="a cell of sweep x (MLflow run r)")
    said: list[str] = []
    (where,) = plan.serving()
    assert execute.serve_and_load(plan, where, ledger, said.append) == 1
    assert said == ["budget: serving small on sagemaker/endpoint not started, nor any later sweep, endpoint "
                    "or pipeline: the budget stopped a cell of sweep x (MLflow run r)"]
