"""A platbench run's model is an MLflow pyfunc model (trainer/mlflow_model.py, logged by
platforms/core/tracking.py): `mlflow models serve -m runs:/RUN_ID/model --env-manager local` started for
real on a run's model, driven by `platbench load`, its predictions equal to `platbench predict`'s in-process
ones for the same images. Everything on loopback; every wait bounded.

The run is `platbench launch local` with the stand-in trainer (tests/stand_in): the model platbench logs is the
golden run's, trained by the real trainer; what is tested is the logging and serving of a model, not training."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from _serving import free_port, post_json, request
from conftest import VENV_BIN, platbench
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here

from mlflow.tracking import MlflowClient


@pytest.fixture(scope="module")
def run(stand_in, tmp_path_factory):
    """A local run of the stand-in trainer: (working directory, MLflow run id, output dir)."""
    cwd = tmp_path_factory.mktemp("mlflow-model")
    proc = platbench("launch", "local", "--data", str(stand_in.data), "--epochs", "1", "--json", "--out", "runs/one",
                     cwd=cwd, env=stand_in.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, json.loads(proc.stdout)["mlflow_run_id"], cwd / "runs/one"


@pytest.fixture(scope="module")
def served(run):
    """`mlflow models serve` on runs:/RUN_ID/model, started the way a user would: in the run's directory,
    whose ./mlflow.db is both platbench's embedded store and MLflow's default one (no URI set)."""
    cwd, run_id, _ = run
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn from PATH
    log = cwd / "mlflow-serve.log"
    proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"runs:/{run_id}/model",
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if request("GET", base + "/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() - started < 120, "mlflow models serve not ready in 120 s:\n" + log.read_text()[-3000:]
            time.sleep(0.25)
        yield base, time.monotonic() - started
    finally:
        os.killpg(proc.pid, 15)  # its own session: mlflow and the uvicorn it execs
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def test_the_run_logs_an_mlflow_model_in_the_trainer_layout(run):
    cwd, run_id, out = run
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    r = client.get_run(run_id)
    assert r.data.tags["platbench.mlflow_model"] == "pyfunc"
    files = {a.path for a in client.list_artifacts(run_id, "model")}
    # the trainer's two files stay at the top (what serve / predict --model-dir read), once
    assert {"model/model.pt", "model/model.json", "model/MLmodel", "model/code", "model/input_example.json",
            "model/serving_input_example.json", "model/requirements.txt"} <= files
    assert "model/artifacts" not in files
    local = client.download_artifacts(run_id, "model", str(cwd / "downloaded"))
    from mlflow.models import Model

    m = Model.load(local)
    assert m.flavors["python_function"]["artifacts"]["model_dir"]["path"] == "."
    assert [c.name for c in m.signature.inputs.inputs] == ["b64"]
    assert m.signature.params.to_dict()[0]["name"] == "top_k"
    reqs = (cwd / "downloaded/model/requirements.txt").read_text().splitlines()
    assert any(line.startswith("torch==") for line in reqs) and any(line.startswith("mlflow") for line in reqs)
    # what a serving environment is built from (requirements.txt, conda.yaml's pip list): torch from the CPU
    # wheel index, public versions only (test_requirements_take_torch_from_the_cpu_wheel_index)
    from trainer.mlflow_model import CPU_WHEELS

    assert f"--extra-index-url {CPU_WHEELS}" in reqs and not [r for r in reqs if "==" in r and "+" in r]
    import yaml

    pip = next(d["pip"] for d in yaml.safe_load((cwd / "downloaded/model/conda.yaml").read_text())["dependencies"]
               if isinstance(d, dict))
    assert f"--extra-index-url {CPU_WHEELS}" in pip


def test_requirements_take_torch_from_the_cpu_wheel_index():
    """The model predicts on the CPU, and Databricks Model Serving builds its environment from these lines: no
    local version label (a workstation's +cu132 or +cpu resolves on no other index), and PyTorch's CPU index
    beside PyPI, whose +cpu build then wins for the same public version (PEP 440 local versions)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from trainer.mlflow_model import CPU_WHEELS, pin, requirements

    assert pin("torch", "2.15.0+cu132") == pin("torch", "2.15.0+cpu") == pin("torch", "2.15.0") == "torch==2.15.0"
    assert CPU_WHEELS == "https://download.pytorch.org/whl/cpu"
    reqs = requirements()
    assert reqs[0] == f"--extra-index-url {CPU_WHEELS}"
    torch_pin = next(r for r in reqs if r.startswith("torch=="))
    public = torch_pin.split("==", 1)[1]
    assert "+" not in "".join(reqs[1:])
    # what pip does with them: the CPU index's X+cpu matches ==X and sorts above PyPI's X, so it is taken
    assert Version(f"{public}+cpu") in SpecifierSet(f"=={public}")
    assert max([Version(public), Version(f"{public}+cpu")]) == Version(f"{public}+cpu")


def test_mlflow_serve_driven_by_platbench_load(run, served):
    cwd, _, _ = run
    base, ready_s = served
    proc = platbench("load", base + "/invocations", "--format", "json", "--batch", "2", "--requests", "30",
                     "--concurrency", "2", "--warmup", "2", "--json", "--no-track", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    s = report["summary"]
    # every request answered with {"predictions": [...]}, one per image (the load tool verifies that)
    assert s["ok"] == 30 and s["failed"] == 0 and s["images_per_s"] > 0
    assert report["settings"]["images_per_request"] == 2


def test_mlflow_serve_predicts_what_predict_does(run, served, stand_in):
    cwd, _, out = run
    base, _ = served
    folder = stand_in.data / "train"  # 120 images: the test split has 36
    # in this process (tests/stand_in/cli.py): `platbench predict`'s subprocess form is tests/bench/test_batch.py's
    a = platbench_here("predict", str(folder), "--endpoint", base + "/invocations", "--format", "json", "--batch",
                       "7", "--limit", "60", "--out", "served.jsonl", "--no-track", cwd=cwd)
    assert a.returncode == 0, a.stderr[-3000:]
    b = platbench_here("predict", str(folder), "--model-dir", str(out / "model"), "--limit", "60", "--out",
                       "local.jsonl", "--no-track", cwd=cwd)
    assert b.returncode == 0, b.stderr[-3000:]
    served_rows = [json.loads(x) for x in (cwd / "served.jsonl").read_text().splitlines()]
    local_rows = [json.loads(x) for x in (cwd / "local.jsonl").read_text().splitlines()]
    assert len(served_rows) == len(local_rows) == 60
    for s, loc in zip(served_rows, local_rows):
        assert s["path"] == loc["path"] and "error" not in s
        assert s["class"] == loc["class"], s["path"]
        assert s["probability"] == pytest.approx(loc["probability"], abs=2e-6)
    assert len({r["class"] for r in local_rows}) > 1  # a model that answers one class would prove nothing


def test_mlflow_serve_refuses_what_is_not_an_image(served):
    base, _ = served
    status, doc = post_json(base + "/invocations", {"instances": [{"b64": "bm90IGFuIGltYWdl"}]})
    assert status == 400 and "not a PNG or JPEG" in doc["message"]
    status, doc = post_json(base + "/invocations", {"dataframe_split": {"columns": ["b64"], "data": [["@@"]]}})
    assert status == 400 and "base64" in doc["message"]


def test_top_k_is_a_parameter(served, stand_in):
    import base64

    base, _ = served
    png = next((stand_in.data / "test").rglob("*.png")).read_bytes()
    b64 = base64.b64encode(png).decode()
    status, doc = post_json(base + "/invocations", {"dataframe_split": {"columns": ["b64"], "data": [[b64]]},
                                                    "params": {"top_k": 2}})
    assert status == 200, doc
    (pred,) = doc["predictions"]
    assert len(pred["top_k"]) == 2 and pred["top_k"][0]["class"] == pred["class"]
