"""The image, checked without an engine: the Dockerfile linted, the compose file validated against the
compose schema, and the exact command lines the image runs executed natively."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import yaml
from conftest import REPO, VENV_BIN, run_cmd

from mlflow.tracking import MlflowClient
from trainer.results import read_results


def test_dockerfile_passes_hadolint():
    proc = run_cmd([str(VENV_BIN / "hadolint"), str(REPO / "Dockerfile")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_contract():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=pytorch/pytorch:[\w.-]+-cuda[\w.-]+@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.search(r"^USER \d+:\d+$", text, re.M)  # non-root
    assert "COPY docker/train docker/serve /usr/local/bin/" in text
    for path in ("docker/train", "docker/serve"):
        assert os.access(REPO / path, os.X_OK)


def test_compose_file_matches_the_compose_schema():
    proc = run_cmd([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                    str(REPO / "docker-compose.gpu.yml")], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_trainer_reserves_gpus_and_mounts_the_project():
    doc = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    svc = doc["services"]["trainer"]
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert svc["working_dir"].startswith("${PWD")
    assert any(v.startswith("${PWD") for v in svc["volumes"])


def _native(tmp_path: Path) -> dict:
    """PATH with the venv first, as the image has python and platbench on PATH."""
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}


def test_train_executable_under_the_sagemaker_layout(color_data, tmp_path):
    root = tmp_path / "opt_ml"
    shutil.copytree(color_data, root / "input/data/training")
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({"epochs": "2", "batch_size": "32"}))
    env = {**_native(tmp_path), "PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "pb-test-1"}
    proc = run_cmd([str(REPO / "docker/train")], cwd=tmp_path, env=env)  # SageMaker: `docker run IMAGE train`
    assert proc.returncode == 0, proc.stderr
    res = read_results(root / "output/data")
    assert res.platform == "sagemaker" and res.job_id == "pb-test-1" and res.epochs_completed == 2
    assert (root / "model/model.pt").is_file() and (root / "checkpoints/last.ckpt").is_file()
    assert "- Test accuracy: " in proc.stdout


def test_train_executable_failure_is_reported_to_sagemaker(tmp_path):
    root = tmp_path / "opt_ml"
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text("{}")
    env = {**_native(tmp_path), "PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "j"}
    proc = run_cmd([str(REPO / "docker/train")], cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "does not exist" in (root / "output/failure").read_text()


def test_compose_command_runs_natively(color_data, tmp_path):
    doc = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    command = doc["services"]["trainer"]["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("$$", "$")  # compose's escape for a literal $
    shutil.copytree(color_data, tmp_path / "data/cifar10")  # already prepared: --if-missing skips the download
    env = {**_native(tmp_path), "PLATBENCH_MODEL": "small", "PLATBENCH_TARGET": "0.5"}
    proc = run_cmd(["sh", "-c", script], cwd=tmp_path, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    (out,) = (tmp_path / "runs").iterdir()
    assert read_results(out).target_accuracy == 0.5
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "FINISHED"
