"""The SageMaker launcher against moto in server mode (S3, IAM and the SageMaker API on 127.0.0.1):
checks before upload, the dry-run plan, the CreateTrainingJob request the SDK sends, the full local-mode
flow (stage → submit → native run under the /opt/ml contract → collect → MLflow) and teardown."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from platforms.core import launch

from platforms.core import tracking
from platforms.core.api import Job
from platforms.errors import UserError
from platforms.core.progress import JobProgress
from trainer import loglines


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("sm") / "colors", train_per_class=24, test_per_class=8)


@pytest.fixture
def bucket(aws):
    import boto3

    name = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def role(aws):
    import boto3

    iam = boto3.client("iam")
    try:
        return iam.create_role(RoleName="platbench-sm", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName="platbench-sm")["Role"]["Arn"]


def objects(bucket: str) -> list[str]:
    import boto3

    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def run(job: Job, settings: dict, progress=None):
    return launch.launch("sagemaker", job, settings, progress or JobProgress(enabled=False))


def sent(proxy, target: str) -> list[dict]:
    return [json.loads(body) for _, _, headers, body in proxy.requests
            if headers.get("X-Amz-Target") == f"SageMaker.{target}"]


@pytest.mark.parametrize("settings, message", [
    ({"region": "mars-north-1"}, "unknown region 'mars-north-1'"),
    ({"instance_type": "ml.g4dn.huge"}, "unknown training instance type 'ml.g4dn.huge'"),
    ({"bucket": None}, "no bucket: add --set bucket=NAME"),
    ({"bucket": "no-such-bucket-here"}, "bucket 'no-such-bucket-here' does not exist"),
    ({"role": None}, "no execution role"),
    ({"role": "nobody"}, "IAM role 'nobody' does not exist"),
    ({"image_uri": None}, "no image"),
    ({"spot": "true", "max_wait": "100", "max_run": "3600"}, "max_wait (100) must be >= max_run (3600)"),
    ({"max_wait": "7200"}, "max_wait applies to spot jobs only"),
    ({"instance_count": "2"}, "instance_count"),
    ({"colour": "blue"}, "unknown setting 'colour'"),
])
def test_bad_settings_fail_before_anything_is_uploaded(dataset, tmp_path, monkeypatch, bucket, role, settings, message):
    monkeypatch.chdir(tmp_path)
    base = {"bucket": bucket, "role": role, "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench:1"}
    base.update(settings)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), base)
    assert objects(bucket) == []
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run either


def test_missing_credentials_are_reported_first(dataset, tmp_path, monkeypatch, bucket):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe off this machine
    with pytest.raises(UserError, match="no AWS credentials found"):
        run(Job(data=dataset, out=tmp_path / "out"), {"bucket": bucket, "local": "true"})


def test_dry_run_prints_every_step_with_aws_commands_and_creates_nothing(dataset, tmp_path, bucket, role, aws):
    import botocore.session
    from botocore.validate import validate_parameters

    settings = {"bucket": bucket, "role": role, "spot": "true", "max_run": "3600", "job_name": "pb-plan",
                "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench:1"}
    text = launch.plan_text("sagemaker", Job(data=dataset, out=tmp_path / "o", epochs=2), settings)
    for needle in ("aws s3 cp SHARD.tar", "aws sagemaker create-training-job", "aws sagemaker wait",
                   "aws sagemaker stop-training-job", "aws s3api head-bucket", "ManifestFile"):
        assert needle in text, needle
    request = json.loads(re.search(r"--cli-input-json '(\{.*\})'", text).group(1))
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateTrainingJob").input_shape)  # raises if invalid
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert objects(bucket) == [] and sent(aws, "CreateTrainingJob") == []


def test_local_mode_end_to_end(dataset, tmp_path, monkeypatch, bucket):
    monkeypatch.chdir(tmp_path)
    job = Job(data=dataset, out=tmp_path / "out", epochs=1, model="small")
    outcome, run_id = run(job, {"bucket": bucket, "local": "true", "job_name": "pb-local-1", "region": "us-east-1"})
    assert outcome.status == "finished", outcome.message
    keys = objects(bucket)
    assert "platbench/jobs/pb-local-1/output/model.tar.gz" in keys
    assert "platbench/jobs/pb-local-1/output/output.tar.gz" in keys
    assert any(k.startswith("platbench/checkpoints/pb-local-1/") for k in keys)  # CheckpointConfig synced
    assert any(k.endswith("/sagemaker.manifest") for k in keys)
    assert (job.out / "results.json").is_file() and (job.out / "model" / "model.pt").is_file()

    c = tracking.client()
    r = c.get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    for name in ("upload_s_per_mb", "download_s_per_mb", "phase_seconds_training", "phase_seconds_downloading",
                 "phase_seconds_uploading", "final_test_accuracy", "upload_retries", "api_retries"):
        assert name in m, name
    assert m["phase_seconds_training"] > 0
    assert t[tracking.Tag.PLATFORM] == "sagemaker" and t[tracking.Tag.LOCAL_MODE] == "true"
    assert t[tracking.Tag.REGION] == "us-east-1" and t[tracking.Tag.INSTANCE_TYPE] == "ml.g4dn.xlarge"
    assert t[tracking.Tag.DATASET] == "colors" and t[tracking.Tag.JOB_ID] == "pb-local-1"
    assert t[tracking.Tag.DATASET_FINGERPRINT] == t["platbench.dataset_fingerprint"]
    assert "aws.amazon.com/sagemaker/pricing" in t[tracking.Tag.PRICE_SOURCE]
    assert {a.path for a in c.list_artifacts(run_id)} >= {"results.json", "metrics.jsonl", "train.log", "model"}



def test_cloud_mode_sends_the_training_job_through_the_sdk(dataset, tmp_path, monkeypatch, bucket, role, aws):
    import botocore.session
    from botocore.validate import validate_parameters

    monkeypatch.chdir(tmp_path)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@sha256:" + "a" * 64
    settings = {"bucket": bucket, "role": "platbench-sm", "image_uri": image, "spot": "true", "max_run": "1800",
                "max_wait": "3600", "instance_type": "ml.g5.xlarge", "job_name": "pb-cloud-1", "poll_seconds": "0.1"}
    with pytest.raises(UserError, match="pb-cloud-1 finished but wrote no output.tar.gz"):
        run(Job(data=dataset, out=tmp_path / "out", epochs=3, hyperparameters={"lr": "0.01"}), settings)
    (request,) = sent(aws, "CreateTrainingJob")
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateTrainingJob").input_shape)
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert request["RoleArn"] == role
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    assert request["CheckpointConfig"]["S3Uri"] == f"s3://{bucket}/platbench/checkpoints/pb-cloud-1"
    assert request["HyperParameters"] == {"model": "small", "seed": "0", "epochs": "3", "lr": "0.01",
                                          "dataset_name": "colors"}
    assert request["Environment"]["PLATBENCH_IMAGE_DIGEST"] == "sha256:" + "a" * 64
    source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "ManifestFile" and source["S3Uri"].endswith("/sagemaker.manifest")
    import boto3

    manifest = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=source["S3Uri"].split(bucket + "/")[1])
                          ["Body"].read())
    assert manifest[0] == {"prefix": f"s3://{bucket}/platbench/"} and len(manifest) == 8  # manifest + 6 shards
    # each metric definition's regex reads the trainer's own log line for that metric
    defs = {d["Name"]: d["Regex"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(defs) == set(loglines.METRICS)
    for name, regex in defs.items():
        assert float(re.search(regex, loglines.line(name, 0.875)).group(1)) == 0.875
    assert not [d for d in model.operation_model("CreateTrainingJob").input_shape.members if d == "DebugHookConfig"
                and d in request]
    # moto completes the job at once: the phases come from its SecondaryStatusTransitions, and the run
    # is FAILED because the job left no outputs
    c = tracking.client()
    r = c.search_runs([tracking.experiment_id(c)])[0]
    assert r.info.status == "FAILED" and r.data.tags[tracking.Tag.STATUS] == "failed"
    assert sent(aws, "DescribeTrainingJob") and not sent(aws, "StopTrainingJob")  # finished: nothing to stop


@pytest.mark.parametrize("spot", [False, True])
def test_billed_cost_counts_two_instances_once(dataset, tmp_path, monkeypatch, bucket, role, aws, spot):
    """cost = BillableTimeInSeconds (the job's wall-clock) × the price per hour of the whole job: the
    instance count once. Managed spot: the discount is already in BillableTimeInSeconds (savings =
    1 − billable / training seconds, model-managed-spot-training page), so the on-demand price applies and
    the cost is the spot bill (basis `spot`)."""
    from platforms.core.progress import JobProgress
    from platforms.sagemaker.train import SageMakerPlatform

    monkeypatch.chdir(tmp_path)
    settings = {"bucket": bucket, "role": role, "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/p:1",
                "instance_type": "ml.g4dn.xlarge", "poll_seconds": "0.1", "spot": str(spot).lower()}
    p = SageMakerPlatform(settings)
    # the settings refuse instance_count 2 (the trainer is single-node, SPEC lacks MULTI_NODE); set the
    # parsed settings directly, as a multi-node launch would hold them
    p.cfg = p.parsed().model_copy(update={"instance_count": 2})
    job = Job(data=dataset, out=tmp_path / "out", epochs=1)
    p.check(job)
    p.stage(job)
    handle = p.submit(job, {})
    p.wait(handle, JobProgress(enabled=False))
    (request,) = sent(aws, "CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert handle.describe["ResourceConfig"]["InstanceCount"] == 2
    # moto reports no billed time: the figures DescribeTrainingJob documents, on moto's own description
    d = {**handle.describe, "BillableTimeInSeconds": 150 if spot else 500, "TrainingTimeInSeconds": 500}
    outcome = p._outcome_from_describe(handle, d)
    price = 0.7364  # ml.g4dn.xlarge, training, us-east-1 (platforms/sagemaker/prices.yaml)
    assert p.price_per_hour() == pytest.approx(2 * price)
    assert outcome.billed_seconds == d["BillableTimeInSeconds"]
    assert outcome.cost_usd == pytest.approx(d["BillableTimeInSeconds"] * 2 * price / 3600)
    assert outcome.list_estimate_usd == pytest.approx(500 * 2 * price / 3600)
    assert outcome.metrics["billed_instance_seconds"] == 2 * d["BillableTimeInSeconds"]
    assert outcome.metrics["spot_savings_fraction"] == pytest.approx(0.7 if spot else 0.0)
    tags = p.run_tags(job)
    assert tags[tracking.Tag.PRICE_BASIS] == ("spot" if spot else "on-demand")
    assert "ml.g4dn.xlarge 0.7364/h ×2" in tags[tracking.Tag.PRICE_SOURCE]


def test_an_error_while_waiting_stops_the_job_and_marks_the_run_failed(dataset, tmp_path, monkeypatch, bucket,
                                                                       role, aws):
    import botocore.exceptions

    import platforms.sagemaker.storage as s3

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(s3, "MAX_ATTEMPTS", 2)
    # the SageMaker API keeps failing while the job is being watched: retried (and counted), then an error
    aws.fail(lambda m, p, h: h.get("X-Amz-Target") == "SageMaker.DescribeTrainingJob", "503", 100)
    settings = {"bucket": bucket, "role": role, "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/p:1",
                "job_name": "pb-cloud-err", "poll_seconds": "0.1"}
    with pytest.raises(botocore.exceptions.ClientError):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    assert len(sent(aws, "DescribeTrainingJob")) >= 2  # a try and a retry (max_attempts=2) by the launcher
    # teardown asked SageMaker to stop the job; moto lacks StopTrainingJob (500): reported, not hidden
    assert {r["TrainingJobName"] for r in sent(aws, "StopTrainingJob")} == {"pb-cloud-err"}
    c = tracking.client()
    r = c.search_runs([tracking.experiment_id(c)])[0]
    assert r.info.status == "FAILED" and r.data.tags[tracking.Tag.STATUS] == "failed"


def test_ctrl_c_in_local_mode_stops_the_trainer_and_removes_scratch(dataset, tmp_path, monkeypatch, bucket):
    monkeypatch.chdir(tmp_path)
    seen = {}

    class CtrlC(JobProgress):
        def phase(self, name):
            super().phase(name)
            if name == "training":
                raise KeyboardInterrupt

    import platforms.sagemaker.train as sm

    original = sm.SageMakerPlatform.teardown

    def spy(self, handle):
        seen["run"] = handle.local_run
        original(self, handle)

    monkeypatch.setattr(sm.SageMakerPlatform, "teardown", spy)
    with pytest.raises(KeyboardInterrupt):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), {"bucket": bucket, "local": "true",
                                                                "job_name": "pb-local-int"}, CtrlC(enabled=False))
    local = seen["run"]
    assert local.proc.poll() is not None and local.stopped
    assert not local.root.exists()
    assert local.describe()["TrainingJobStatus"] == "Stopped"
    c = tracking.client()
    assert c.search_runs([tracking.experiment_id(c)])[0].info.status == "KILLED"


def test_phase_seconds_from_secondary_status_transitions():
    from datetime import datetime, timedelta, timezone

    from platforms.sagemaker.train import phase_seconds

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    transitions = [{"Status": "Starting", "StartTime": at(0), "EndTime": at(30)},
                   {"Status": "LaunchingMLInstances", "StartTime": at(30), "EndTime": at(90)},
                   {"Status": "DownloadingTrainingImage", "StartTime": at(90), "EndTime": at(150)},
                   {"Status": "Training", "StartTime": at(150), "EndTime": at(450)},
                   {"Status": "Interrupted", "StartTime": at(450), "EndTime": at(460)},
                   {"Status": "Training", "StartTime": at(460), "EndTime": at(560)},
                   {"Status": "Uploading", "StartTime": at(560), "EndTime": at(570)},
                   {"Status": "Completed", "StartTime": at(570), "EndTime": at(570)}]
    assert phase_seconds(transitions) == {"queued": 30, "provisioning": 60, "image_pull": 60, "training": 400,
                                          "interrupted": 10, "uploading": 10}
