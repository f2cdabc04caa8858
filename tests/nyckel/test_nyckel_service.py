"""Nyckel end to end (platforms/nyckel): the `nyckel` package against a loopback Nyckel API
(tests/nyckel/nyckel_server.py): OAuth token → function → labels and samples (all of each class's images:
Nyckel cross-validates) → trained → whole test set → load → function deleted, on success, error and Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from _services import killed_run, launch_service, workdir  # noqa: F401 (fixture)

from platforms.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from nyckel_server import CLIENT_ID, CLIENT_SECRET, NyckelServer

FAST = {"poll_seconds": "0.05", "requests": "40", "concurrency": "4", "warmup": "2"}


@pytest.fixture
def nyckel(monkeypatch, workdir):
    server = NyckelServer()
    monkeypatch.setenv("NYCKEL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NYCKEL_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.chdir(workdir)
    yield server, {**FAST, "server_url": server.url}
    server.close()


def _launch(settings: dict, data: Path, out: Path, per_class=5, **job):
    return launch_service("nyckel", settings, data, out, per_class, **job)


def test_429s_and_resets_are_retried_with_backoff_and_counted(nyckel, color_data, tmp_path):
    server, settings = nyckel
    server.fail("invoke", "skip", 36 + 2)  # past the evaluation and the warm-up: into the measured requests
    server.fail("invoke", "429", 3)
    server.fail("invoke", "reset", 2)
    # up to 5 retries: one request may meet every fault in turn (4 clients share them)
    _launch({**settings, "retries": "5"}, color_data, tmp_path / "out", per_class=2)
    load = json.loads((tmp_path / "out" / "service.json").read_text())["load"]
    assert load["summary"]["ok"] == 40 and load["retries"]["by_reason"] == {"429": 3, "reset": 2}
    assert server.functions == {}


def test_ctrl_c_while_training_deletes_the_function(nyckel, color_data, tmp_path):
    server, settings = nyckel
    server.train_seconds = 30

    def interrupt_once_posted():
        deadline = time.monotonic() + 60
        while server.count("GET", "/metrics") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_posted, daemon=True)
    timer.start()
    swallowing = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        with pytest.raises(KeyboardInterrupt):
            _launch(settings, color_data, tmp_path / "out", per_class=2)
    finally:
        signal.signal(signal.SIGINT, swallowing)
        timer.join(5)
    assert server.functions == {} and server.count("DELETE", "") == 1
    assert killed_run(Path.cwd(), "nyckel").info.status == "KILLED"


def test_an_error_deletes_the_function(nyckel, color_data, tmp_path):
    server, settings = nyckel
    server.fail("invoke", "500", 10_000)  # every invoke fails: nothing to score is a failed run, not accuracy 0
    with pytest.raises(UserError, match=r"answered none of the 36 test images \(36× HTTP 500\)"):
        _launch({**settings, "retries": "0"}, color_data, tmp_path / "out", per_class=2)
    assert server.functions == {}


def test_refused_before_anything_is_created(nyckel, color_data, tmp_path, monkeypatch):
    server, settings = nyckel
    with pytest.raises(UserError, match="at least 2 images per label; 'red' has 1"):
        _refuse_one_per_label(settings, tmp_path)
    monkeypatch.setenv("NYCKEL_CLIENT_SECRET", "wrong")
    with pytest.raises(UserError, match="refused the client credentials") as info:
        _launch(settings, color_data, tmp_path / "o2")
    assert "wrong" not in str(info.value)  # the SDK's own message would print the secret
    monkeypatch.delenv("NYCKEL_CLIENT_SECRET")
    with pytest.raises(UserError, match="no credentials: none found: set NYCKEL_CLIENT_ID and NYCKEL_CLIENT_SECRET"):
        _launch(settings, color_data, tmp_path / "o3")
    assert server.functions == {} and not [c for c in server.calls if c[0] != "POST" or c[1] != "/connect/token"]


def _png_uri() -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_the_server_refuses_what_nyckel_refuses(nyckel):
    """Bodies the SDK would not send, sent by hand: each is refused with Nyckel's error schema
    ({"message": ...}) and the status its docs give, and none leaves a sample behind (issue 29)."""
    import requests

    server, settings = nyckel
    url, png = settings["server_url"], _png_uri()
    token = requests.post(f"{url}/connect/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                        "client_secret": CLIENT_SECRET}).json()["access_token"]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    api = f"{url}/v1/functions/" + s.post(f"{url}/v1/functions", json={"input": "Image", "output": "Classification",
                                                                        "name": "refusals"}).json()["id"]
    label_id = s.post(f"{api}/labels", json={"name": "red", "description": None, "metadata": None}).json()["id"]
    for path, body, status, words in [
        ("labels", {"json": {"name": 5}}, 400, "name must be a non-empty string"),
        ("labels", {"json": {"name": "  "}}, 400, "name must be a non-empty string"),
        ("labels", {"json": {"name": "red"}}, 409, "label red exists"),
        ("labels", {"json": {"name": "blue", "metadata": {"n": 1}}}, 400, "metadata must be an object of strings"),
        ("samples", {"json": {"data": png, "annotation": {"labelname": "red"}}}, 400,
         "annotation must be an Annotation"),
        ("samples", {"json": {"data": png, "annotation": "red"}}, 400, "annotation must be an Annotation"),
        ("samples", {"json": {"data": png, "annotation": {}}}, 400, "annotation must be an Annotation"),
        ("samples", {"json": {"data": png, "annotation": {"labelId": "label_nope"}}}, 400, "no label with id"),
        ("samples", {"json": {"data": png, "annotation": {"labelId": label_id, "labelName": "blue"}}}, 400,
         "no label named 'blue'"),
        ("samples", {"json": {"data": png, "externalId": 7}}, 400, "externalId must be a string or null"),
        ("samples", {"json": {"data": "aGVsbG8="}}, 400, "data must be an image data URI"),
        ("samples", {"data": json.dumps({"data": png}), "headers": {"Content-Type": "text/plain"}}, 415,
         "application/json, not text/plain"),
        ("invoke", {"json": {"data": png, "extra": 1}}, 400, "fields must be ['data']"),
    ]:
        r = s.post(f"{api}/{path}", **body)
        assert (r.status_code, words in r.json().get("message", "")) == (status, True), (path, body, r.text)
    (function,) = server.functions.values()
    assert function["samples"] == {} and list(function["labels"].values()) == ["red"]
    # what Nyckel takes: an annotation by label id, with or without its prefix, or by name and id alike
    for annotation in ({"labelId": label_id}, {"labelId": label_id.split("_")[-1]},
                       {"labelId": label_id, "labelName": "red"}):
        r = s.post(f"{api}/samples", json={"data": png, "externalId": None, "annotation": annotation})
        assert r.status_code == 200, r.text
    assert [x["label"] for x in function["samples"].values()] == ["red"] * 3
    assert s.delete(api).status_code == 200 and server.functions == {}


def _refuse_one_per_label(settings, tmp_path):
    """A dataset with one training image of one colour: Nyckel needs 2 per label."""
    from conftest import write_folder_dataset

    data = write_folder_dataset(tmp_path / "few", train_per_class=3, test_per_class=1)
    for f in sorted((data / "train" / "red").iterdir())[1:]:
        f.unlink()
    return launch_service("nyckel", settings, data, tmp_path / "o1", None)


def test_cli_dry_run_needs_credentials(color_data, tmp_path):
    from stand_in.cli import platbench_here  # in this process: the launch below goes through the console script

    r = platbench_here("launch", "nyckel", "--data", str(color_data), "--per-class", "5", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "/invoke" in r.stdout and "cross-validates" in r.stdout and "NYCKEL_CLIENT_ID" in r.stdout
    # the cost plan as for a training platform: known only once a run of it has finished (issue 27)
    assert "Cost plan" in r.stdout and "nyckel: an AutoML service with no finished run" in r.stdout


def test_platbench_launch_samples_trains_evaluates_loads_and_deletes(nyckel, color_data, tmp_path):
    """The real CLI in a subprocess (the loopback server runs in this process), then its record (`runs` in
    this process)."""
    from conftest import platbench

    server, settings = nyckel
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    r = platbench("launch", "nyckel", "--data", str(color_data), "--per-class", "5", "--out", str(tmp_path / "out"),
                  *sets, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "test set:    accuracy" in r.stdout and "40 requests at 4 concurrent" in r.stdout
    assert "deleted:     function " in r.stdout and server.functions == {}
    doc = json.loads((tmp_path / "out" / "service.json").read_text())
    # cross-validated: all 5 of each class posted, no validation split of ours
    assert doc["images"] == {"train": 15, "val": 0, "test": 36} and "cross-validates" in doc["split"]
    assert server.count("POST", "/samples") == 15
    ev = doc["evaluation"]
    assert ev["answered"] == 36 and ev["accuracy"] > 0.9 and ev["top5_accuracy"] is None
    assert server.count("POST", "/invoke") == 36 + 2 + 40
    # Nyckel reports no training timestamps: platbench's clock runs from the last acknowledged sample to the
    # first poll that finds the function trained, never the upload before it. Ordered against the server's
    # own record of when each call came (a slow machine stretches both alike; no duration bound)
    started, ended = (datetime.fromisoformat(doc["training"][k]).timestamp() for k in ("started", "ended"))
    last_sample = max(t for m, p, t in server.calls if m == "POST" and p.endswith("/samples"))
    assert last_sample <= started + 1e-6 and started <= server.first("GET", "/metrics", after=last_sample)
    assert min(t for t in server.trained_at if t > last_sample) <= ended + 1e-6
    assert ended <= server.first("POST", "/invoke")
    assert doc["training"]["seconds"] == pytest.approx(ended - started, abs=1e-5) and started < ended
    assert "platbench's clock" in doc["training"]["source"]
    # Nyckel's published plan (platforms/nyckel/prices.yaml, entered by hand): training free, each invoke sent priced
    assert doc["cost"]["cost_training_usd"] == 0.0 and doc["cost"]["usd_per_request"] == 0.001
    assert doc["cost"]["cost_usd"] == pytest.approx(0.001 * (36 + 2 + 40))
    assert "unverified: published plan, entered by hand" in doc["cost"]["basis"]
    from stand_in.cli import platbench_here

    # in this process: `runs` through the console script is tests/local/test_local_launch.py's
    runs = platbench_here("runs", "--kind", "service", "--json", cwd=tmp_path)
    (row,) = json.loads(runs.stdout)
    assert row["platform"] == "nyckel" and row["kind"] == "service" and row["test_accuracy"] == ev["accuracy"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(row["run_id"])
    assert CLIENT_SECRET not in json.dumps(run.data.params) + json.dumps(run.data.tags)
