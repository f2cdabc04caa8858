"""Databricks Model Serving against the loopback workspace: the model registered as a Unity Catalog model version
by MLflow's own UC registry client (its request bodies parsed as MLflow's protobuf messages, its files written
through the Files API), an endpoint created through databricks-sdk and served by MLflow's scoring server,
load-tested through its REST route with the token, and everything deleted — also on an error and on Ctrl-C;
bad settings are one line, exit 2, and create nothing."""
from __future__ import annotations

import pytest
from _serving import trained_model
from dbx_workspace import cli_refusal, workspace, workspace_server  # noqa: F401 - fixtures

from platforms.bench import loadtest
from platforms.bench.load_payloads import load_images, make_payloads
from platforms.core.load_runner import LoadSettings
from platforms.bench.endpoint import run_endpoint_benchmark
from platforms.errors import UserError


server = workspace_server("main.default.files")
pytestmark = pytest.mark.xdist_group("databricks-endpoint")  # model_dir trains a model once


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, digits_data):
    return trained_model(tmp_path_factory, digits_data)[0]


def nothing_left(server) -> None:
    assert server.endpoints == {} and server.models == {}
    assert [f for f in server.files if f.startswith("/Models/")] == []


def test_deploy_load_delete(workspace, model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = LoadSettings(requests=24, concurrency=3, warmup=2)
    payloads = make_payloads(load_images([]), "image", 1)
    attached = {}

    def say(text):
        if text.startswith("endpoint pb-serve serves"):  # while it is up: `platbench load databricks:pb-serve`
            target = loadtest.parse_target("databricks:pb-serve")
            attached["run"] = loadtest.run_load(target, make_payloads(load_images([]), "json", 2),
                                                LoadSettings(requests=4, concurrency=2, warmup=0))

    result = run_endpoint_benchmark("databricks", model_dir, {"name": "pb-serve", "poll_seconds": "0.5"}, s,
                                    payloads, "image", say=say)
    assert [x.error for x in attached["run"].samples] == [None] * 4  # attached by name, JSON with 2 images each
    summary = result.load["summary"]
    # every request answered {"predictions": [...]} (the load tool checks one per image) through the REST route
    assert summary["ok"] == 24 and summary["failed"] == 0
    invocations = [p for m, p in workspace.requests if p == "/serving-endpoints/pb-serve/invocations"]
    assert len(invocations) >= 30  # warm-up, measured and attached requests all went through the workspace's route
    assert result.deleted == ["serving endpoint pb-serve", "model version main.default.platbench/1",
                              "registered model main.default.platbench"]
    assert result.timings["create_to_in_service_s"] > 0 and result.timings["upload_s"] > 0
    nothing_left(workspace)
    # registered through MLflow's UC client: created, its files uploaded with the Files API, finalized
    paths = [p for _, p in workspace.requests]
    assert "/api/2.0/mlflow/unity-catalog/model-versions/create" in paths
    assert "/api/2.0/mlflow/unity-catalog/model-versions/finalize" in paths


def test_an_endpoint_that_never_serves_is_deleted_with_its_model(workspace, model_dir):
    from platforms.databricks.endpoint import DatabricksEndpoint

    ep = DatabricksEndpoint({"name": "pb-slow", "ready_timeout": "0.5", "poll_seconds": "0.2"})
    ep.check()
    with pytest.raises(UserError, match="not READY after 0.5 s"):
        try:
            ep.deploy(model_dir)
        finally:
            deleted = ep.teardown()
    assert deleted[0] == "serving endpoint pb-slow" and len(deleted) == 3
    nothing_left(workspace)


def test_ctrl_c_while_deploying_deletes_what_was_created(workspace, model_dir):
    from platforms.databricks.endpoint import DatabricksEndpoint

    def press(text):
        if text.startswith("registered"):
            raise KeyboardInterrupt

    ep = DatabricksEndpoint({"name": "pb-int"})
    ep.check()
    with pytest.raises(KeyboardInterrupt):
        try:
            ep.deploy(model_dir, press)
        finally:
            deleted = ep.teardown()
    assert deleted == ["model version main.default.platbench/1", "registered model main.default.platbench"]
    nothing_left(workspace)


def test_bad_settings_are_one_line_exit_2_and_create_nothing(workspace, model_dir, tmp_path, monkeypatch, capsys):
    seen = len(workspace.requests)
    monkeypatch.chdir(tmp_path)
    line = cli_refusal(capsys, monkeypatch, "endpoint", "databricks", "--model-dir", str(model_dir), "--no-track",
                       "--set", "workload_size=Huge")
    assert "workload_size" in line
    assert workspace.requests[seen:] == []  # refused before the SDK was even created


@pytest.mark.parametrize("settings, message", [
    ({"catalog": "no.dots"}, "catalog"),
    ({"schema": "missing"}, "schema main.missing"),
])
def test_a_bad_catalog_or_schema_is_refused_before_anything_is_created(workspace, model_dir, settings, message):
    seen = len(workspace.requests)
    s = LoadSettings(requests=1, concurrency=1, warmup=0)
    with pytest.raises(UserError, match=message):
        run_endpoint_benchmark("databricks", model_dir, settings, s, make_payloads(
            load_images([]), "image", 1), "image", track=False)
    nothing_left(workspace)
    assert not [p for m, p in workspace.requests[seen:] if m in ("POST", "PUT", "DELETE")]
