"""The SageMaker launcher against loopback servers on 127.0.0.1: moto (S3, IAM) and the SageMaker training
control plane (conftest.py: sagemaker_server.py, which runs each job from SageMaker's container contract):
checks before upload, the dry-run plan, the CreateTrainingJob request the SDK sends, a cloud-mode job that
trains and is collected and billed, the full local-mode flow (stage → submit → native run under the /opt/ml
contract → collect → MLflow) and
teardown after an error while waiting. (Ctrl-C in local and cloud mode, a crashed job, passing API faults: the
launcher conformance kit, tests/launchers.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)
from _services import workdir  # noqa: F401 (fixture: one MLflow store per module, slow to create)
from sagemaker_fixtures import PLATBENCH_IMAGE, job_runner, sagemaker_server, sm_api  # noqa: F401 (fixtures)

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


# a cloud launch runs its image by digest: a tag would be resolved first (platforms/image/pinning.py)
PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/p@sha256:" + "e" * 64


def objects(bucket: str) -> list[str]:
    import boto3

    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def run(job: Job, settings: dict, progress=None):
    return launch.launch("sagemaker", job, settings, progress or JobProgress(enabled=False))


def latest_run():
    """The newest MLflow run in the working folder's store (tests of a module run one after another)."""
    c = tracking.client()
    return c.search_runs([tracking.experiment_id(c)], order_by=["attributes.start_time DESC"], max_results=1)[0]


def sent(where, target: str) -> list[dict]:
    """The SageMaker requests `where` got: the recording proxy in front of moto, or the control plane."""
    if hasattr(where, "calls"):
        with where.lock:
            return [dict(body) for op, body in where.calls if op == target]
    return [json.loads(body) for _, _, headers, body in where.requests
            if headers.get("X-Amz-Target") == f"SageMaker.{target}"]


def script_image(server, image: str, script: str) -> None:
    """`image` stands for one whose `train` is this shell script (nothing trains)."""
    server.images[image] = {"entrypoint": ["sh", "-c", script]}


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
    # issue 12 item 9: V100 (sm_70) and K80 have no kernels in the image's torch build
    ({"instance_type": "ml.p3.2xlarge"}, "ml.p3.2xlarge has V100 GPUs (sm_70), which the image's torch build cannot use"),
    ({"run_name": "not a name!"}, "run_name 'not a name!' is not valid"),
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
                   "aws sagemaker stop-training-job", "aws s3api head-bucket", "ManifestFile",
                   "a GPU instance adds device=cuda to the hyperparameters"):
        assert needle in text, needle
    request = json.loads(re.search(r"--cli-input-json '(\{.*\})'", text).group(1))
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateTrainingJob").input_shape)  # raises if invalid
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    # the default instance type (ml.g4dn.xlarge) has a GPU: the trainer must use it; a CPU instance: its auto
    assert request["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge" and request["HyperParameters"]["device"] == "cuda"
    cpu = launch.plan_text("sagemaker", Job(data=dataset, out=tmp_path / "o", epochs=2),
                           {**settings, "instance_type": "ml.m5.xlarge"})
    assert "device" not in json.loads(re.search(r"--cli-input-json '(\{.*\})'", cpu).group(1))["HyperParameters"]
    assert objects(bucket) == [] and sent(aws, "CreateTrainingJob") == []


def test_local_mode_end_to_end(workdir, dataset, tmp_path, monkeypatch, bucket):
    monkeypatch.chdir(workdir)
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



def test_cloud_mode_job_trains_and_is_collected_and_billed(workdir, dataset, tmp_path, monkeypatch, bucket, role,
                                                          sm_api, job_runner):
    """Issue 29: the SDK's CreateTrainingJob runs the platbench image under SageMaker's container contract;
    the run is FINISHED with the job's own results.json and model, and its cost is the BillableTimeInSeconds
    the service reported × the price (managed spot: the discount is in the billable seconds)."""
    import boto3
    import botocore.session
    from botocore.validate import validate_parameters

    monkeypatch.chdir(workdir)
    sm_api.spot_savings = 0.5
    image = PLATBENCH_IMAGE
    # a CPU instance: the job's instance is this machine, without a GPU (a GPU instance's trainer is started with
    # --device cuda and fails here, as it should: test_a_gpu_instance_...)
    settings = {"bucket": bucket, "role": "platbench-sm", "image_uri": image, "spot": "true", "max_run": "1800",
                "max_wait": "3600", "instance_type": "ml.m5.xlarge", "job_name": "pb-cloud-1", "poll_seconds": "0.1"}
    job = Job(data=dataset, out=tmp_path / "out", epochs=1, hyperparameters={"lr": "0.01"})
    outcome, run_id = run(job, settings)
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName="pb-cloud-1")
    assert outcome.status == "finished", (outcome.message, sm_api.jobs["pb-cloud-1"].log()[-3000:])
    (request,) = sent(sm_api, "CreateTrainingJob")
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateTrainingJob").input_shape)
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert request["RoleArn"] == role
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    assert request["CheckpointConfig"]["S3Uri"] == f"s3://{bucket}/platbench/checkpoints/pb-cloud-1"
    assert request["HyperParameters"] == {"model": "small", "seed": "0", "epochs": "1", "lr": "0.01",
                                          "dataset_name": "colors"}
    assert request["Environment"]["PLATBENCH_IMAGE_DIGEST"] == "sha256:" + "a" * 64
    source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "ManifestFile" and source["S3Uri"].endswith("/sagemaker.manifest")
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=source["S3Uri"].split(bucket + "/")[1])["Body"].read())
    assert manifest[0] == {"prefix": f"s3://{bucket}/platbench/"} and len(manifest) == 8  # manifest + 6 shards
    # each metric definition's regex reads the trainer's own log line for that metric
    defs = {d["Name"]: d["Regex"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(defs) == set(loglines.METRICS)
    for name, regex in defs.items():
        assert float(re.search(regex, loglines.line(name, 0.875)).group(1)) == 0.875
    assert not [d for d in model.operation_model("CreateTrainingJob").input_shape.members if d == "DebugHookConfig"
                and d in request]

    # the job's own outputs, collected from model.tar.gz / output.tar.gz
    results = json.loads((job.out / "results.json").read_text())
    assert results["job_id"] == "pb-cloud-1" and results["image_digest"] == "sha256:" + "a" * 64
    assert (job.out / "model" / "model.pt").is_file()
    keys = objects(bucket)
    assert any(k.startswith("platbench/checkpoints/pb-cloud-1/") for k in keys)  # CheckpointConfig synced
    c = tracking.client()
    r = c.get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED" and t[tracking.Tag.STATUS] == "finished"
    assert {a.path for a in c.list_artifacts(run_id)} >= {"results.json", "metrics.jsonl", "train.log", "model"}
    assert m["final_test_accuracy"] == pytest.approx(results["test_accuracy"])
    # phases from SecondaryStatusTransitions; billing from what the service reported
    assert described["TrainingJobStatus"] == "Completed"
    assert m["phase_seconds_training"] > 0 and "phase_seconds_downloading" in m and "phase_seconds_uploading" in m
    billed, ran = described["BillableTimeInSeconds"], described["TrainingTimeInSeconds"]
    price = 0.23  # ml.m5.xlarge, training, us-east-1 (platforms/sagemaker/prices.yaml)
    assert m["billed_seconds"] == billed < ran
    assert m["cost_usd"] == pytest.approx(billed * price / 3600)
    assert m["cost_list_estimate_usd"] == pytest.approx(ran * price / 3600)
    assert m["spot_savings_fraction"] == pytest.approx(1 - billed / ran)
    assert t[tracking.Tag.PRICE_BASIS] == "spot"
    assert m["sagemaker_test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-4)  # FinalMetricDataList
    assert sent(sm_api, "DescribeTrainingJob") and not sent(sm_api, "StopTrainingJob")  # finished: nothing to stop


def test_a_gpu_instance_runs_the_trainer_on_cuda_never_silently_on_the_cpu(workdir, dataset, tmp_path, monkeypatch,
                                                                            bucket, role, sm_api, job_runner):
    """A GPU instance (its family in GPU_FAMILIES) starts the trainer with device=cuda in its hyperparameters.
    The loopback instance is this machine, without a GPU, as an instance would be whose driver the image's
    torch cannot use: the job fails in the trainer's one line (its FailureReason), nothing collected, instead
    of training on the CPU at the GPU's price (issue 24 item 9)."""
    monkeypatch.chdir(workdir)
    settings = {"bucket": bucket, "role": role, "image_uri": PLATBENCH_IMAGE, "instance_type": "ml.g5.xlarge",
                "job_name": "pb-gpu", "poll_seconds": "0.1"}
    outcome, _ = run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    (request,) = sent(sm_api, "CreateTrainingJob")
    assert request["HyperParameters"]["device"] == "cuda"
    assert outcome.status == "failed"
    assert outcome.message.startswith("error: --device cuda: CUDA is not usable: "), outcome.message
    assert "\n" not in outcome.message.strip() and not list((tmp_path / "out").iterdir())  # nothing collected


def test_billed_cost_counts_two_instances_once(dataset, tmp_path, monkeypatch, bucket, role, sm_api, job_runner):
    """cost = BillableTimeInSeconds (the job's wall-clock, as the service reports it) × the price per hour of
    the whole job: the instance count once. Managed spot: the discount is already in BillableTimeInSeconds
    (savings = 1 − billable / training seconds, model-managed-spot-training page), so the on-demand price
    applies and the cost is the spot bill (basis `spot`). Both instances run a one-second image. The job on
    demand and as managed spot, side by side (one staging: the second finds the shards there)."""
    from platforms.core.progress import JobProgress
    from platforms.sagemaker.train import SageMakerPlatform

    monkeypatch.chdir(tmp_path)
    script_image(sm_api, PINNED, "sleep 1")
    sm_api.spot_savings = 0.7
    jobs = []
    for spot in (False, True):
        settings = {"bucket": bucket, "role": role, "image_uri": PINNED, "instance_count": "2",
                    "distribution": "torch_distributed", "instance_type": "ml.g4dn.xlarge", "poll_seconds": "0.1",
                    "spot": str(spot).lower()}
        p = SageMakerPlatform(settings)
        job = Job(data=dataset, out=tmp_path / f"out-{spot}", epochs=1)
        p.check(job)
        p.stage(job)
        jobs.append((spot, p, job, p.submit(job, {})))
    for spot, p, job, handle in jobs:
        outcome = p.wait(handle, JobProgress(enabled=False))
        (request,) = [r for r in sent(sm_api, "CreateTrainingJob") if r["TrainingJobName"] == handle.job_name]
        assert request["ResourceConfig"]["InstanceCount"] == 2
        d = handle.described
        assert d["ResourceConfig"]["InstanceCount"] == 2 and d["TrainingJobStatus"] == "Completed"
        assert len(sm_api.jobs[handle.job_name].procs) == 2  # one container per instance
        billed, ran = d["BillableTimeInSeconds"], d["TrainingTimeInSeconds"]
        assert (billed < ran) if spot else (billed == ran)
        price = 0.7364  # ml.g4dn.xlarge, training, us-east-1 (platforms/sagemaker/prices.yaml)
        assert p.price_per_hour() == pytest.approx(2 * price)
        assert outcome.billed_seconds == billed
        assert outcome.cost_usd == pytest.approx(billed * 2 * price / 3600)
        assert outcome.list_estimate_usd == pytest.approx(ran * 2 * price / 3600)
        assert outcome.metrics["billed_instance_seconds"] == 2 * billed
        assert outcome.metrics["spot_savings_fraction"] == pytest.approx(1 - billed / ran)
        assert (outcome.metrics["spot_savings_fraction"] > 0) is spot
        tags = p.run_tags(job)
        assert tags[tracking.Tag.PRICE_BASIS] == ("spot" if spot else "on-demand")
        assert "ml.g4dn.xlarge 0.7364/h ×2" in tags[tracking.Tag.PRICE_SOURCE]


def test_an_error_while_waiting_stops_the_job_and_marks_the_run_failed(workdir, dataset, tmp_path, monkeypatch, bucket,
                                                                       role, sm_api, job_runner):
    import botocore.exceptions

    import platforms.clouds.aws.sdk as s3

    monkeypatch.chdir(workdir)
    monkeypatch.setattr(s3, "MAX_ATTEMPTS", 2)
    script_image(sm_api, PINNED, "trap 'exit 143' TERM; while true; do sleep 0.05; done")  # runs until stopped
    # the SageMaker API keeps failing while the job is being watched: retried (and counted), then an error
    sm_api.fail("DescribeTrainingJob", "ServiceUnavailable", 100)
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
                "job_name": "pb-cloud-err", "poll_seconds": "0.1"}
    with pytest.raises(botocore.exceptions.ClientError):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    assert len(sent(sm_api, "DescribeTrainingJob")) >= 2  # a try and a retry (max_attempts=2) by the launcher
    # teardown asked SageMaker to stop the job, and it stopped (SIGTERM to the image)
    assert {r["TrainingJobName"] for r in sent(sm_api, "StopTrainingJob")} == {"pb-cloud-err"}
    job = sm_api.jobs["pb-cloud-err"]
    job.thread.join(timeout=60)
    # SIGTERM: the image's trap exits 143, or the signal ends it before the trap is set
    assert job.status == "Stopped" and all(p.returncode in (143, -15) for p in job.procs)
    r = latest_run()
    assert r.info.status == "FAILED" and r.data.tags[tracking.Tag.STATUS] == "failed"


def test_a_failed_cloud_job_reports_its_failure_reason(workdir, dataset, tmp_path, monkeypatch, bucket, role, sm_api,
                                                      job_runner):
    """/opt/ml/output/failure → DescribeTrainingJob's FailureReason → the run's message; nothing is collected
    from a failed job, and a failed job is not stopped."""
    monkeypatch.chdir(workdir)
    script_image(sm_api, PINNED, "echo 'CUDA out of memory at epoch 1' > /opt/ml/output/failure; exit 1")
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED, "job_name": "pb-cloud-fails",
                "poll_seconds": "0.1"}
    outcome, run_id = run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    assert outcome.status == "failed" and outcome.message == "CUDA out of memory at epoch 1\n"
    assert outcome.billed_seconds >= 1  # a failed job is billed up to the failure
    assert not list((tmp_path / "out").iterdir())  # nothing collected
    r = tracking.client().get_run(run_id)
    assert r.info.status == "FAILED" and r.data.tags["platbench.sagemaker.secondary_status"] == "Failed"
    assert not sent(sm_api, "StopTrainingJob")


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


# ---------------------------------------------------------------- issue 12: first real run

def test_generated_job_names_fit_63_characters_and_keep_their_unique_suffix(tmp_path):
    """Issue 12 item 8: TrainingJobName is at most 63 characters of ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
    (API_CreateTrainingJob): a long model name is cut, never the time stamp and random suffix, and the
    cut never leaves a trailing "-"."""
    from platforms.sagemaker.train import JOB_NAME_RE, SageMakerPlatform

    p = SageMakerPlatform({"bucket": "bkt"})
    for n in range(30, 80):
        model = ("resnet-" * 12)[:n]
        names = {p._job_name(Job(data=tmp_path, out=tmp_path, model=model)) for _ in range(3)}
        for name in names:
            assert len(name) <= 63 and JOB_NAME_RE.match(name), name
            assert re.search(r"-\d{8}-\d{6}-[0-9a-f]{4}$", name), name
        assert len(names) == 3
    run_named = SageMakerPlatform({"bucket": "bkt", "run_name": "r" * 63})._job_name(Job(data=tmp_path, out=tmp_path))
    assert len(run_named) == 63 and JOB_NAME_RE.match(run_named) and run_named.startswith("r" * 40)


def test_image_cuda_arch_list_is_the_locks_torch_and_old_gpus_are_refused():
    """Issue 12 item 9: the arch list the launcher checks against is the lock's torch build's own
    (torch.cuda.get_arch_list() answers on a machine without a GPU too)."""
    import torch

    from platforms.sagemaker.train import GPU_FAMILIES, IMAGE_CUDA_ARCHS, arch_supported, unusable_gpu

    lock = Path(__file__).resolve().parents[2] / "constraints.txt"
    pinned = re.search(r"^torch==(\S+)$", lock.read_text(), re.M).group(1)
    if torch.__version__.split("+")[0] != pinned or torch.version.cuda is None:
        pytest.skip(f"this torch ({torch.__version__}) is not the lock's CUDA build ({pinned})")
    assert tuple(torch.cuda.get_arch_list()) == IMAGE_CUDA_ARCHS
    assert arch_supported((8, 9)) and arch_supported((9, 0)) and not arch_supported((7, 0))
    assert not arch_supported((6, 0)) and not arch_supported((6, 1))  # Pascal: P100, P4
    refused = {family for family in GPU_FAMILIES if unusable_gpu(family + ".xlarge")}
    assert refused == {"ml.p2", "ml.p3", "ml.p3dn"}
    assert unusable_gpu("ml.g4dn.xlarge") is None and unusable_gpu("ml.m5.xlarge") is None


def test_a_bucket_in_another_region_is_refused_in_check(dataset, tmp_path, monkeypatch, aws, role):
    """Issue 12 item 4: S3DataSource — the input bucket must be in the job's region (GetBucketLocation)."""
    import boto3

    monkeypatch.chdir(tmp_path)
    name = new_bucket_name()
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(UserError, match=re.escape(f"bucket {name!r} is in eu-west-1, the job in us-east-1")):
        run(Job(data=dataset, out=tmp_path / "out", epochs=1),
            {"bucket": name, "role": role, "image_uri": PINNED,
             "region": "us-east-1"})
    assert objects(name) == [] and sent(aws, "CreateTrainingJob") == []
    assert not (tmp_path / "mlflow.db").exists()


def test_no_quota_for_the_instance_type_is_one_line_naming_the_quota(workdir, dataset, tmp_path, monkeypatch, bucket,
                                                                      role, sm_api):
    """Issue 12 item 6: CreateTrainingJob → ResourceLimitExceeded (a new account's 0 GPU quota) becomes
    one line naming the Service Quotas quota and how to raise it: on demand, then managed spot (its own
    quota; one staging: the second launch finds the shards there)."""
    monkeypatch.chdir(workdir)
    for i, spot in enumerate((False, True)):
        sm_api.fail("CreateTrainingJob", ("ResourceLimitExceeded", (
            "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances, with current "
            "utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to "
            "request an increase for this quota.")), 1)
        settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
                    "instance_type": "ml.g5.xlarge", "spot": str(spot).lower(), "poll_seconds": "0.1"}
        with pytest.raises(UserError) as err:
            run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
        text = str(err.value)
        quota = f"ml.g5.xlarge for {'spot ' if spot else ''}training job usage"
        assert "\n" not in text and f"quota '{quota}'" in text and "request-service-quota-increase" in text
        requests = sent(sm_api, "CreateTrainingJob")
        assert len(requests) == i + 1  # this launch's one request
        request = requests[-1]
        assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge" and not sent(sm_api, "StopTrainingJob")
        assert request["TrainingJobName"] not in sm_api.jobs  # refused: nothing was created


def test_jobs_of_one_run_share_its_checkpoints(dataset, tmp_path, monkeypatch, bucket, role, sm_api):
    """Issue 12 item 7: the checkpoint location comes from the run (--set run_name=…), not the job, so a
    new job resumes a spot-interrupted one (CheckpointConfig: existing checkpoints are copied into
    /opt/ml/checkpoints when a job starts, model-checkpoints page)."""
    from platforms.sagemaker.train import SageMakerPlatform

    monkeypatch.chdir(tmp_path)
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
                "spot": "true", "run_name": "cifar-spot-1", "poll_seconds": "0.1"}
    names = []
    for _ in range(2):
        p = SageMakerPlatform(settings)
        job = Job(data=dataset, out=tmp_path / "out", epochs=1)
        p.check(job)
        p.stage(job)
        handle = p.submit(job, {})
        outcome = p.wait(handle, JobProgress(enabled=False))
        names.append(handle.job_name)
        assert outcome.tags["platbench.run_name"] == "cifar-spot-1"
    requests = [r for r in sent(sm_api, "CreateTrainingJob") if r["TrainingJobName"] in names]
    assert [r["TrainingJobName"] for r in requests] == names and names[0] != names[1]
    assert all(n.startswith("cifar-spot-1-") for n in names)
    assert {r["CheckpointConfig"]["S3Uri"] for r in requests} == {f"s3://{bucket}/platbench/checkpoints/cifar-spot-1"}


@pytest.mark.parametrize("layout", ["relative key", "bare name"])
def test_the_trainer_finds_shards_wherever_the_manifest_channel_puts_them(dataset, tmp_path, monkeypatch, bucket,
                                                                          role, aws, layout):
    """Issue 12 item 5: stage through the very ManifestFile the launcher writes, then read it back as the
    service does — each entry is the manifest's prefix + a relative key (API_S3DataSource) — into a channel
    folder. The pages on File and FastFile input modes do not define the path each object gets under
    /opt/ml/input/data/<channel>/ (its relative key, or its bare name), so both layouts must train alike."""
    import boto3

    from platforms.sagemaker.train import SageMakerPlatform
    from trainer.data.staged import materialize

    monkeypatch.chdir(tmp_path)
    p = SageMakerPlatform({"bucket": bucket, "role": role, "image_uri": PINNED})
    job = Job(data=dataset, out=tmp_path / "out", epochs=1)
    p.check(job)
    p.stage(job)
    uri, kind = p._channel
    assert kind == "ManifestFile"
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=uri.split(f"s3://{bucket}/", 1)[1])["Body"].read())
    prefix, keys = manifest[0]["prefix"], manifest[1:]
    channel = tmp_path / "opt-ml" / "input" / "data" / "training"
    for key in keys:
        full = prefix + key
        b, _, k = full[len("s3://"):].partition("/")
        dest = channel / (key if layout == "relative key" else key.rsplit("/", 1)[-1])
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(b, k, str(dest))
    folder = materialize(channel, {"PLATBENCH_UNPACK_DIR": str(tmp_path / "unpacked")})
    got = sorted(str(f.relative_to(folder)) for f in folder.rglob("*.png"))
    assert got == sorted(str(f.relative_to(dataset)) for f in dataset.rglob("*.png"))
