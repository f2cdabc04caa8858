"""`platbench transfer`, end to end through the CLI against the launcher tests' loopback servers (moto's S3,
the Cloud Storage emulator: tests/conftest_clouds.py), the official SDKs sending every request."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import VENV_BIN, assert_one_line_error, platbench, write_folder_dataset
from conftest_clouds import aws, gcs, gcs_server, moto_server, new_bucket_name  # noqa: F401 (fixtures)
from stand_in.cli import platbench_here

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS / "azureml") not in sys.path:  # Azurite's fixtures, as tests/launchers/launcher_rigs.py finds them
    sys.path.append(str(TESTS / "azureml"))
from azurite_server import azurite, blob_env  # noqa: E402,F401 (fixtures)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    # 69 images: two batches of 50 or 64 (the tests' --batch), each object a request to the loopback server
    return write_folder_dataset(tmp_path_factory.mktemp("ds") / "colors", train_per_class=20, test_per_class=3)


def s3_bucket() -> tuple[object, str]:
    import boto3

    name = new_bucket_name()
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    return client, name


def s3_left(client, bucket: str) -> tuple[list, list]:
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return objects, uploads


def mlflow_runs(cwd: Path) -> list:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = c.get_experiment_by_name("platbench")
    return c.search_runs([exp.experiment_id]) if exp else []


def test_s3_repeats_are_cold_recorded_one_run_each_and_leave_nothing(aws, dataset, tmp_path):
    client, bucket = s3_bucket()
    # in this process (tests/stand_in/cli.py), as the transfers below but for the subprocess forms of
    # test_missing_bucket_and_bad_dataset_are_one_line, test_an_sdk_error_midway… and test_ctrl_c_removes_the_prefix
    proc = platbench_here("transfer", "sagemaker", "--data", str(dataset), "--repeats", "2", "--batch", "50",
                          "--set", f"bucket={bucket}", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    repeats = json.loads(proc.stdout)["repeats"]
    files = len(list(dataset.rglob("*.png")))
    assert len(repeats) == 2 and len({r["prefix"] for r in repeats}) == 2
    for r in repeats:
        m = r["metrics"]
        # cold every time: the second repeat sends the whole dataset again, into its own prefix
        assert m["upload_bytes_sent"] > m["dataset_mb"] * 2**20 and m["download_bytes_received"] >= m["dataset_mb"] * 2**20
        assert m["upload_s_per_mb"] == pytest.approx(m["upload_seconds"] / (m["upload_bytes_sent"] / 2**20))
        assert m["download_s_per_mb"] > 0 and m["files"] == files and m["batches"] == math.ceil(files / 50)
        assert len(r["batch_upload_s_per_mb"]) == len(r["batch_download_s_per_mb"]) == m["batches"]
        assert m["batch_upload_s_per_mb_min"] <= m["batch_upload_s_per_mb_median"] <= m["batch_upload_s_per_mb_max"]
        assert m["batch_download_s_per_mb_iqr"] >= 0
    assert s3_left(client, bucket) == ([], [])  # every repeat's prefix removed
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 2 and {r.data.tags["platbench.kind"] for r in runs} == {"transfer"}
    assert {r.data.params["transfer_id"] for r in runs} == {repeats[0]["transfer_id"]}
    run = next(r for r in runs if r.info.run_id == repeats[0]["mlflow_run_id"])
    assert run.data.metrics["upload_s_per_mb"] == pytest.approx(repeats[0]["metrics"]["upload_s_per_mb"])
    listed = platbench_here("runs", "--kind", "transfer", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2


def test_gcs_transfer_through_the_emulator(gcs, dataset, tmp_path):
    from google.cloud import storage

    name = new_bucket_name()
    storage.Client(project="test").create_bucket(name)
    proc = platbench_here("transfer", "vertex", "--data", str(dataset), "--repeats", "1", "--batch", "64", "--no-track",
                          "--set", f"bucket={name}", "--set", "project=test", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["repeats"]
    assert r["metrics"]["upload_s_per_mb"] > 0 and r["metrics"]["download_s_per_mb"] > 0
    assert r["metrics"]["batches"] == 2 and "mlflow_run_id" not in r
    assert list(storage.Client(project="test").list_blobs(name)) == []
    assert not (tmp_path / "mlflow.db").exists()


def test_azureml_transfer_uses_its_container_through_azurite(blob_env, dataset, tmp_path):
    """Azure ML's store is its Blob container (--set container=…, the setting its jobs and endpoints use): it was
    looked for as a bucket, and the transfer refused with 'no bucket'. The AWS-vs-Azure pipeline moves its
    batches through it."""
    from azurite_server import new_container

    container = new_container(blob_env)
    proc = platbench_here("transfer", "azureml", "--data", str(dataset), "--repeats", "1", "--batch", "64",
                          "--no-track", "--set", f"container={container}", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["repeats"]
    assert r["metrics"]["batches"] == 2 and r["metrics"]["upload_s_per_mb"] > 0
    from azure.storage.blob import BlobServiceClient

    assert list(BlobServiceClient.from_connection_string(blob_env).get_container_client(container).list_blobs()) == []


def test_dry_run_prints_the_plan_and_creates_nothing(dataset, tmp_path):
    proc = platbench_here("transfer", "sagemaker", "--data", str(dataset), "--repeats", "3", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 batch(es) of up to 1024 images, 3 repeat(s)" in proc.stdout
    assert "--set bucket=NAME" in proc.stdout and "nothing was created" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, says", [
    (["local"], "lacks remote-storage"),
    (["nowhere"], "unknown platform"),
    (["sagemaker"], "no bucket"),
    (["sagemaker", "--set", "bucket=Not_A_Bucket"], "bucket"),
    (["sagemaker", "--set", "nokey"], "KEY=VALUE"),
])
def test_bad_input_is_one_line(dataset, tmp_path, args, says):
    # in this process (tests/stand_in/cli.py); the subprocess forms: the tests against moto below
    proc = platbench_here("transfer", *args, "--data", str(dataset), cwd=tmp_path)
    assert_one_line_error(proc)
    assert says in proc.stderr


def test_missing_bucket_and_bad_dataset_are_one_line(aws, dataset, tmp_path):
    proc = platbench("transfer", "sagemaker", "--data", str(dataset), "--set", "bucket=no-such-bucket-here", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "does not exist" in proc.stderr
    _, bucket = s3_bucket()
    proc = platbench_here("transfer", "sagemaker", "--data", str(tmp_path), "--set", f"bucket={bucket}", cwd=tmp_path)
    assert_one_line_error(proc)


def test_an_sdk_error_midway_is_one_line_and_removes_the_prefix(aws, dataset, tmp_path):
    client, bucket = s3_bucket()
    aws.fail(lambda m, p, h: m == "GET" and "/staged/" in p and "list-type" not in p, "503", 1000)
    # a process of its own: PLATBENCH_S3_MAX_ATTEMPTS is read when the AWS module is first imported
    proc = platbench("transfer", "sagemaker", "--data", str(dataset), "--repeats", "2", "--batch", "50", "--json",
                     "--set", f"bucket={bucket}", cwd=tmp_path, env={"PLATBENCH_S3_MAX_ATTEMPTS": "1"}, timeout=240)
    assert_one_line_error(proc)  # --json: no progress lines, so the error is all of stderr
    assert "GetObject" in proc.stderr
    assert s3_left(client, bucket) == ([], [])
    assert mlflow_runs(tmp_path) == []  # no figure from a repeat that did not finish


def test_ctrl_c_removes_the_prefix(aws, tmp_path):
    data = write_folder_dataset(tmp_path / "d", train_per_class=200, test_per_class=20)
    client, bucket = s3_bucket()
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "transfer", "sagemaker", "--data", str(data), "--batch", "20",
                             "--set", f"bucket={bucket}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.time() + 60
    while time.time() < deadline and not client.list_objects_v2(Bucket=bucket).get("KeyCount"):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert "interrupted" in err
    assert s3_left(client, bucket) == ([], [])


def test_the_report_draws_batches_and_tests_one_value_per_repeat(aws, gcs, dataset, tmp_path):
    from google.cloud import storage

    _, bucket = s3_bucket()
    name = new_bucket_name()
    storage.Client(project="test").create_bucket(name)
    # in this process (tests/stand_in/cli.py): the subprocess forms of transfer are the tests above, report's
    # tests/test_report.py's
    for args in (("sagemaker", "--set", f"bucket={bucket}"), ("vertex", "--set", f"bucket={name}", "--set", "project=test")):
        proc = platbench_here("transfer", args[0], "--data", str(dataset), "--repeats", "2", "--batch", "64",
                              *args[1:], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    proc = platbench_here("report", "--out", "rep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    section = md[md.index("## Cold transfers, batch by batch"):]
    section = section[:section.index("\n## ", 3)]
    assert "fig-cold-transfer" in section or "Seconds per MB, each batch" in section
    assert "| sagemaker | 2 |" in section and "| vertex | 2 |" in section
    # two repeats a platform: the exact test cannot call any difference, and the report says so
    assert "too few runs to call any difference" in section


def test_a_batchs_seconds_hold_no_collector_pause(dataset, tmp_path):
    # a full collection of this process's heap took 0.1-0.3 s, inside a 15 ms batch (39 s/MiB for ~2.5): the
    # collector runs before a batch and is off while it moves, then on again
    import gc
    from concurrent.futures import ThreadPoolExecutor

    from platforms.bench import transfer
    from platforms.reproduce.pipeline_store import DiskStore

    seen: list[bool] = []

    class Probe(DiskStore):
        def _upload(self, key, body, *, if_absent=False):
            seen.append(gc.isenabled())
            super()._upload(key, body, if_absent=if_absent)

        def _download(self, key, tmp):
            seen.append(gc.isenabled())
            super()._download(key, tmp)

    files = sorted(p for p in dataset.rglob("*.png"))[:8]
    keys = transfer.batch_keys("b/", dataset, files)
    store = Probe(tmp_path / "bucket")
    with ThreadPoolExecutor(4) as pool:
        transfer.put_batch(store, pool, keys, files)
        transfer.get_batch(store, pool, keys, [tmp_path / "down" / k for k in keys])
    assert len(seen) == 16 and not any(seen)
    assert gc.isenabled()
