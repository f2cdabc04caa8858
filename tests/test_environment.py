"""The platform table: each platform's environment set for real, resolved by the trainer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import environment
from trainer.cli import channel_args, config_from_args
from trainer.errors import ConfigError


def sagemaker_root(tmp_path: Path, hps: dict) -> Path:
    root = tmp_path / "opt_ml"
    (root / "input/config").mkdir(parents=True)
    (root / "input/data/training").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hps))
    return root


def test_local_defaults():
    p = environment.resolve({})
    assert p.platform == "local" and p.data_dir is None and p.model_dir == p.output_dir / "model"


def test_sagemaker_byo_container_layout(tmp_path):
    root = sagemaker_root(tmp_path, {"epochs": "3", "model": "fast"})
    env = {"PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "pb-123"}
    p = environment.resolve(env)
    assert p.platform == "sagemaker" and p.job_id == "pb-123"
    assert p.data_dir == root / "input/data/training"
    assert p.model_dir == root / "model" and p.output_dir == root / "output/data"
    assert p.checkpoint_dir == root / "checkpoints"
    assert p.hyperparameters == {"epochs": "3", "model": "fast"}


def test_sagemaker_toolkit_variables_win_when_present(tmp_path):
    root = sagemaker_root(tmp_path, {})
    env = {"PLATBENCH_OPT_ML": str(root), "SM_MODEL_DIR": "/x/model", "SM_CHANNEL_TRAINING": "/x/data",
           "SM_OUTPUT_DATA_DIR": "/x/out"}
    p = environment.resolve(env)
    assert (p.model_dir, p.data_dir, p.output_dir) == (Path("/x/model"), Path("/x/data"), Path("/x/out"))


def test_sagemaker_hyperparameters_become_flags_and_command_line_wins(tmp_path):
    root = sagemaker_root(tmp_path, {"epochs": "3", "model": "fast", "per_class": "20", "lr": "0.1",
                                     "sagemaker_region": "eu-west-1"})
    env = {"PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "j"}
    cfg, place = config_from_args(["--epochs", "5"], env)
    assert cfg.model == "fast" and cfg.per_class == 20 and cfg.overrides == {"epochs": 5, "lr": 0.1}
    assert cfg.data_dir == root / "input/data/training" and cfg.platform == "sagemaker"
    assert cfg.checkpoint_dir == root / "checkpoints"


def test_sagemaker_unknown_hyperparameter_is_a_clear_error(tmp_path):
    root = sagemaker_root(tmp_path, {"epochz": "3"})
    with pytest.raises(SystemExit):  # argparse: one usage line and exit 2
        config_from_args([], {"PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "j"})


def test_vertex_output_dirs_map_to_the_gcs_fuse_mount():
    env = {"AIP_MODEL_DIR": "gs://bkt/job1/model/", "AIP_CHECKPOINT_DIR": "gs://bkt/job1/checkpoints/",
           "CLOUD_ML_JOB_ID": "123"}
    p = environment.resolve(env)
    assert p.platform == "vertex" and p.job_id == "123"
    assert p.model_dir == Path("/gcs/bkt/job1/model") and p.checkpoint_dir == Path("/gcs/bkt/job1/checkpoints")
    assert p.output_dir == Path("/gcs/bkt/job1/output")
    cfg, _ = config_from_args(["--data", "/gcs/bkt/data"], env)
    assert cfg.model_dir == Path("/gcs/bkt/job1/model") and cfg.data_dir == Path("/gcs/bkt/data")


def test_azureml_paths_come_as_arguments():
    env = {"AZUREML_RUN_ID": "run-1"}
    p = environment.resolve(env)
    assert p.platform == "azureml" and p.output_dir == Path("outputs")
    with pytest.raises(ConfigError, match="no dataset"):
        config_from_args([], env)
    cfg, _ = config_from_args(["--data", "/mnt/in", "--out", "/mnt/out"], env)
    assert cfg.output_dir == Path("/mnt/out") and cfg.model_dir == Path("/mnt/out/model")


def test_channel_args_skip_reserved_keys_and_handle_switches():
    assert channel_args({"batch_size": "64", "compile": "true", "sagemaker_program": "x", "_tuning": "1"}) == [
        "--batch-size", "64", "--compile"]
