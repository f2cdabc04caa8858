"""The loopback SageMaker training control plane itself (sagemaker_server.py, sagemaker_jobs.py), driven by
boto3: it refuses what SageMaker refuses (bodies moto accepts among them) and runs a job the way the
training-container pages describe it. Its images here are small shell scripts, so nothing trains."""
from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)
from sagemaker_fixtures import job_runner, sagemaker_server, sm_api  # noqa: F401 (fixtures)

ROLE = "arn:aws:iam::123456789012:role/platbench-sm"
SCRIPT_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/script@sha256:" + "b" * 64


def request(name: str, bucket: str, **over) -> dict:
    body = {"TrainingJobName": name, "RoleArn": ROLE,
            "AlgorithmSpecification": {"TrainingImage": SCRIPT_IMAGE, "TrainingInputMode": "File"},
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/jobs"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}}
    body.update(over)
    return body


def script_image(server, script: str, **spec) -> None:
    """An image whose `train` is this shell script (ENTRYPOINT sh -c SCRIPT, argument `train` = $0)."""
    server.images[SCRIPT_IMAGE] = {"entrypoint": ["sh", "-c", script], **spec}


def wait_for(sm, name: str, status=("Completed", "Failed", "Stopped")) -> dict:
    for _ in range(2400):
        d = sm.describe_training_job(TrainingJobName=name)
        if d["TrainingJobStatus"] in status:
            return d
        time.sleep(0.05)
    raise AssertionError(f"{name} still {d['TrainingJobStatus']}")


@pytest.fixture
def clients(sm_api):
    import boto3

    bucket = new_bucket_name()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    return boto3.client("sagemaker"), s3, bucket


def tarball(s3, bucket: str, key: str) -> dict[str, bytes]:
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


# ---------------------------------------------------------------- what it refuses

@pytest.mark.parametrize("change, says", [
    ({"TrainingJobName": "bad_name"}, "at 'TrainingJobName' failed to satisfy constraint: Member must satisfy "
                                      "regular expression pattern"),
    ({"TrainingJobName": "x" * 64}, "Member must have length less than or equal to 63"),
    ({"ResourceConfig": {"InstanceType": "ml.g9.huge", "InstanceCount": 1, "VolumeSizeInGB": 1}},
     "Member must satisfy enum value set"),
    ({"Environment": {"NOT-A-NAME": "1"}}, "at 'Environment.key' failed to satisfy constraint"),
    ({"HyperParameters": {"epochs": "1" * 2501}}, "at 'HyperParameters.epochs' failed to satisfy constraint"),
    ({"StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 300}},
     "MaxWaitTimeInSeconds can be set only for a managed spot training job"),
    ({"EnableManagedSpotTraining": True, "StoppingCondition": {"MaxRuntimeInSeconds": 600,
                                                               "MaxWaitTimeInSeconds": 300}},
     "MaxWaitTimeInSeconds must be greater than or equal to MaxRuntimeInSeconds"),
])
def test_create_refuses_bodies_the_service_refuses(clients, sm_api, change, says):
    """ValidationException for what botocore's client-side validation lets through (it checks no maximum,
    enum or pattern): the service model's own constraints, and StoppingCondition's rules."""
    from botocore.exceptions import ClientError

    sm, _, bucket = clients
    body = request("pb-refused", bucket, **change)
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**body)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert says in err.value.response["Error"]["Message"]
    assert "pb-refused" not in sm_api.jobs


def test_moto_accepts_a_body_the_service_refuses(aws, moto_server):
    """Why the control plane is not moto's: moto creates a job with an invalid name and environment key."""
    import boto3

    sm = boto3.client("sagemaker")  # AWS_ENDPOINT_URL: moto, through the recording proxy
    body = request("bad_name", "any-bucket", Environment={"NOT-A-NAME": "1"})
    sm.create_training_job(**body)
    assert sm.describe_training_job(TrainingJobName="bad_name")["TrainingJobName"] == "bad_name"


def test_names_in_use_and_unknown_jobs(clients, sm_api):
    from botocore.exceptions import ClientError

    sm, _, bucket = clients
    sm.create_training_job(**request("pb-twice", bucket))  # its image is not registered: it fails, quickly
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request("pb-twice", bucket))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    for call in (sm.describe_training_job, sm.stop_training_job):
        with pytest.raises(ClientError) as err:
            call(TrainingJobName="pb-never-made")
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    d = wait_for(sm, "pb-twice")
    assert d["TrainingJobStatus"] == "Failed" and "could not be pulled" in d["FailureReason"]
    with pytest.raises(ClientError) as err:  # a finished job cannot be stopped
        sm.stop_training_job(TrainingJobName="pb-twice")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "in status Failed" in err.value.response["Error"]["Message"]


# ---------------------------------------------------------------- what it runs

CONTRACT = """
set -e
test "$0" = train
cp /opt/ml/input/config/hyperparameters.json /opt/ml/input/config/resourceconfig.json \
   /opt/ml/input/config/inputdataconfig.json /opt/ml/output/data/
find /opt/ml/input/data -type f | sort > /opt/ml/output/data/channel.txt
env | grep -E '^(TRAINING_JOB_|SM_|FROM_)' | sort > /opt/ml/output/data/env.txt
cat /opt/ml/checkpoints/seen.txt > /opt/ml/output/data/checkpoint-in.txt
echo written > /opt/ml/checkpoints/new.txt
echo weights > /opt/ml/model/model.pt
test ! -e /opt/ml/leftover
touch /opt/ml/leftover /tmp/leftover
echo "- Test accuracy: 0.5"; echo "- Test accuracy: 0.75"
"""


def test_a_job_runs_its_image_under_the_container_contract(clients, sm_api, job_runner):
    sm, s3, bucket = clients
    script_image(sm_api, CONTRACT, env={"FROM_IMAGE": "yes"}, toolkit=True)
    s3.put_object(Bucket=bucket, Key="data/a/one.txt", Body=b"1")
    s3.put_object(Bucket=bucket, Key="data/b/two.txt", Body=b"2")
    s3.put_object(Bucket=bucket, Key="ckpt/pb-run/seen.txt", Body=b"from an earlier job")
    body = request("pb-contract", bucket, HyperParameters={"epochs": "2", "lr": "0.1"},
                   Environment={"FROM_REQUEST": "yes"},
                   InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
                       "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/",
                       "S3DataDistributionType": "FullyReplicated"}}}],
                   CheckpointConfig={"S3Uri": f"s3://{bucket}/ckpt/pb-run"},
                   AlgorithmSpecification={"TrainingImage": SCRIPT_IMAGE, "TrainingInputMode": "File",
                                           "MetricDefinitions": [{"Name": "test:accuracy",
                                                                  "Regex": r"Test accuracy: ([0-9.]+)"}]})
    sm.create_training_job(**body)
    d = wait_for(sm, "pb-contract")
    assert d["TrainingJobStatus"] == "Completed", (d.get("FailureReason"), sm_api.jobs["pb-contract"].log())
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]] == [
        "Starting", "LaunchingMLInstances", "Downloading", "DownloadingTrainingImage", "Training", "Uploading",
        "Completed"]
    out = tarball(s3, bucket, "jobs/pb-contract/output/output.tar.gz")
    assert json.loads(out["hyperparameters.json"]) == {"epochs": "2", "lr": "0.1"}
    assert json.loads(out["resourceconfig.json"])["current_host"] == "algo-1"
    assert json.loads(out["inputdataconfig.json"])["training"]["TrainingInputMode"] == "File"
    assert out["channel.txt"].decode().split() == ["/opt/ml/input/data/training/a/one.txt",
                                                   "/opt/ml/input/data/training/b/two.txt"]
    env = dict(line.split("=", 1) for line in out["env.txt"].decode().splitlines())
    assert env["TRAINING_JOB_NAME"] == "pb-contract" and env["TRAINING_JOB_ARN"] == d["TrainingJobArn"]
    assert env["FROM_IMAGE"] == env["FROM_REQUEST"] == "yes"
    assert env["SM_CHANNEL_TRAINING"] == "/opt/ml/input/data/training" and env["SM_HP_EPOCHS"] == "2"
    assert out["checkpoint-in.txt"] == b"from an earlier job"
    assert tarball(s3, bucket, "jobs/pb-contract/output/model.tar.gz") == {"model.pt": b"weights\n"}
    assert s3.get_object(Bucket=bucket, Key="ckpt/pb-run/new.txt")["Body"].read() == b"written\n"
    assert d["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{bucket}/jobs/pb-contract/output/model.tar.gz"
    assert d["FinalMetricDataList"][0]["MetricName"] == "test:accuracy"
    assert d["FinalMetricDataList"][0]["Value"] == 0.75
    # billed: TrainingStartTime → TrainingEndTime, whole seconds, on demand = all of it
    assert d["TrainingStartTime"] <= d["SecondaryStatusTransitions"][2]["StartTime"] < d["TrainingEndTime"]
    assert d["BillableTimeInSeconds"] == d["TrainingTimeInSeconds"] >= 1
    # a private /opt/ml and /tmp: nothing the job wrote is on this machine's own paths
    import os

    assert not os.path.exists("/opt/ml/leftover") and not os.path.exists("/tmp/leftover")


def test_a_failing_image_fails_the_job_with_its_failure_file(clients, sm_api, job_runner):
    sm, s3, bucket = clients
    script_image(sm_api, "echo 'out of cheese' > /opt/ml/output/failure; exit 3")
    sm.create_training_job(**request("pb-fails", bucket))
    d = wait_for(sm, "pb-fails")
    assert d["TrainingJobStatus"] == d["SecondaryStatus"] == "Failed"
    assert d["FailureReason"] == "out of cheese\n"
    script_image(sm_api, "exit 4")
    sm.create_training_job(**request("pb-fails-quietly", bucket))
    assert "exited with status 4" in wait_for(sm, "pb-fails-quietly")["FailureReason"]


STOPPABLE = """
trap 'echo saved > /opt/ml/model/at-sigterm.txt; exit 143' TERM
echo started > /opt/ml/output/data/started.txt
while true; do sleep 0.05; done
"""


@pytest.mark.parametrize("how", ["StopTrainingJob", "MaxRuntimeInSeconds"])
def test_a_stopped_job_gets_sigterm_and_keeps_its_artifacts(clients, sm_api, job_runner, how):
    sm, s3, bucket = clients
    script_image(sm_api, STOPPABLE)
    name = f"pb-stop-{how.lower()}"
    # 3 s: ample for sh to set its trap first (the image's first command), however loaded the machine
    sm.create_training_job(**request(name, bucket, StoppingCondition={
        "MaxRuntimeInSeconds": 3 if how == "MaxRuntimeInSeconds" else 600}))
    if how == "StopTrainingJob":
        wait_for(sm, name, status=("InProgress",))
        while not (sm_api.jobs[name].root / "algo-1/opt_ml/output/data/started.txt").exists():
            time.sleep(0.05)
        sm.stop_training_job(TrainingJobName=name)
        assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    d = wait_for(sm, name)
    assert d["TrainingJobStatus"] == "Stopped" and "FailureReason" not in d
    assert d["SecondaryStatus"] == ("Stopped" if how == "StopTrainingJob" else "MaxRuntimeExceeded")
    assert tarball(s3, bucket, f"jobs/{name}/output/model.tar.gz") == {"at-sigterm.txt": b"saved\n"}
    assert "Stopping" in [t["Status"] for t in d["SecondaryStatusTransitions"]]


def test_managed_spot_bills_fewer_seconds_than_it_ran(clients, sm_api, job_runner):
    """savings = 1 − BillableTimeInSeconds / TrainingTimeInSeconds (model-managed-spot-training page): the
    server's spot market takes spot_savings of the time off."""
    sm, _, bucket = clients
    script_image(sm_api, "sleep 2")
    sm_api.spot_savings = 0.6
    sm.create_training_job(**request("pb-spot", bucket, EnableManagedSpotTraining=True, StoppingCondition={
        "MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}))
    d = wait_for(sm, "pb-spot")
    assert d["TrainingJobStatus"] == "Completed" and d["TrainingTimeInSeconds"] >= 2
    assert 1 <= d["BillableTimeInSeconds"] < d["TrainingTimeInSeconds"]
