"""The Vertex AI launcher: the CustomJob it sends (checked against the API's own message types), checks
before upload, the full local-mode flow against the Cloud Storage emulator on 127.0.0.1, and cloud mode end
to end: google-cloud-aiplatform's JobService client, signed with a service-account key, against the loopback
Vertex AI server (vertex_server.py), which parses every body into the SDK's messages, refuses what the
service refuses and runs the job's container as Vertex documents it (vertex_jobs.py: the image's `train`
with the AIP_* / CLUSTER_SPEC environment and /gcs standing in as a folder synced with the emulator).
(Ctrl-C, a failed job, an error while waiting, passing API faults: the launcher conformance kit, tests/launchers.)

The real trainer runs the container contract in local mode, as two DDP replicas in the cloud, and where its
device check is what is tested; the cloud job whose outputs, cost and resume are tested runs the stand-in
trainer (tests/stand_in, through the server's runtime environment): those are the launcher's and the server's."""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from conftest_clouds import gcs, gcs_server, new_bucket_name  # noqa: F401 (fixtures)
from stand_in import stand_in  # noqa: F401 (fixture)
from vertex_fixtures import bucket_in, job_service  # noqa: F401 (fixtures)

from platforms.core import launch

from platforms.core import tracking
from platforms.core.api import Job
from platforms.errors import UserError
from platforms.core.progress import JobProgress


# a cloud launch runs its image by digest: a tag would be resolved first (platforms/image/pinning.py)
PINNED = "us-docker.pkg.dev/p/r/platbench@sha256:" + "b" * 64
N1_HOUR = 0.437  # n1-standard-8, USD per hour (prices.yaml)
# The jobs that must finish run without an accelerator: the server's replicas are this machine, without a GPU
# (an accelerator's trainer is started with --device cuda and fails here, as it should: test_an_accelerator_...)
CPU = {"accelerator_count": "0"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("vx") / "colors", train_per_class=24, test_per_class=8)


@pytest.fixture
def bucket(gcs):
    from google.cloud import storage

    name = new_bucket_name()
    storage.Client(project="test").create_bucket(name)
    return name


def blobs(bucket: str) -> list[str]:
    from google.cloud import storage

    return [b.name for b in storage.Client(project="test").list_blobs(bucket)]


def run(job: Job, settings: dict, progress=None):
    return launch.launch("vertex", job, settings, progress or JobProgress(enabled=False))


def running_seconds(described: dict) -> float:
    """endTime - startTime as the server reported them (RFC 3339)."""
    t = {k: datetime.fromisoformat(described[k].replace("Z", "+00:00")) for k in ("startTime", "endTime")}
    return (t["endTime"] - t["startTime"]).total_seconds()


def test_custom_job_is_a_valid_vertex_message(dataset, tmp_path):
    from google.cloud import aiplatform_v1

    from platforms.vertex.train import VertexPlatform

    p = VertexPlatform({"project": "p", "bucket": "bkt", "image_uri": "us-docker.pkg.dev/p/r/platbench@sha256:"
                        + "b" * 64, "machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "spot": "true",
                        "max_run": "5400", "service_account": "trainer@p.iam.gserviceaccount.com"})
    spec = p.custom_job(Job(data=dataset, out=tmp_path, epochs=2), "pb-1", "gs://bkt/platbench/datasets/f/"
                        "platbench-manifest.json", "colors")
    msg = aiplatform_v1.CustomJob.from_json(json.dumps(spec))  # unknown fields or wrong types raise here
    pool = msg.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "g2-standard-8"
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    assert pool.machine_spec.accelerator_count == 1 and pool.replica_count == 1
    assert list(pool.container_spec.args)[:3] == ["train", "--dataset-name", "colors"]
    assert "--epochs" in pool.container_spec.args
    env = {e.name: e.value for e in pool.container_spec.env}
    assert env["PLATBENCH_DATA"].startswith("gs://bkt/") and env["PLATBENCH_IMAGE_DIGEST"] == "sha256:" + "b" * 64
    assert msg.job_spec.base_output_directory.output_uri_prefix == "gs://bkt/platbench/jobs/pb-1"
    assert msg.job_spec.scheduling.strategy == aiplatform_v1.Scheduling.Strategy.SPOT
    assert msg.job_spec.scheduling.timeout.total_seconds() == 5400
    assert msg.job_spec.service_account == "trainer@p.iam.gserviceaccount.com"
    assert json.loads(aiplatform_v1.CustomJob.to_json(msg, use_integers_for_enums=False))["jobSpec"][
        "workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] == "NVIDIA_L4"


@pytest.mark.parametrize("settings, message", [
    ({"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_L4"}, "NVIDIA_L4 cannot be attached to n1-standard-8"),
    ({"accelerator_type": "NVIDIA_GTX_1080"}, "unknown accelerator type 'NVIDIA_GTX_1080'"),
    ({"machine_type": "huge-box"}, "unknown machine type 'huge-box'"),
    ({"region": "moon-central1"}, "unknown region 'moon-central1'"),
    ({"bucket": None}, "no bucket"),
    ({"bucket": "missing-bucket-zz"}, "bucket 'missing-bucket-zz' does not exist"),
    ({"project": None}, "no project"),
    ({"image_uri": None}, "no image"),
    ({"replica_count": "0"}, "replica_count"),   # 2+ replicas are multi-node now (issue 17); 0 is no job
    ({"replica_count": "2", "local": "true"}, "local=true runs one replica on this machine"),
    # issue 12 item 9: Pascal and Volta GPUs have no kernels in the image's torch build
    ({"accelerator_type": "NVIDIA_TESLA_P100"}, "NVIDIA_TESLA_P100 (sm_60) cannot run the image's torch build"),
    ({"accelerator_type": "NVIDIA_TESLA_P4"}, "NVIDIA_TESLA_P4 (sm_61) cannot run the image's torch build"),
    ({"accelerator_type": "NVIDIA_TESLA_V100"}, "NVIDIA_TESLA_V100 (sm_70) cannot run the image's torch build"),
    ({"run_name": "no spaces"}, "run_name 'no spaces' is not valid"),
])
def test_bad_settings_fail_before_anything_is_uploaded(dataset, tmp_path, monkeypatch, bucket, job_service,
                                                       settings, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    base = {"project": "p", "bucket": bucket, "image_uri": PINNED,
            "api_endpoint": job_service.url}
    base.update(settings)
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "o"), {k: v for k, v in base.items() if v is not None})
    assert blobs(bucket) == [] and job_service.created == []
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_credentials_are_reported_before_anything_is_uploaded(dataset, tmp_path, monkeypatch, bucket):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # no metadata-server probe off this machine
    with pytest.raises(UserError, match="no Google Cloud credentials found"):
        run(Job(data=dataset, out=tmp_path / "o"), {"project": "p", "bucket": bucket, "image_uri": PINNED})
    assert blobs(bucket) == []


def test_dry_run_prints_gcloud_commands_and_creates_nothing(dataset, tmp_path, bucket, job_service):
    text = launch.plan_text("vertex", Job(data=dataset, out=tmp_path / "o"), {
        "project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url})
    for needle in ("gcloud ai custom-jobs create", "gcloud ai custom-jobs describe", "gcloud ai custom-jobs cancel",
                   "gcloud storage cp SHARD.tar", "NVIDIA_TESLA_T4", "an accelerator adds --device cuda to the args"):
        assert needle in text, needle
    job_spec = json.loads(re.search(r"# job\.yaml: (\{.*\})", text).group(1))
    from google.cloud import aiplatform_v1

    aiplatform_v1.CustomJobSpec.from_json(json.dumps(job_spec))
    # the default machine has a T4: the trainer must use it; without an accelerator: its auto
    args = job_spec["workerPoolSpecs"][0]["containerSpec"]["args"]
    assert args[args.index("--device") + 1] == "cuda"
    cpu = launch.plan_text("vertex", Job(data=dataset, out=tmp_path / "o"), {
        "project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url, **CPU})
    assert "--device" not in json.loads(re.search(r"# job\.yaml: (\{.*\})", cpu).group(1))[
        "workerPoolSpecs"][0]["containerSpec"]["args"]
    assert blobs(bucket) == [] and job_service.created == []


def test_local_mode_end_to_end_with_naive_staging(dataset, tmp_path, monkeypatch, bucket):
    """Local mode runs the job's container contract natively; the dataset is staged naively (one object per
    file: the trainer reads the folder through /gcs), where cloud mode's tests stage shards."""
    monkeypatch.chdir(tmp_path)
    job = Job(data=dataset, out=tmp_path / "out", epochs=1)
    outcome, run_id = run(job, {"bucket": bucket, "local": "true", "job_name": "pb-vx-1", "accelerator_type": "none",
                                "staging": "naive"})
    assert outcome.status == "finished", outcome.message
    names = blobs(bucket)
    base = "platbench/jobs/pb-vx-1/"
    assert {base + "output/results.json", base + "output/metrics.jsonl", base + "output/train.log",
            base + "model/model.pt", base + "model/model.json"} <= set(names)
    assert any(n.startswith(base + "checkpoints/") for n in names)  # AIP_CHECKPOINT_DIR through /gcs
    assert (job.out / "results.json").is_file() and (job.out / "model" / "model.pt").is_file()
    c = tracking.client()
    r = c.get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    for name in ("upload_s_per_mb", "download_s_per_mb", "phase_seconds_training", "phase_seconds_provisioning",
                 "final_test_accuracy", "collect_mb"):
        assert name in m, name
    assert m["phase_seconds_training"] > 0
    assert t[tracking.Tag.PLATFORM] == "vertex" and t[tracking.Tag.LOCAL_MODE] == "true"
    assert t[tracking.Tag.INSTANCE_TYPE] == "n1-standard-8" and t[tracking.Tag.DATASET] == "colors"
    assert t["platbench.vertex.state"] == "JOB_STATE_SUCCEEDED"
    # naive staging (was test_naive_staging_runs_the_same_job): every file its own object
    assert m["upload_objects_sent"] == len(list(dataset.rglob("*.png")))
    assert t[tracking.Tag.STAGING] == "naive"


def test_a_cloud_job_runs_on_the_server_and_its_outputs_and_cost_come_back(stand_in, tmp_path, monkeypatch, bucket,
                                                                         job_service):
    """Cloud mode end to end: the SDK creates the job, the server runs the image's `train` under Vertex's
    documented environment, the launcher polls it to JOB_STATE_SUCCEEDED, collects results.json and the model
    from the base output directory, and prices the job's own startTime → endTime. A Spot job: prices.yaml has
    no training_spot section, so it is priced on demand and labelled so.
    Then issue 12 item 7: the base output directory (hence AIP_CHECKPOINT_DIR = <base>/checkpoints/) comes
    from the run (--set run_name=…), so a second job of the run resumes from the first one's checkpoints:
    here the same job again finds the first's last epoch there and trains nothing more."""
    from google.cloud import aiplatform_v1

    monkeypatch.chdir(tmp_path)
    job_service.runtime_env.update(stand_in.env(base={}))
    settings = {"project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url,
                "poll_seconds": "0.05", "job_name": "pb-vx-cloud", "spot": "true", "run_name": "cifar-spot-1", **CPU}
    job = Job(data=stand_in.data, out=tmp_path / "out", epochs=1)
    outcome, run_id = run(job, settings)
    assert outcome.status == "finished", outcome.message
    (created,) = job_service.created
    assert created["displayName"] == "pb-vx-cloud"
    pool = created["jobSpec"]["workerPoolSpecs"][0]
    machine = pool["machineSpec"]  # the REST transport sends enums as numbers (enum-encoding=int)
    assert machine["machineType"] == "n1-standard-8" and not machine.get("acceleratorCount")  # no accelerator
    assert "--device" not in pool["containerSpec"]["args"]  # without a GPU: the trainer's auto
    assert aiplatform_v1.Scheduling.Strategy(created["jobSpec"]["scheduling"]["strategy"]).name == "SPOT"
    assert pool["containerSpec"]["imageUri"] == PINNED
    c = tracking.client()
    r = c.get_run(run_id)
    env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
    assert env["PLATBENCH_DATA"] == f"gs://{bucket}/platbench/datasets/" + \
        r.data.tags["platbench.dataset_fingerprint"] + "/platbench-manifest.json"
    # what the trainer wrote through /gcs under AIP_MODEL_DIR's parent and AIP_CHECKPOINT_DIR is in the bucket
    base = "platbench/jobs/cifar-spot-1/"  # the run's, not the job's (run_name)
    names = set(blobs(bucket))
    assert {base + "output/results.json", base + "model/model.pt", base + "model/model.json"} <= names
    assert any(n.startswith(base + "checkpoints/") for n in names)
    results = json.loads((job.out / "results.json").read_text())
    assert (job.out / "model" / "model.pt").is_file()
    (name,) = job_service.jobs
    assert results["platform"] == "vertex" and results["job_id"] == name.rsplit("/", 1)[1]  # CLOUD_ML_JOB_ID
    assert results["image_digest"] == "sha256:" + "b" * 64
    # cost: the server's startTime → endTime × the machine's hourly price
    described = job_service.jobs[name].describe()
    assert described["state"] == "JOB_STATE_SUCCEEDED"
    assert outcome.cost_usd == pytest.approx(running_seconds(described) * N1_HOUR / 3600) == outcome.list_estimate_usd
    assert r.data.metrics["cost_usd"] == pytest.approx(outcome.cost_usd) and outcome.billed_seconds is None
    assert r.data.tags[tracking.Tag.PRICE_BASIS] == "on-demand (no spot price)"
    assert "n1-standard-8 0.437/h ×1" in r.data.tags[tracking.Tag.PRICE_SOURCE]
    assert {"queued", "provisioning", "training"} <= set(outcome.phases)
    assert outcome.phases["training"] == pytest.approx(running_seconds(described))
    assert r.info.status == "FINISHED" and r.data.metrics["final_test_accuracy"] >= 0
    assert job_service.cancelled == []  # it ended by itself: nothing to cancel
    assert outcome.tags["platbench.run_name"] == "cifar-spot-1"
    assert outcome.tags["platbench.checkpoint_uri"] == f"gs://{bucket}/platbench/jobs/cifar-spot-1/checkpoints/"
    assert results["epochs_completed"] == 1 and results["resumed_from_epoch"] is None

    # (was test_jobs_of_one_run_share_its_checkpoint_directory) a second job of the run, its name generated
    from platforms.vertex.train import VertexPlatform

    p = VertexPlatform({k: v for k, v in settings.items() if k != "job_name"})
    handle, again = _cloud_outcome(p, stand_in.data, tmp_path / "again")
    assert again.status == "finished", again.message + job_service.logs(handle.job_id)[-3000:]
    assert again.tags["platbench.run_name"] == "cifar-spot-1"
    assert again.tags["platbench.checkpoint_uri"] == f"gs://{bucket}/platbench/jobs/cifar-spot-1/checkpoints/"
    first, second = job_service.created
    assert first["displayName"] != second["displayName"] and second["displayName"].startswith("cifar-spot-1-")
    assert {c["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"] for c in job_service.created} == {
        f"gs://{bucket}/platbench/jobs/cifar-spot-1"}
    p.collect(handle, again, tmp_path / "again-out")
    resumed = json.loads((tmp_path / "again-out" / "results.json").read_text())
    assert resumed["epochs_completed"] == 1 and resumed["resumed_from_epoch"] == 1


def _cloud_outcome(p, dataset, tmp_path, epochs=1):
    job = Job(data=dataset, out=tmp_path / "out", epochs=epochs)
    p.check(job)
    p.stage(job)
    handle = p.submit(job, {})
    return handle, p.wait(handle, JobProgress(enabled=False))


def test_an_accelerator_runs_the_trainer_on_cuda_never_silently_on_the_cpu(dataset, tmp_path, monkeypatch, bucket,
                                                                           job_service):
    """A job with an accelerator (the default: one NVIDIA_TESLA_T4) starts the trainer with --device cuda. The
    server's replica is this machine, without a GPU, as a node would be whose driver the image's torch cannot
    use: the job fails in the trainer's one line, nothing in its output, instead of training on the CPU at the
    GPU's price (issue 24 item 9)."""
    monkeypatch.chdir(tmp_path)
    outcome, _ = run(Job(data=dataset, out=tmp_path / "out", epochs=1), {
        "project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url,
        "poll_seconds": "0.05", "job_name": "pb-vx-gpu"})
    (created,) = job_service.created
    pool = created["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"]["acceleratorCount"] == 1 and "--device cuda" in " ".join(pool["containerSpec"]["args"])
    assert outcome.status == "failed"
    (name,) = job_service.jobs
    assert "error: --device cuda: CUDA is not usable: " in job_service.logs(name), job_service.logs(name)[-3000:]
    assert not any("/output/" in n or "/model/" in n for n in blobs(bucket))  # nothing written by the trainer


def test_two_replicas_run_as_one_ddp_job_priced_once(dataset, tmp_path, monkeypatch, bucket, job_service):
    """Two replicas: the primary in workerpool0 (replicaCount 1, as Vertex requires), the other in workerpool1;
    the server starts both with their CLUSTER_SPEC and the trainers form one run. cost = the job's running
    seconds × the price per hour of the whole job (every replica, once)."""
    from platforms.vertex.train import VertexPlatform

    monkeypatch.chdir(tmp_path)
    p = VertexPlatform({"project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url,
                        "poll_seconds": "0.05", **CPU})
    p.cfg = p.parsed().model_copy(update={"replica_count": 2})
    handle, outcome = _cloud_outcome(p, dataset, tmp_path)
    assert outcome.status == "finished", outcome.message
    assert [w["replicaCount"] for w in handle.spec["jobSpec"]["workerPoolSpecs"]] == ["1", "1"]
    run_ = job_service.jobs[handle.job_id]
    assert run_.replicas == ["workerpool0-0", "workerpool1-0"]
    assert p.price_per_hour() == pytest.approx(2 * N1_HOUR)
    assert outcome.list_estimate_usd == pytest.approx(running_seconds(run_.describe()) * 2 * N1_HOUR / 3600)
    assert outcome.cost_usd == outcome.list_estimate_usd
    assert p.run_tags(Job(data=dataset, out=tmp_path))[tracking.Tag.PRICE_BASIS] == "on-demand"
    results = json.loads(next(Path(run_.mount).rglob("output/results.json")).read_text())
    assert results["hardware"]["nodes"] == 2 and results["hardware"]["world_size"] == 2


# ---------------------------------------------------------------- issue 12: first real run

def test_generated_display_names_keep_their_unique_suffix(tmp_path):
    """Issue 12 item 8: a long model name is cut, never the time stamp and random suffix (displayName:
    at most 128 characters), and the cut never leaves a trailing "-"."""
    from platforms.vertex.train import VertexPlatform

    p = VertexPlatform({"bucket": "bkt"})
    for n in range(90, 140):
        name = p._display_name(Job(data=tmp_path, out=tmp_path, model=("resnet-" * 25)[:n]))
        assert len(name) <= 128 and not name.endswith("-") and "--" not in name, name
        assert re.search(r"-\d{8}-\d{6}-[0-9a-f]{4}$", name), name
    name = VertexPlatform({"bucket": "bkt", "run_name": "r" * 63})._display_name(Job(data=tmp_path, out=tmp_path))
    assert name.startswith("r" * 63 + "-")


def test_image_cuda_arch_list_is_the_locks_torch():
    """Issue 12 item 9: the arch list the launcher checks against is the lock's torch build's own."""
    import torch

    from platforms.vertex.train import ACCELERATOR_CC, ACCELERATOR_FAMILIES, IMAGE_CUDA_ARCHS, unusable_accelerator

    lock = Path(__file__).resolve().parents[2] / "constraints.txt"
    pinned = re.search(r"^torch==(\S+)$", lock.read_text(), re.M).group(1)
    if torch.__version__.split("+")[0] != pinned or torch.version.cuda is None:
        pytest.skip(f"this torch ({torch.__version__}) is not the lock's CUDA build ({pinned})")
    assert tuple(torch.cuda.get_arch_list()) == IMAGE_CUDA_ARCHS
    assert set(ACCELERATOR_CC) == set(ACCELERATOR_FAMILIES)
    assert {a for a in ACCELERATOR_CC if unusable_accelerator(a)} == {
        "NVIDIA_TESLA_P100", "NVIDIA_TESLA_P4", "NVIDIA_TESLA_V100"}


def test_a_bucket_in_another_region_is_refused_in_check(dataset, tmp_path, monkeypatch, gcs, job_service, bucket_in):
    """Issue 12 item 4: the bucket's location (Cloud Storage buckets.get) against the job's region."""
    from google.cloud import storage

    monkeypatch.chdir(tmp_path)
    name = bucket_in("EUROPE-WEST4")
    assert storage.Client(project="test").get_bucket(name).location == "EUROPE-WEST4"
    with pytest.raises(UserError, match=re.escape(f"bucket {name!r} is in europe-west4, the job in us-central1")):
        run(Job(data=dataset, out=tmp_path / "o"), {"project": "p", "bucket": name, "image_uri": PINNED,
                                                     "api_endpoint": job_service.url})
    assert blobs(name) == [] and job_service.created == []


def test_a_job_stuck_in_the_queue_is_cancelled_after_max_queue_naming_the_quota(dataset, tmp_path, monkeypatch,
                                                                                 bucket, job_service):
    """Issue 12 item 6: a job short of quota sits in JOB_STATE_QUEUED; max_queue bounds the wait (not
    max_run + 1 h), the error names the quota, the job is cancelled and the queue time is its own phase."""
    monkeypatch.chdir(tmp_path)
    job_service.hold = True

    class Phases(JobProgress):
        seen: list = []

        def phase(self, name):
            super().phase(name)
            self.seen.append(name)

    settings = {"project": "p", "bucket": bucket, "image_uri": PINNED, "api_endpoint": job_service.url,
                "poll_seconds": "0.05", "max_queue": "1", "spot": "true"}
    with pytest.raises(UserError) as err:
        run(Job(data=dataset, out=tmp_path / "out", epochs=1), settings, Phases(enabled=False))
    text = str(err.value)
    # the server keeps the job queued; its createTime is real, so it is cancelled once over a second old
    assert "still queued after" in text and "(max_queue=1)" in text and "\n" not in text
    assert "'Custom model training preemptible NVIDIA_TESLA_T4 GPUs per region' in us-central1" in text
    name = "projects/p/locations/us-central1/customJobs/1"
    assert job_service.cancelled == [name] and job_service.wait(name)["state"] == "JOB_STATE_CANCELLED"
    assert job_service.jobs[name].procs == []  # never started
    assert Phases.seen[-1] == "queued"
