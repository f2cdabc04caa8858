"""The SkyPilot task platbench generates, checked by SkyPilot itself: its task YAML schema
(sky.utils.schemas.get_task_schema through common_utils.validate_schema) and its loader
(sky.Task.from_yaml_config, which parses the resources, accelerators and storage mounts), for every cloud
platbench offers, on demand and spot; and bad input refused in one line, exit 2, before anything exists.

The launch itself, through SkyPilot's API server against moto: test_skypilot_launch.py."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from platforms.core.api import Feature, Job
from platforms.errors import UserError
from stand_in.cli import platbench_here

pytest.importorskip("sky")

PY = sys.executable
CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod", "kubernetes")
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@{DIGEST}"


@pytest.fixture(autouse=True)
def _sky_home(tmp_path_factory, monkeypatch):
    """SkyPilot keeps its state under ~/.sky: a throwaway HOME, so nothing lands in the user's."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.getbasetemp() / "home"))


def _settings(cloud, **more):
    return {"cloud": cloud, "accelerators": "A100:1", "image": IMAGE,
            "bucket": "gs://pb-bucket" if cloud == "gcp" else "s3://pb-bucket", "run_name": "pb-run-1", **more}


def _task_yaml(platform, job) -> dict:
    step = next(s for s in platform.plan(job) if s.command and s.command.startswith("cat > task.yaml"))
    return yaml.safe_load(step.command.split("\n", 1)[1].rsplit("\nEOF", 1)[0])


def _skypilot_accepts(config: dict):
    import sky
    from sky.utils import common_utils, schemas

    common_utils.validate_schema(config, schemas.get_task_schema(), "Invalid task YAML: ")
    task = sky.Task.from_yaml_config(copy.deepcopy(config))
    for storage in task.storage_mounts.values():  # what the launch checks when it constructs the storage
        type(storage)._validate_source(storage.source, storage.mode, storage.sync_on_reconstruction)
    return task


@pytest.mark.parametrize("spot", [False, True], ids=["on-demand", "spot"])
@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_generated_task_passes_skypilots_validation(cloud, spot, digits_data, tmp_path):
    from platforms.skypilot.train import SkyPilotPlatform

    job = Job(data=digits_data, out=tmp_path / "out", model="small", epochs=2)
    config = _task_yaml(SkyPilotPlatform(_settings(cloud, use_spot=str(spot).lower())), job)
    task = _skypilot_accepts(config)

    (res,) = task.resources
    assert str(res.cloud).lower() == cloud
    assert res.accelerators == {"A100": 1} and res.use_spot is spot
    assert res.extract_docker_image() == IMAGE
    scheme = "gs" if cloud == "gcp" else "s3"
    (mount,) = task.storage_mounts.items()  # the whole bucket: SkyPilot 0.9 mounts no path below it
    assert mount[0] == "/platbench/bucket" and mount[1].mode.value == "MOUNT_CACHED"
    assert config["file_mounts"]["/platbench/bucket"]["source"] == f"{scheme}://pb-bucket"
    # the trainer reads the staged manifest and writes its outputs through the mount, under the prefix
    assert task.envs["PLATBENCH_DATA"].startswith("/platbench/bucket/platbench/datasets/")
    assert task.envs["PLATBENCH_OUT"] == "/platbench/bucket/platbench/jobs/pb-run-1"
    assert task.envs["PLATBENCH_IMAGE_DIGEST"] == DIGEST
    assert task.run.startswith("train --dataset-name digits ") and "--epochs 2" in task.run
    # the task's GPU is paid for: the trainer must use it or fail in one line (issue 24 item 9)
    assert "--device cuda" in task.run
    assert ("job_recovery" in config["resources"]) is spot


def test_skypilots_validation_can_refuse(digits_data, tmp_path):
    """The check above is SkyPilot's own and can fail: a mount mode and a cloud SkyPilot does not know, a count
    that is not a number, and a mounted path below the bucket (which SkyPilot's launch refuses)."""
    from platforms.skypilot.client import validated_task
    from platforms.skypilot.train import SkyPilotPlatform

    config = _task_yaml(SkyPilotPlatform(_settings("aws")), Job(data=digits_data, out=tmp_path))
    bad_mode = copy.deepcopy(config)
    bad_mode["file_mounts"]["/platbench/bucket"]["mode"] = "SYNC"
    below_bucket = copy.deepcopy(config)
    below_bucket["file_mounts"]["/platbench/bucket"]["source"] = "s3://pb-bucket/platbench"
    bad_cloud = copy.deepcopy(config)
    bad_cloud["resources"]["cloud"] = "nocloud"
    bad_count = copy.deepcopy(config)
    bad_count["resources"]["accelerators"] = "A100:x"
    for bad in (bad_mode, bad_cloud, bad_count, below_bucket):
        with pytest.raises(UserError, match="^skypilot: the task is refused: "):
            validated_task(bad)
    assert validated_task(config).name == "pb-run-1"


def _platbench(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_"))}
    return subprocess.run([PY, "-m", "platforms", *args], cwd=cwd, env={**env, "HOME": str(cwd)},
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("bad", ["accelerators=A100:x", "accelerators=A100 1", "cloud=nocloud", "cloud=aws bucket=gs://b",
                                 "image=platbench", "bucket=http://b"])
def test_bad_input_is_one_line_exit_2_and_nothing_created(bad, digits_data, tmp_path):
    sets = {**_settings("aws"), **dict(kv.split("=", 1) for kv in bad.split(" ") if "=" in kv)}
    if bad == "accelerators=A100 1":
        sets["accelerators"] = "A100 1"
    args = ["launch", "skypilot", "--data", str(digits_data)] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    for extra in (["--dry-run"], []):  # the real launch refuses it before its first cloud call too
        # in this process (tests/stand_in/cli.py), as _platbench's subprocess would run it; the subprocess
        # form: test_the_printed_dry_run_is_what_skypilot_accepts and the API-server test below
        r = platbench_here(*args, *extra, cwd=tmp_path, env={"HOME": str(tmp_path)},
                           drop=("AWS_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_"))
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / ".sky").exists() and not any(p.name == "runs" for p in tmp_path.iterdir())


def test_the_printed_dry_run_is_what_skypilot_accepts(digits_data, tmp_path):
    r = _platbench(["launch", "skypilot", "--data", str(digits_data), "--dry-run",
                    *[a for k, v in _settings("lambda", use_spot="true").items() for a in ("--set", f"{k}={v}")]],
                   tmp_path)
    assert r.returncode == 0, r.stderr
    text = r.stdout.split("cat > task.yaml <<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    assert _skypilot_accepts(yaml.safe_load(text)).resources
    assert "$ sky jobs launch -n pb-run-1 -y task.yaml" in r.stdout and "$ sky jobs cancel -n pb-run-1 -y" in r.stdout
    # the on-demand plan in this process (tests/stand_in/cli.py): the subprocess form is the one above
    r = platbench_here("launch", "skypilot", "--data", str(digits_data), "--dry-run",
                       *[a for k, v in _settings("aws").items() for a in ("--set", f"{k}={v}")], cwd=tmp_path,
                       env={"HOME": str(tmp_path)}, drop=("AWS_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_"))
    assert r.returncode == 0, r.stderr
    assert "$ sky launch -c pb-run-1 --down -y task.yaml" in r.stdout and "$ sky down -y pb-run-1" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a dry run wrote files (or SkyPilot state)"


def test_platforms_lists_skypilot_with_what_it_lacks(tmp_path):
    from platforms.skypilot import SPEC

    r = _platbench(["platforms", "--json"], tmp_path)
    row = next(row for row in json.loads(r.stdout) if row["platform"] == "skypilot")
    assert row["lacks"] == {f.value: why for f, why in SPEC.lacks.items()}
    assert {Feature.ENDPOINTS, Feature.MULTI_NODE} <= set(SPEC.lacks) and row["credentials_ok"] is False


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("endpoint", ["local", "unreachable"])
def test_a_launch_without_an_api_server_is_one_line_exit_2_before_any_upload(endpoint, digits_data, tmp_path):
    """Every SkyPilot SDK call goes through its API server. Here none can run: the local one SkyPilot 0.9.2
    starts fails with this lock's FastAPI (client.py says why), and a remote endpoint that answers nothing is
    refused too; both before the dataset is staged (no bucket is touched: the s3:// endpoint is closed)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_", "SKYPILOT_"))}
    env.update(HOME=str(home), AWS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}",
               MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri())
    if endpoint == "unreachable":
        env["SKYPILOT_API_SERVER_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    args = [a for k, v in _settings("aws").items() for a in ("--set", f"{k}={v}")]
    r = subprocess.run([PY, "-m", "platforms", "launch", "skypilot", "--data", str(digits_data), *args], cwd=work,
                       env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line, line
    assert line.startswith("platbench: error: skypilot: no SkyPilot API server at http://127.0.0.1:"), line
    assert list(work.iterdir()) == [] and not (tmp_path / "mlruns").exists()


def test_the_task_tells_the_trainer_the_image_id_the_push_record_names(digits_data, tmp_path, monkeypatch):
    """The image ID (config digest) cannot be asked from inside the container: `image push` recorded which
    image the digest is, and the task passes it on, as the other launchers do (trainer/image_record.py)."""
    from platforms.skypilot.train import SkyPilotPlatform
    from trainer import image_record

    image_id = "sha256:" + "e" * 64
    monkeypatch.chdir(tmp_path)
    image_record.write(image_record.ImageRecord(image="platbench:latest", id=image_id,
                                                pushed={IMAGE.split("@")[0]: DIGEST}))
    job = Job(data=digits_data, out=tmp_path / "out", model="small", epochs=2)
    task = _skypilot_accepts(_task_yaml(SkyPilotPlatform(_settings("aws")), job))
    assert task.envs["PLATBENCH_IMAGE_DIGEST"] == DIGEST and task.envs["PLATBENCH_IMAGE_ID"] == image_id


@pytest.mark.parametrize("image, rule", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/Platbench:1", "lower-case"),
    ("MyRegistry.azurecr.io/platbench:1", "lower-case"),
    ("platbench:1", "no registry host"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench", "no :TAG or @sha256:"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@sha256:abc", "64 lower-case hex digits"),
])
def test_a_refused_image_names_the_rule_it_broke(image, rule, digits_data, tmp_path):
    """Issue 24: upper-case registry letters were answered with the required form only, not the rule."""
    args = ["launch", "skypilot", "--data", str(digits_data), "--dry-run"]
    for k, v in {**_settings("aws"), "image": image}.items():
        args += ["--set", f"{k}={v}"]
    r = platbench_here(*args, cwd=tmp_path, env={"HOME": str(tmp_path)}, drop=("AWS_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert rule in r.stderr, r.stderr


def test_the_dry_run_prices_the_aws_vm_and_a_budget_is_held_by_the_watch(digits_data, tmp_path, monkeypatch):
    """A priced request (platforms/skypilot/prices.yaml: T4:1 → g4dn.xlarge in us-east-1) shows its price in the
    dry run's cost plan; SkyPilot has no max_run, so --max-usd is held by the launcher's budget watch instead
    of refused; an unpriced request (another cloud, no region, an unlisted accelerator) stays 'cost unknown'
    and --max-usd refuses it before anything is created."""
    from platforms.core import launch, pricing
    from platforms.skypilot.train import SkyPilotPlatform

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))  # the shipped table, no user cache
    pricing.forget()
    job = Job(data=digits_data, out=tmp_path / "out")
    aws = {**_settings("aws", accelerators="T4:1"), "region": "us-east-1"}
    want = pricing.shipped("skypilot").data["training"]["us-east-1"]["g4dn.xlarge"]["usd_per_hour"]
    text = launch.plan_text("skypilot", job, aws, max_usd=5)
    assert (f"skypilot T4:1: {want:.4f} USD/h (on-demand; unverified †, price of 2026-12-06) × expected hours unknown "
            "(nothing: no finished run and no max_run): cost unknown; no upper bound (no max_run: --max-usd stops it "
            "at the budget)") in text, text
    assert "at most 5 USD (the budget: the watch stops a run without max_run); budget --max-usd 5" in text
    # use_spot: priced on demand, said so (the table has no spot price): an upper bound of the spot VM
    platform = SkyPilotPlatform({**aws, "use_spot": "true"})
    platform.preflight(job)
    assert platform._quote.basis == pricing.ON_DEMAND_NO_SPOT and platform._quote.usd_per_hour == want
    for unpriced in ({**aws, "region": None}, {**aws, "accelerators": "A100:1"}, _settings("gcp", region="us-central1")):
        unpriced = {k: v for k, v in unpriced.items() if v is not None}
        assert "no price for it in platforms/skypilot/prices.yaml or the price cache: cost unknown" in \
            launch.plan_text("skypilot", job, unpriced)
        with pytest.raises(UserError, match="has no upper bound .*cost unknown.*nothing was created"):
            launch.plan_text("skypilot", job, unpriced, max_usd=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a dry run wrote files"
