"""What `docker compose run trainer` does inside the image, without an engine (trainer/image_record.py): the
run reads the project's .platbench/image.json and records its image ID — in results.json (image_digest,
image_id) and MLflow — only when the record's build id is the one baked into the image it runs in
(PLATBENCH_BUILD_ID, which the image's ENV sets and the test sets here). Another build's record, or an image
built without `platbench image build` (empty build id): no digest, and `platbench check` says why.
scripts/image-test runs the compose service itself (tests/image/test_image.py).

The run is the stand-in trainer's (tests/stand_in): the record is read by trainer/cli.py and written by
trainer/results.py in both trainers; the real trainer's results.json carrying the image identity it was given
is tests/test_image_identity.py's baseline."""
from __future__ import annotations

import json

import pytest
from conftest import platbench
from stand_in.cli import platbench_here

from mlflow.tracking import MlflowClient
from stand_in import stand_in  # noqa: F401 (fixture)
from trainer.image_record import ImageRecord, identity, write
from trainer.results import read_results

IMAGE_ID = "sha256:" + "c" * 64
PULLED = "sha256:" + "d" * 64


def project(tmp_path, build_id="b1"):
    write(ImageRecord(image="platbench:latest", id=IMAGE_ID, build_id=build_id), tmp_path / ".platbench/image.json")
    return tmp_path


def test_identity_comes_from_the_environment_then_from_this_builds_record(tmp_path):
    cwd = project(tmp_path)
    assert identity({}, cwd).build_id is None and identity({}, cwd).digest is None  # not in an image: nothing read
    got = identity({"PLATBENCH_BUILD_ID": "b1"}, cwd)
    assert (got.digest, got.image_id, got.why_none) == (IMAGE_ID, IMAGE_ID, None)
    got = identity({"PLATBENCH_BUILD_ID": "b1", "PLATBENCH_IMAGE_DIGEST": PULLED}, cwd)  # a launcher's pull
    assert (got.digest, got.image_id) == (PULLED, IMAGE_ID)
    got = identity({"PLATBENCH_BUILD_ID": "b2"}, cwd)
    assert got.digest is None and "another build's (build id b1, this image's b2)" in got.why_none
    got = identity({"PLATBENCH_BUILD_ID": ""}, cwd)
    assert got.digest is None and "not built by `platbench image build`" in got.why_none
    got = identity({"PLATBENCH_BUILD_ID": "b1"}, tmp_path / "elsewhere")
    assert got.digest is None and got.why_none.startswith("no ") and "image.json" in got.why_none


def launch(cwd, stand_in, build_id):
    """In this process (its trainer is a child all the same, which reads the identity): the console script's
    `launch local` is tests/core/test_cli.py's piped launch."""
    return platbench_here("launch", "local", "--data", str(stand_in.data), "--epochs", "1", "--hp", "batch_size=64",
                          "--json", "--out", "runs/r", cwd=cwd, env={"PLATBENCH_BUILD_ID": build_id,
                                                                     "PLATBENCH_IMAGE_DIGEST": "",
                                                                     "PLATBENCH_IMAGE_ID": "", **stand_in.env()})


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory, stand_in):
    cwd = project(tmp_path_factory.mktemp("recorded"))
    proc = launch(cwd, stand_in, "b1")
    assert proc.returncode == 0, proc.stderr
    return cwd, json.loads(proc.stdout)


def test_a_run_in_the_recorded_build_records_its_image_id_in_results_and_mlflow(recorded_run):
    cwd, doc = recorded_run
    res = read_results(cwd / "runs/r")
    assert (res.image_digest, res.image_id, res.image_build_id) == (IMAGE_ID, IMAGE_ID, "b1")
    tags = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}").get_run(doc["mlflow_run_id"]).data.tags
    assert tags["platbench.image_digest"] == IMAGE_ID and tags["platbench.image_id"] == IMAGE_ID
    assert platbench("check", str(cwd / "runs/r"), cwd=cwd).returncode == 0  # the console script's `check`


@pytest.mark.parametrize("build_id, says", [
    ("", "none: the image was not built by `platbench image build`"),  # e.g. `docker compose build`
    ("b2", "none: no .platbench/image.json of build b2 where it ran"),
])
def test_check_says_why_a_run_in_an_image_has_no_digest(recorded_run, tmp_path, build_id, says):
    """On a copy of the run's results as a run in another build writes them (identity() above gives it no
    digest): no second training run."""
    import shutil

    from trainer.results import write_results

    cwd = recorded_run[0]
    run = shutil.copytree(cwd / "runs/r", tmp_path / "r")
    res = read_results(run)
    write_results(run, res.model_copy(update={"image_digest": None, "image_id": None, "image_build_id": build_id}))
    proc = platbench_here("check", str(run), cwd=cwd)  # in this process; the subprocess form is above
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "image_digest of a container run" in out and says in out, out
