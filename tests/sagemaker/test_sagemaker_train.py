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


# a cloud launch runs its image by digest: a tag would be resolved first (platforms/image/pinning.py)
PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/p@sha256:" + "e" * 64


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
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
                "instance_type": "ml.g4dn.xlarge", "poll_seconds": "0.1", "spot": str(spot).lower()}
    p = SageMakerPlatform(settings)
    p.cfg = p.parsed().model_copy(update={"instance_count": 2, "distribution": "torch_distributed"})
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
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
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


def _answer_create_training_job_with(aws, status: int, error: dict):
    """The recording proxy in front of moto answers CreateTrainingJob as the real service does when the
    account lacks quota (AWS JSON protocol error: __type + message); everything else reaches moto."""
    from conftest_clouds import _ProxyHandler

    class Handler(_ProxyHandler):
        def _handle(self):
            if self.headers.get("X-Amz-Target") == "SageMaker.CreateTrainingJob":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.server.requests.append((self.command, self.path, dict(self.headers.items()), body))
                data = json.dumps(error).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-ErrorType", error["__type"])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            super()._handle()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

    aws.RequestHandlerClass = Handler


@pytest.mark.parametrize("spot", [False, True])
def test_no_quota_for_the_instance_type_is_one_line_naming_the_quota(dataset, tmp_path, monkeypatch, bucket, role,
                                                                      aws, spot):
    """Issue 12 item 6: CreateTrainingJob → ResourceLimitExceeded (a new account's 0 GPU quota) becomes
    one line naming the Service Quotas quota and how to raise it."""
    monkeypatch.chdir(tmp_path)
    _answer_create_training_job_with(aws, 400, {"__type": "ResourceLimitExceeded", "message": (
        "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances, with current "
        "utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request "
        "an increase for this quota.")})
    settings = {"bucket": bucket, "role": role, "image_uri": PINNED,
                "instance_type": "ml.g5.xlarge", "spot": str(spot).lower(), "poll_seconds": "0.1"}
    with pytest.raises(UserError) as err:
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings)
    text = str(err.value)
    quota = f"ml.g5.xlarge for {'spot ' if spot else ''}training job usage"
    assert "\n" not in text and f"quota '{quota}'" in text and "request-service-quota-increase" in text
    assert len(sent(aws, "CreateTrainingJob")) == 1 and not sent(aws, "StopTrainingJob")


def test_jobs_of_one_run_share_its_checkpoints(dataset, tmp_path, monkeypatch, bucket, role, aws):
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
    requests = sent(aws, "CreateTrainingJob")
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
