"""Amazon Rekognition Custom Labels end to end (platforms/rekognition): boto3 against a loopback Rekognition
server that validates every request with botocore's own service model (tests/rekognition/rekognition_server.py)
and S3 in moto: stage → train → deploy → evaluate → load → delete, on success, on error and on Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from _services import killed_run, launch_service, workdir  # noqa: F401 (fixture)
from platforms.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from rekognition_server import RekognitionServer

FAST = {"poll_seconds": "0.02", "requests": "40", "concurrency": "4", "warmup": "2"}


@pytest.fixture
def rekognition(aws, monkeypatch, workdir):
    import boto3

    server = RekognitionServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", server.url)
    monkeypatch.chdir(workdir)
    bucket = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=bucket)
    yield server, {**FAST, "bucket": bucket}
    server.close()


def _launch(settings: dict, data: Path, out: Path, per_class=8, **job):
    return launch_service("rekognition", settings, data, out, per_class, **job)


def _nothing_left(server: RekognitionServer, bucket: str) -> None:
    import boto3

    assert server.projects == {} and server.datasets == {} and server.versions == {}
    assert boto3.client("rekognition").describe_projects()["ProjectDescriptions"] == []
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_stage_train_deploy_evaluate_load_and_delete(rekognition, color_data, tmp_path):
    """One run, every figure of it: the steps and the record, the service's own training clock, the image
    sizes the service was sent and a load test with nothing retried (the faulted one is the next test)."""
    from mlflow.tracking import MlflowClient

    server, settings = rekognition
    server.clock_train_seconds = 5400.25
    outcome, run_id = _launch(settings, color_data, tmp_path / "out", per_class=10)
    doc = json.loads((tmp_path / "out" / "service.json").read_text())
    # the nested subset, cut 80/20: 8 + 2 of each of the 3 colours; the whole test set evaluated
    assert doc["images"] == {"train": 24, "val": 6, "test": 36}
    (train_ds,) = [d for d in server.ops("CreateDataset") if d["DatasetType"] == "TRAIN"]
    manifest_key = train_ds["DatasetSource"]["GroundTruthManifest"]["S3Object"]["Name"]
    assert manifest_key.endswith("/train.manifest")
    # upload MiB: exactly the bytes of the 30 train/validation images sent (upscaled from 32×32 to Rekognition's
    # 64×64 minimum), none of the test set
    from platforms.core.api import Job
    from platforms.core.service import fit_to_minimum, prepare

    sent = prepare(Job(data=color_data, out=tmp_path, per_class=10), False)
    sent_bytes = sum(len(fit_to_minimum(x.path.read_bytes(), 64)) for x in sent.uploaded)
    assert doc["upload"]["mb"] == sent_bytes / 2**20 and len(sent.uploaded) == 30  # MiB, as every transfer figure
    assert doc["upload"]["upscaled"] == "30 of 30 images to at least 64×64 px"
    detects = server.ops("DetectCustomLabels")
    assert len(detects) == 36 + 2 + 40  # every test image once, then warm-up and the measured requests
    ev = doc["evaluation"]
    assert ev["answered"] == 36 and ev["accuracy"] > 0.9  # colours: nearest class mean is enough
    assert ev["top5_accuracy"] is None  # 3 labels: no top-5 to rank
    assert sum(map(sum, ev["confusion"]["matrix"])) == 36
    assert set(ev["per_class_accuracy"]) == {"red", "green", "blue"}
    load = doc["load"]["summary"]
    assert load["requests"] == 40 and load["ok"] == 40 and load["latency_ms"]["p50"] > 0
    _nothing_left(server, settings["bucket"])
    assert [d.split()[0] for d in doc["deleted"]] == ["model", "dataset", "dataset", "project", "s3-prefix"]
    assert doc["deleted"][0].endswith("(stopped first)")

    run = MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["platbench.kind"] == "service"
    assert run.data.tags["platbench.upscaled"] == "30 of 30 images to at least 64×64 px"
    assert run.data.tags["platbench.image_min_side"].startswith("images under 64×64 px are upscaled")
    m = run.data.metrics
    assert m["final_test_accuracy"] == ev["accuracy"] and m["load_requests_per_s"] > 0
    assert m["endpoint_usd_per_hour"] == 4.0 and m["endpoint_usd_per_month"] == 4.0 * 730
    assert m["cost_training_usd"] > 0 and m["upload_mb"] > 0 and m["upload_s_per_mb"] > 0
    from platforms.core.service_launch import summary_text

    text = summary_text(tmp_path / "out", run_id)  # what `platbench launch rekognition` prints
    assert "deployed $4.00/hour, $96.00/day, $2920.00/month, $35040.00/year" in text
    assert "40 requests at 4 concurrent" in text and "0 resets, 0 × 429" in text
    assert doc["load"]["retries"]["total"] == 0  # a clean load test: nothing retried

    # seconds_train comes from DescribeProjectVersions' timestamps, not from platbench's wall clock: the
    # server's clock says the training took an hour and a half, where it takes a fraction of a second here
    from datetime import datetime

    ((created, ended),) = server.trainings
    started_at, ended_at = (datetime.fromisoformat(doc["training"][k]).timestamp() for k in ("started", "ended"))
    assert (started_at, ended_at) == pytest.approx((created, ended), abs=1e-3)  # the server's timestamps
    assert doc["training"]["seconds"] == pytest.approx(ended_at - started_at)
    assert outcome.metrics["seconds_train"] == pytest.approx(5400.25, abs=1e-3)
    assert outcome.metrics["billed_seconds"] == 5401  # the server's BillableTrainingTimeInSeconds, whole seconds

    # issue 24 item 1: Rekognition takes 64×64 to 4096×4096 px for training, testing and detection (limits.html;
    # the server refuses others): the 32×32 images reach it at 64×64, in the datasets (the server trained on
    # them) and in every DetectCustomLabels call
    import base64
    import io

    from PIL import Image

    sizes = {Image.open(io.BytesIO(base64.b64decode(d["Image"]["Bytes"]))).size for d in detects}
    assert sizes == {(64, 64)}


def test_throttling_and_resets_are_retried_with_backoff_and_counted(rekognition, color_data, tmp_path):
    """The run of the test above with faults in the measured part of the load test (that one retried
    nothing): 36 evaluation calls and 2 warm-up first."""
    server, settings = rekognition
    server.fail("DetectCustomLabels", "skip", 36 + 2)
    server.fail("DetectCustomLabels", "ThrottlingException", 3)
    server.fail("DetectCustomLabels", "reset", 2)
    # up to 5 retries: one request may meet every fault in turn (4 clients share them)
    outcome, _ = _launch({**settings, "requests": "60", "retries": "5"}, color_data, tmp_path / "out2", per_class=5)
    load = json.loads((tmp_path / "out2" / "service.json").read_text())["load"]
    assert load["summary"]["ok"] == 60 and load["summary"]["failed"] == 0
    assert load["retries"]["by_reason"] == {"429": 3, "reset": 2}
    _nothing_left(server, settings["bucket"])


def test_an_error_deletes_everything(rekognition, color_data, tmp_path):
    server, settings = rekognition
    server.fail("StartProjectVersion", "LimitExceededException", 5)  # more than botocore retries
    with pytest.raises(UserError, match=r"^rekognition: LimitExceededException: .*StartProjectVersion.*error\.txt"):
        _launch(settings, color_data, tmp_path / "out", per_class=5)
    assert "Traceback" in (tmp_path / "out" / "error.txt").read_text()
    assert len(server.ops("CreateProjectVersion")) == 1
    _nothing_left(server, settings["bucket"])


def test_ctrl_c_while_training_deletes_everything(rekognition, color_data, tmp_path):
    server, settings = rekognition
    server.train_seconds = 3  # a training cannot be stopped: teardown waits for it to end, then deletes it

    def interrupt_once_training():
        deadline = time.monotonic() + 60
        while not server.ops("CreateProjectVersion") and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_training, daemon=True)
    timer.start()
    swallowing = signal.signal(signal.SIGINT, lambda *_: None)  # a handler a library left: Ctrl-C must still stop
    try:
        with pytest.raises(KeyboardInterrupt):
            _launch(settings, color_data, tmp_path / "out", per_class=5)
    finally:
        signal.signal(signal.SIGINT, swallowing)
        timer.join(5)
    _nothing_left(server, settings["bucket"])
    assert killed_run(Path.cwd(), "rekognition").info.status == "KILLED"


def test_too_few_labels_or_a_foreign_format_are_refused_before_anything_is_created(rekognition, color_data, tmp_path):
    from conftest import write_folder_dataset
    from PIL import Image

    server, settings = rekognition
    one = write_folder_dataset(tmp_path / "one", train_per_class=6, test_per_class=2)
    for split in ("train", "test"):
        for colour in ("green", "blue"):
            for f in (one / split / colour).iterdir():
                f.unlink()
            (one / split / colour).rmdir()
    with pytest.raises(UserError, match="needs at least 2 classes"):  # the dataset check every run shares (trainer/data/layout.py) refuses it first
        _launch(settings, one, tmp_path / "o1", per_class=5)
    gif = write_folder_dataset(tmp_path / "gif", train_per_class=6, test_per_class=2)
    Image.new("RGB", (32, 32)).save(gif / "train" / "red" / "0000.png", format="GIF")  # a GIF named .png
    with pytest.raises(UserError, match="takes PNG and JPEG images only"):
        _launch(settings, gif, tmp_path / "o2", per_class=6)
    with pytest.raises(UserError, match="fewer than --per-class 7"):
        _launch(settings, gif, tmp_path / "o3", per_class=7)
    with pytest.raises(UserError, match="trains a model of its own choosing: --model, --epochs"):
        _launch(settings, gif, tmp_path / "o4", per_class=5, model="resnet18", epochs=3)
    with pytest.raises(UserError, match="--set bucket=NAME is needed"):
        _launch({k: v for k, v in settings.items() if k != "bucket"}, color_data, tmp_path / "o5", per_class=5)
    assert server.calls == []


def test_the_server_refuses_what_the_service_would(rekognition, tmp_path):
    """Without platbench's own checks: a request botocore's model rejects, a dataset of one label, a GIF."""
    import boto3
    from botocore.config import Config
    from PIL import Image
    import io

    server, settings = rekognition
    raw = boto3.client("rekognition", config=Config(parameter_validation=False))
    with pytest.raises(raw.exceptions.ClientError, match="ValidationException.*ProjectName"):
        raw.create_project()
    c = boto3.client("rekognition")
    arn = c.create_project(ProjectName="refusals")["ProjectArn"]
    s3, bucket = boto3.client("s3"), settings["bucket"]
    gif = io.BytesIO()
    Image.new("RGB", (32, 32)).save(gif, format="GIF")
    s3.put_object(Bucket=bucket, Key="a.gif", Body=gif.getvalue())
    line = {"source-ref": f"s3://{bucket}/a.gif", "c": 0, "c-metadata": {
        "class-name": "red", "type": "groundtruth/image-classification"}}
    s3.put_object(Bucket=bucket, Key="m", Body=json.dumps(line).encode())
    ds = c.create_dataset(ProjectArn=arn, DatasetType="TRAIN", DatasetSource={
        "GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "m"}}})["DatasetArn"]
    desc = c.describe_dataset(DatasetArn=ds)["DatasetDescription"]
    assert desc["Status"] == "CREATE_FAILED" and "not a PNG or JPEG" in desc["StatusMessage"]
    with pytest.raises(c.exceptions.ResourceInUseException):
        c.delete_project(ProjectArn=arn)  # its dataset first
    c.delete_dataset(DatasetArn=ds)
    c.delete_project(ProjectArn=arn)


VERSION_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v1/1"


@pytest.mark.parametrize("operation, params, words", [
    ("create_project", {"ProjectName": "two words"},
     "Value 'two words' at 'projectName' failed to satisfy constraint: Member must satisfy regular expression "
     r"pattern: [a-zA-Z0-9_.\-]+"),
    ("create_project", {"ProjectName": "p" * 256}, "at 'projectName' failed to satisfy constraint: Member must have "
                                                    "length less than or equal to 255"),
    ("create_project", {"ProjectName": "p", "Tags": {"aws:owner": "me"}}, "at 'tags.aws:owner.key'"),
    ("describe_projects", {"ProjectNames": [f"p{i}" for i in range(11)]}, "length less than or equal to 10"),
    ("create_dataset", {"ProjectArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/1",
                        "DatasetType": "VALIDATION"}, "Member must satisfy enum value set: [TRAIN, TEST]"),
    ("describe_dataset", {"DatasetArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/dataset/val/1"},
     "at 'datasetArn' failed to satisfy constraint: Member must satisfy regular expression pattern"),
    ("detect_custom_labels", {"ProjectVersionArn": VERSION_ARN, "Image": {"Bytes": b"x"}, "MinConfidence": 101},
     "Value '101' at 'minConfidence' failed to satisfy constraint: Member must have value less than or equal to 100"),
    ("describe_project_versions", {"ProjectArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/1",
                                   "MaxResults": 101}, "at 'maxResults'"),
    ("start_project_version", {"ProjectVersionArn": VERSION_ARN.replace("/v1/", "/v 1/"), "MinInferenceUnits": 1},
     "at 'projectVersionArn'"),
])
def test_the_server_refuses_what_botocore_lets_through_and_the_service_does_not(rekognition, operation, params,
                                                                                words):
    """Issue 29: botocore's client checks no pattern, maximum or enum; the service does, with a
    ValidationException that names each broken constraint (API reference: CommonErrors and each operation's
    page). Refused before anything happens: no call recorded, nothing created."""
    import boto3

    server, _ = rekognition
    c = boto3.client("rekognition")
    with pytest.raises(c.exceptions.ClientError) as info:
        getattr(c, operation)(**params)
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException" and info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Message"].startswith("1 validation error detected: ") and words in error["Message"], error
    assert server.calls == [] and server.projects == {}


def test_every_constraint_broken_is_named_and_a_valid_request_passes(rekognition):
    import boto3

    server, _ = rekognition
    c = boto3.client("rekognition")
    with pytest.raises(c.exceptions.ClientError, match=r"2 validation errors detected: .*'versionName'.*; .*"
                                                       r"'outputConfig\.s3Bucket'"):
        c.create_project_version(ProjectArn="arn:aws:rekognition:us-east-1:123456789012:project/p/1",
                                 VersionName="v/1", OutputConfig={"S3Bucket": "bb!", "S3KeyPrefix": "x"})
    # the longest name the service allows, in a tag that is not AWS's: accepted
    arn = c.create_project(ProjectName="p" * 255, Tags={"team": "ml vision"})["ProjectArn"]
    assert server.ops("CreateProject") and c.describe_projects(ProjectNames=["p" * 255])["ProjectDescriptions"]
    c.delete_project(ProjectArn=arn)


def test_cli_dry_run_and_a_bad_setting(color_data, tmp_path):
    """In this process (tests/stand_in/cli.py): `launch` through the console script is proved by
    tests/core/test_contract.py's dry runs and tests/nyckel's launch."""
    from conftest import assert_one_line_error
    from stand_in.cli import platbench_here

    r = platbench_here("launch", "rekognition", "--data", str(color_data), "--per-class", "20", "--dry-run",
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "aws rekognition create-project-version" in r.stdout and "80/20 train/validation" in r.stdout
    assert "images under 64×64 px are upscaled" in r.stdout  # issue 24 item 1: the plan says so
    r = platbench_here("launch", "rekognition", "--data", str(color_data), "--set", "inference_units=0", cwd=tmp_path)
    assert_one_line_error(r)
    assert r.returncode == 2 and "inference_units" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_images_over_4096_px_are_refused(rekognition, tmp_path):
    """Issue 24 item 1: an image wider than the 4096 px Rekognition takes is refused before anything is
    created (the upscaling of those under 64 px is the first test's)."""
    from conftest import write_folder_dataset
    from PIL import Image

    server, settings = rekognition
    wide = write_folder_dataset(tmp_path / "wide", train_per_class=6, test_per_class=2)
    Image.new("RGB", (4097, 64)).save(wide / "test" / "red" / "0000.png")
    with pytest.raises(UserError, match=r"at most 4096×4096 px; .*0000\.png is 4097×64 px as sent"):
        _launch(settings, wide, tmp_path / "o2", per_class=5)
    assert server.calls == []
    _nothing_left(server, settings["bucket"])
