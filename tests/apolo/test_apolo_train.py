"""The Apolo launcher end to end against the loopback Apolo platform (tests/apolo/_apolo_server.py), with the
real apolo-sdk logged in to it through its own config directory: staging into storage://, the job from a
preset with the data volume read-only and the output volume read-write, the job run as a local subprocess
by that server, phases from its status history, epochs from its log stream, credits and collection into
MLflow; refusals before anything is created; a preempted job resumes. (Ctrl-C, a failed job, an error while
waiting: the launcher conformance kit, tests/launchers.)"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from _apolo_server import apolo, apolo_stand_in, settings  # noqa: F401 (fixture)
from stand_in import stand_in  # noqa: F401 (fixture)

from platforms.core import launch, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress
from platforms.errors import UserError

IMAGE = "image:platbench:1"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("ap") / "colors", train_per_class=24, test_per_class=8)


def run(job: Job, s: dict, progress=None):
    return launch.launch("apolo", job, s, progress or JobProgress(enabled=False))


def jobs_started(server) -> list:
    return [r for r in server.requests if r[0] == "POST" and r[1].startswith("/api/v1/jobs")]


def stored(server) -> list[str]:
    base = server.root / "storage"
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def test_launch_end_to_end(dataset, tmp_path, monkeypatch, apolo):
    monkeypatch.chdir(tmp_path)

    class Seen(JobProgress):
        def __init__(self):
            super().__init__(enabled=False)
            self.names, self.done = [], []

        def phase(self, name):
            super().phase(name)
            self.names.append(name)

        def epoch_done(self, epoch, status):
            super().epoch_done(epoch, status)
            self.done.append(epoch)

    progress = Seen()
    job = Job(data=dataset, out=tmp_path / "out", epochs=2)
    outcome, run_id = run(job, settings(apolo, run_name="colors-1", usd_per_credit="0.02"), progress)
    assert outcome.status == "finished", outcome.message
    # the job the SDK sent: preset, full image name, volumes (data read-only, output read-write), command, env
    (_, path, body), = jobs_started(apolo)
    assert path == "/api/v1/jobs?from_preset" and body["preset_name"] == "cpu-small"
    assert "--device" not in body["command"]  # a CPU preset: the trainer's auto
    assert body["image"] == f"127.0.0.1:{apolo.port}/pb-org/pb-project/platbench:1"  # the registry is the server
    # the image's digest, read from the cluster registry (a tag can move), recorded and given to the trainer
    digest = apolo.images["pb-org/pb-project/platbench:1"]
    assert body["env"]["PLATBENCH_IMAGE_DIGEST"] == digest
    assert {(v["dst_path"], v["read_only"]) for v in body["volumes"]} == {("/platbench/staged", True),
                                                                           ("/platbench/out", False)}
    out_volume = next(v for v in body["volumes"] if v["dst_path"] == "/platbench/out")["src_storage_uri"]
    assert out_volume == "storage://pb-cluster/pb-org/pb-project/platbench/jobs/colors-1"
    assert body["command"].startswith("train --dataset-name colors ") and "--epochs 2" in body["command"]
    assert body["env"]["PLATBENCH_DATA"].startswith("/platbench/staged/datasets/")
    assert "restart_policy" not in body  # cpu-small is not preemptible: never restarted
    # what the trainer wrote went to the output volume; staging is content-addressed
    files = stored(apolo)
    base = "pb-org/pb-project/platbench/jobs/colors-1/"
    assert {base + "results.json", base + "metrics.jsonl", base + "model/model.pt"} <= set(files)
    assert any(f.startswith(base + "checkpoints/") for f in files)
    assert any(re.fullmatch(r"pb-org/pb-project/platbench/shards/[0-9a-f]{64}\.tar", f) for f in files)
    assert not any(f.endswith(".part") for f in files)
    # collected (checkpoints stay in storage), phases from the status history, epochs from the log stream
    assert (job.out / "results.json").is_file() and (job.out / "model" / "model.pt").is_file()
    assert not (job.out / "checkpoints").exists()
    assert progress.names[:4] == ["staging", "submitting", "pending", "scheduling"]
    assert "pulling" in progress.names and "training" in progress.names
    assert progress.done == [1, 2]
    r = tracking.client().get_run(run_id)
    m, t = r.data.metrics, r.data.tags
    assert r.info.status == "FINISHED"
    for name in ("upload_s_per_mb", "phase_seconds_training", "phase_seconds_pulling", "final_test_accuracy",
                 "collect_mb", "cost_credits", "credits_per_hour"):
        assert name in m, name
    assert m["credits_per_hour"] == 1.5 and m["cost_credits"] == pytest.approx(m["billed_seconds"] * 1.5 / 3600, abs=1e-3)
    assert m["cost_usd"] == pytest.approx(m["cost_credits"] * 0.02)  # at the credit price given, only
    assert "usd_per_credit 0.02" in t[tracking.Tag.PRICE_SOURCE]
    assert t[tracking.Tag.PLATFORM] == "apolo" and t[tracking.Tag.INSTANCE_TYPE] == "cpu-small"
    assert t[tracking.Tag.REGION] == "pb-cluster" and t["platbench.apolo.status"] == "succeeded"
    assert t[tracking.Tag.IMAGE_DIGEST] == digest
    assert apolo.active() == [] and apolo.killed == []  # it ended by itself: nothing to kill


@pytest.mark.parametrize("more, message", [
    ({"preset": "gpu-huge"}, "unknown preset 'gpu-huge' on cluster pb-cluster"),
    ({"cluster": "elsewhere"}, "unknown cluster 'elsewhere'"),
    ({"project": "not-mine"}, "project 'not-mine' is not in pb-cluster/pb-org"),
    ({"org": "other-org"}, "organization 'other-org' is not on cluster pb-cluster"),
    ({"image": None}, "no image"),
    ({"preset": None}, "no preset"),
    ({"job_name": "Bad_Name"}, "job_name 'Bad_Name' is not a valid Apolo job name"),
    ({"image": "not an image"}, "is not an image reference"),
    # apolo-sdk refuses NAME@sha256:… (issue 24 item 8): the rule named in one line, not the SDK's paragraph
    ({"image": "registry.example/platbench@sha256:" + "0" * 64},
     "Apolo takes an image by tag (NAME:TAG), not by digest (@sha256:…)"),
    ({"image": "image:platbench:2"}, "image 'image:platbench:2' is not in the cluster registry"),
    ({"usd_per_credit": "-1"}, "usd_per_credit"),
    ({"preset": "gpu-k80"}, "preset 'gpu-k80': nvidia-tesla-k80 (sm_37) cannot run the image's torch build"),
])
def test_bad_settings_fail_before_anything_is_created(dataset, tmp_path, monkeypatch, apolo, more, message):
    monkeypatch.chdir(tmp_path)
    s = {k: v for k, v in settings(apolo, **more).items() if v is not None}
    with pytest.raises(UserError, match=re.escape(message)):
        run(Job(data=dataset, out=tmp_path / "o"), s)
    assert stored(apolo) == [] and apolo.jobs == {}
    assert not (tmp_path / "mlflow.db").exists()


def test_no_login_is_one_line_before_anything_is_created(dataset, tmp_path, monkeypatch, apolo):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("APOLO_CONFIG", raising=False)
    monkeypatch.delenv("APOLO_PASSED_CONFIG", raising=False)
    with pytest.raises(UserError, match="apolo: no credentials: none found in .*apolo login"):
        run(Job(data=dataset, out=tmp_path / "o"), {"preset": "cpu-small", "image": IMAGE})
    assert stored(apolo) == [] and apolo.jobs == {}


def test_a_refused_token_is_one_line(dataset, tmp_path, monkeypatch, apolo):
    monkeypatch.chdir(tmp_path)
    apolo.token = "revoked"  # the login's token no longer valid on the platform
    with pytest.raises(UserError, match="^apolo: "):
        run(Job(data=dataset, out=tmp_path / "o"), settings(apolo))
    assert apolo.jobs == {}


def test_dry_run_prints_apolo_commands_and_creates_nothing(dataset, tmp_path, apolo):
    text = launch.plan_text("apolo", Job(data=dataset, out=tmp_path / "o"), settings(apolo, preset="gpu-small"))
    for needle in ("apolo run", "--preset gpu-small", ":/platbench/staged:ro", ":/platbench/out:rw",
                   "apolo cp SHARD.tar", "apolo job kill JOB_ID", "apolo mkdir -p", IMAGE + " -- train",
                   "a preset with NVIDIA GPUs adds --device cuda to the command"):
        assert needle in text, needle
    assert "A real launch still needs" not in text  # logged in, image and preset given
    assert stored(apolo) == [] and apolo.requests == []


def test_a_preempted_job_restarts_and_resumes_from_its_checkpoint(stand_in, tmp_path, monkeypatch, apolo_stand_in):
    """A preemptible preset: the node is reclaimed (SIGTERM) after the first epoch; the trainer checkpoints
    into the output volume and exits 143; restart_policy on-failure starts it again, and it resumes. The job
    runs the stand-in trainer, which waits after its first epoch until the reclaim (hang-once): the SIGTERM
    lands mid-run on any machine; that the real trainer checkpoints and resumes to the same result is
    tests/test_training.py's."""
    apolo, dataset = apolo_stand_in, stand_in.data
    apolo.runtime_env.update(stand_in.env(base={}, fail="hang-once", fail_after=1))
    monkeypatch.chdir(tmp_path)

    def reclaim():  # once the first epoch's checkpoint is written (its log line follows it)
        deadline = time.time() + 120
        while time.time() < deadline:
            job = next(iter(apolo.jobs.values()), None)
            if job is not None and b"- Epoch: 1\n" in job.log.read_bytes():
                apolo.preempt(job.id)
                return
            time.sleep(0.05)

    threading.Thread(target=reclaim, daemon=True).start()
    outcome, run_id = run(Job(data=dataset, out=tmp_path / "out", epochs=2),
                          settings(apolo, preset="gpu-small-p", run_name="spot-1", staging="naive"))
    assert outcome.status == "finished", outcome.message
    (_, _, body), = jobs_started(apolo)
    assert body["restart_policy"] == "on-failure"
    # a GPU preset (nvidia_gpu in the cluster's config): the trainer must use CUDA, and fails in one line where
    # it cannot (tests/test_trainer_device.py; the stand-in replays its golden run and resolves no device)
    assert "--device cuda" in body["command"]
    m = tracking.client().get_run(run_id).data.metrics
    assert m["apolo_restarts"] == 1
    assert m["upload_objects_sent"] == len(list(dataset.rglob("*.png")))  # naive staging: one file each
    assert body["volumes"][0]["src_storage_uri"].endswith("/platbench/naive/colors")
    assert "cost_usd" not in m and m["cost_credits"] > 0  # no credit price given: credits only
    log = (tmp_path / "out" / "train.log").read_text()
    assert "SIGTERM received" in log and re.search(r"^Resuming from .* after epoch \d+", log, re.M), log[-2000:]


def test_the_oldest_gpu_the_image_runs_on_is_the_lock_s_torch_build():
    """unusable_gpu's bound (sm_75) is the lowest architecture the lock's CUDA torch build has kernels for."""
    import torch

    from platforms.apolo.train import unusable_gpu

    lock = (Path(__file__).resolve().parents[2] / "constraints.txt").read_text()
    pinned = re.search(r"^torch==(\S+)$", lock, re.M).group(1)
    if torch.__version__.split("+")[0] != pinned or torch.version.cuda is None:
        pytest.skip(f"this torch ({torch.__version__}) is not the lock's CUDA build ({pinned})")
    assert min(int(a[3:]) for a in torch.cuda.get_arch_list() if a.startswith("sm_")) == 75
    assert unusable_gpu("nvidia-tesla-t4") is None and unusable_gpu("nvidia-tesla-v100")
