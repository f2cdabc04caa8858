"""Image identity without an engine: the digest a launcher passes (PLATBENCH_IMAGE_DIGEST) lands in
results.json and the MLflow tags, and `launch --baseline` refuses to compare runs made with different
images unless --allow-image-mismatch (scripts/image-test checks the same with the built image).

Every run here, the baseline too, runs the stand-in trainer (tests/stand_in: the golden run of the same job,
replayed): what is tested — the digest from the environment through trainer/cli.py into results.json and the
MLflow tags, the refusals, the comparison — is platbench's and trainer/cli.py's, which the stand-in runs as
the real trainer does. That the real trainer writes the digest it is given into results.json is
tests/test_training.py's test_results_contract."""
from __future__ import annotations

import json

import pytest
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here
from conftest import platbench

from mlflow.tracking import MlflowClient

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


IMAGE_ID = "sha256:" + "c" * 64  # image A's config digest


def launch(cwd, data, *extra, digest=None, image_id=None, here=False, trainer=None):
    """`platbench launch local`; here=True: in this process (tests/stand_in/cli.py), for a refusal before a run;
    trainer: a StandIn whose trainer the run uses (else the real one)."""
    env = {"PLATBENCH_IMAGE_DIGEST": digest or "", **({"PLATBENCH_IMAGE_ID": image_id} if image_id else {}),
           **(trainer.env() if trainer else {})}
    return (platbench_here if here else platbench)("launch", "local", "--data", str(data), "--epochs", "1", "--hp",
                                                   "batch_size=64", *extra, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def baseline(stand_in, tmp_path_factory):
    """One run 'inside image A', pulled as a cloud run pulls it: by its manifest digest A (the compose service
    sets PLATBENCH_IMAGE_DIGEST the same way), its image ID (config digest) IMAGE_ID beside it."""
    cwd = tmp_path_factory.mktemp("identity")
    proc = launch(cwd, stand_in.data, "--json", "--out", "runs/base", digest=A, image_id=IMAGE_ID, trainer=stand_in)
    assert proc.returncode == 0, proc.stderr
    return cwd, json.loads(proc.stdout)


def test_the_digest_is_recorded_in_results_and_mlflow(baseline):
    cwd, doc = baseline
    assert doc["results"]["image_digest"] == A
    from platforms.core import tracking

    run = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}").get_run(doc["mlflow_run_id"])
    assert run.data.tags["platbench.image_digest"] == A
    assert tracking.run_summary(run)["image_digest"] == A  # `platbench runs --json`


def test_another_image_is_refused_before_anything_runs(baseline, color_data):
    """In this process (tests/stand_in/cli.py): `launch local`'s one-line refusals through the console script are
    tests/local/test_local_launch.py's test_bad_platform_and_usage_errors."""
    cwd, doc = baseline
    for digest, shown in ((B, B), (None, "none (not run from an image)")):
        proc = launch(cwd, color_data, "--baseline", doc["mlflow_run_id"][:8], "--out", "runs/refused", digest=digest,
                      here=True)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip().splitlines()[-1]
        assert err.startswith("platbench: error: baseline run") and A in err and shown in err
        assert "--allow-image-mismatch" in err and "Traceback" not in proc.stderr
    assert not (cwd / "runs/refused").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("platbench").experiment_id])) == 1  # no new run


def test_same_image_compares_and_a_mismatch_only_when_allowed(baseline, stand_in):
    cwd, doc = baseline
    proc = launch(cwd, stand_in.data, "--baseline", doc["mlflow_run_id"], "--json", digest=A, trainer=stand_in)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["baseline"]["run_id"] == doc["mlflow_run_id"] and out["baseline"]["image_mismatch"] is None
    fig = {f["figure"]: f for f in out["baseline"]["figures"]}
    assert fig["test accuracy"]["baseline"] == pytest.approx(doc["results"]["test_accuracy"])
    assert fig["train seconds"]["ratio"] > 0

    proc = launch(cwd, stand_in.data, "--baseline", doc["mlflow_run_id"], "--allow-image-mismatch", digest=B,
                  trainer=stand_in)
    assert proc.returncode == 0, proc.stderr
    assert "images or software differ" in proc.stdout and "against baseline" in proc.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id], max_results=1,
                                order_by=["attributes.start_time DESC"])
    tags = run.data.tags
    assert tags["platbench.baseline_run_id"] == doc["mlflow_run_id"] and tags["platbench.image_digest"] == B
    assert tags["platbench.image_mismatch_allowed"] == "true"


def test_a_baseline_from_other_software_is_compared_only_when_allowed(baseline, stand_in):
    cwd, doc = baseline
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    assert client.get_run(doc["mlflow_run_id"]).data.tags["platbench.software.torch"] == doc["results"]["software"]["torch"]
    client.set_tag(doc["mlflow_run_id"], "platbench.software.torch", "2.0.0")  # as if made with an older stack
    proc = launch(cwd, stand_in.data, "--baseline", doc["mlflow_run_id"], digest=A, trainer=stand_in)
    last = proc.stderr.strip().splitlines()[-1]  # the lines above it are the trainer's own log
    assert proc.returncode == 2 and last.startswith("platbench: error: run "), proc.stderr
    assert "ran other software (torch 2.0.0 vs" in last and "--allow-version-mismatch" in last
    proc = launch(cwd, stand_in.data, "--baseline", doc["mlflow_run_id"], "--allow-version-mismatch", digest=A,
                  trainer=stand_in)
    assert proc.returncode == 0, proc.stderr
    shown = " ".join(proc.stdout.split())  # the table wraps its caption to the terminal's width
    assert "torch 2.0.0 vs" in shown and "against baseline" in shown
    client.set_tag(doc["mlflow_run_id"], "platbench.software.torch", doc["results"]["software"]["torch"])


def test_an_unknown_baseline_is_one_line(baseline, color_data):
    cwd, _ = baseline
    proc = launch(cwd, color_data, "--baseline", "zzzz", here=True)
    assert proc.returncode == 2 and "matches no runs" in proc.stderr and "Traceback" not in proc.stderr


def test_the_same_image_pulled_by_manifest_digest_is_the_same_image(baseline, stand_in):
    """A cloud run records the manifest digest it pulled (image_digest) and the config digest (image_id); a
    compose or `launch docker` run of the same image records the image ID in both. Same image_id: same image,
    compared without --allow-image-mismatch (the digests alone differ). The baseline is the cloud run."""
    cwd, doc = baseline
    assert (doc["results"]["image_digest"], doc["results"]["image_id"]) == (A, IMAGE_ID)
    run_id = doc["mlflow_run_id"]
    proc = launch(cwd, stand_in.data, "--json", "--baseline", run_id, "--out", "runs/local", digest=IMAGE_ID,
                  image_id=IMAGE_ID, trainer=stand_in)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["baseline"]["image_mismatch"] is None
    # another image, whatever its digest: refused before it runs (in this process)
    proc = launch(cwd, stand_in.data, "--baseline", run_id, "--out", "runs/other", digest=IMAGE_ID, image_id=B,
                  here=True)
    assert proc.returncode == 2 and B in proc.stderr, proc.stderr
