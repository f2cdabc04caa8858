"""Launchers run their image by digest (issue 18, platforms/image/pinning.py), without an engine: a tag is
resolved from the record `platbench image push` wrote (.platbench/image.json) and the registry — SageMaker's
ECR (DescribeImages) answered by moto — and refused in one line (exit 2, nothing created) when the two
differ, when the registry has no such tag, or when neither knows it. Dry-run shows the step and contacts
nothing. (scripts/image-test checks the engine's registry lookup against a real loopback registry.)"""
from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from stand_in.cli import platbench_here

from platforms.core.api import Job
from platforms.errors import UserError
from platforms.image import pinning
from trainer.image_record import ImageRecord, write

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench"
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def record(cwd, tags: dict[str, str]) -> None:
    write(ImageRecord(image="platbench:latest", id="sha256:" + "c" * 64, build_id="x", tags=tags),
          cwd / ".platbench/image.json")


def test_a_digest_is_taken_as_given_and_a_recorded_tag_is_pinned(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])  # the registry cannot be asked: the record decides
    monkeypatch.chdir(tmp_path)
    assert pinning.pin(f"{ECR}@{A}", "x", "image").reference == f"{ECR}@{A}"
    record(tmp_path, {"127.0.0.1:5000/team/pb:7": B})
    pinned = pinning.pin("127.0.0.1:5000/team/pb:7", "vertex", "image_uri")
    assert (pinned.reference, pinned.source) == (f"127.0.0.1:5000/team/pb@{B}", "record")
    with pytest.raises(UserError, match=r"^vertex: image_uri=127.0.0.1:5000/team/pb:8: no digest for this tag .* "
                                        r"give --set image_uri=REPO@sha256:…"):
        pinning.pin("127.0.0.1:5000/team/pb:8", "vertex", "image_uri")  # not pushed from here
    for bad in ("pb@sha256:123", "a b:1", "pb:bad!tag", "pb:"):
        with pytest.raises(UserError, match="is neither REPO@sha256"):
            pinning.pin(bad, "vertex", "image_uri")
    (tmp_path / ".platbench/image.json").write_text("{not json")
    with pytest.raises(UserError, match=r"^vertex: .*image.json: cannot be read"):
        pinning.pin("pb:1", "vertex", "image_uri")


# ------------------------------------------------------------------ SageMaker: ECR answers (moto)
@pytest.fixture
def ecr_tag(aws):
    """ECR's digest of platbench:1 (a manifest put into moto's ECR), a bucket and a role for the launcher."""
    import boto3

    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="platbench")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": "sha256:" + "c" * 64}, "layers": []}
    ecr.put_image(repositoryName="platbench", imageManifest=json.dumps(manifest), imageTag="1")
    digest = ecr.describe_images(repositoryName="platbench", imageIds=[{"imageTag": "1"}])["imageDetails"][0]["imageDigest"]
    bucket = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=bucket)
    iam = boto3.client("iam")
    try:
        role = iam.create_role(RoleName="platbench-pin", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="platbench-pin")["Role"]["Arn"]
    yield digest, bucket, role
    ecr.delete_repository(repositoryName="platbench", force=True)


def sagemaker_check(tmp_path, monkeypatch, bucket, role, image, color_data):
    from platforms.sagemaker.train import SageMakerPlatform

    monkeypatch.chdir(tmp_path)
    p = SageMakerPlatform({"bucket": bucket, "role": role, "image_uri": image})
    p.check(Job(data=color_data, out=tmp_path / "out"))
    return p


def test_sagemaker_launches_an_ecr_tag_by_the_digest_ecr_and_the_record_agree_on(ecr_tag, tmp_path, monkeypatch,
                                                                                 color_data):
    digest, bucket, role = ecr_tag
    for recorded in ({}, {f"{ECR}:1": digest}):  # ECR alone, then ECR and the record agreeing
        record(tmp_path, recorded)
        p = sagemaker_check(tmp_path, monkeypatch, bucket, role, f"{ECR}:1", color_data)
        assert p.parsed().image_uri == f"{ECR}@{digest}"
        tags = p.run_tags(None)
        assert tags["platbench.image_digest"] == digest and tags["platbench.image_uri"] == f"{ECR}@{digest}"
        request = p.training_request(Job(data=color_data, out=tmp_path / "out"), "pb-pin-1", "s3://b/x/", "S3Prefix")
        assert request["AlgorithmSpecification"]["TrainingImage"] == f"{ECR}@{digest}"
        assert request["Environment"]["PLATBENCH_IMAGE_DIGEST"] == digest
        # the image ID too, where the push record names this digest (the container cannot ask)
        assert request["Environment"].get("PLATBENCH_IMAGE_ID") == ("sha256:" + "c" * 64 if recorded else None)


@pytest.mark.parametrize("image, recorded, says", [
    (f"{ECR}:1", "other", "now names {ecr} in the registry, but `platbench image push` recorded {other}"),
    (f"{ECR}:2", None, "the registry has no such image (ECR: ImageNotFoundException)"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/nosuch:1", None, "the registry has no such image (ECR: "
                                                                   "RepositoryNotFoundException)"),
    ("registry.example.com/platbench:1", None, "no digest for this tag"),  # not ECR's, not recorded, no engine
])
def test_sagemaker_refuses_a_tag_in_one_line_before_anything_is_created(ecr_tag, tmp_path, color_data, image,
                                                                        recorded, says):
    import boto3

    digest, bucket, role = ecr_tag
    if recorded:
        record(tmp_path, {image: B})
    # in this process (tests/stand_in/cli.py): `launch` through the console script is tests/nyckel's and
    # tests/core/test_cli.py's, and a subprocess here would import the SageMaker SDK again (~3 s of CPU)
    proc = platbench_here("launch", "sagemaker", "--data", str(color_data), "--set", f"bucket={bucket}",
               "--set", f"role={role}", "--set", f"image_uri={image}", cwd=tmp_path, env=NO_ENGINE)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and says.format(ecr=digest, other=B) in proc.stderr, proc.stderr
    assert f"image_uri={image}" in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert not boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents")  # nothing staged


# ------------------------------------------------------------------ dry-run: offline, the step shown
@pytest.mark.parametrize("platform, settings, registry", [
    ("sagemaker", ["bucket=pb-bucket", "role=r", f"image_uri={ECR}:1"], "ECR (DescribeImages)"),
    ("vertex", ["project=p", "bucket=pb-bucket", "image_uri=us-docker.pkg.dev/p/r/platbench:1"], "Artifact Registry"),
    ("azureml", ["subscription_id=s", "resource_group=rg", "workspace=ws", "storage_account=pbstore01",
                 "image=acr01.azurecr.io/platbench:1"], "the registry"),
])
def test_dry_run_shows_the_pinning_step_and_contacts_nothing(tmp_path, color_data, platform, settings, registry):
    # in this process, as the refusals above; every platform's dry run through a process is test_contract's
    args = [a for s in settings for a in ("--set", s)]
    proc = platbench_here("launch", platform, "--data", str(color_data), *args, "--dry-run", cwd=tmp_path, env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    image = settings[-1].split("=", 1)[1]
    text = " ".join(proc.stdout.split())
    assert f"pin {settings[-1].split('=', 1)[0]}={image} to a digest" in text and f"and {registry}'s must agree" in text
    assert f"docker manifest inspect --verbose {image}" in text
    pinned = [a if "image" not in a else a.rsplit(":", 1)[0] + "@" + A for a in args]
    proc = platbench_here("launch", platform, "--data", str(color_data), *pinned, "--dry-run", cwd=tmp_path,
                          env=NO_ENGINE)
    assert proc.returncode == 0 and "to a digest" not in proc.stdout, proc.stderr  # pinned already: no step


# ------------------------------------------------------------------ endpoints pin their image too
def test_the_sagemaker_endpoint_serves_an_ecr_tag_by_its_digest_and_refuses_a_moved_one(ecr_tag, tmp_path,
                                                                                       monkeypatch):
    from platforms.sagemaker.endpoint import SageMakerEndpoint

    digest, bucket, role = ecr_tag
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    ep = SageMakerEndpoint({"bucket": bucket, "role": role, "image_uri": f"{ECR}:1"})
    ep.check()
    assert ep.cfg.image_uri == f"{ECR}@{digest}"
    record(tmp_path, {f"{ECR}:1": B})  # pushed from here as another image: the tag was moved since
    with pytest.raises(UserError, match=r"^sagemaker endpoint: image_uri=.*:1 now names .* the tag was moved"):
        SageMakerEndpoint({"bucket": bucket, "role": role, "image_uri": f"{ECR}:1"}).check()


@pytest.mark.parametrize("platform, settings, key, next_refusal", [
    ("vertex", {"project": "p", "bucket": "b"}, "image_uri", "vertex endpoint: no Google Cloud credentials"),
    ("azureml", {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "storage_account": "pbstore01"},
     "image", "azureml endpoint: no Azure credentials found"),
])
def test_the_vertex_and_azureml_endpoints_serve_a_tag_by_its_digest_or_refuse_it(tmp_path, monkeypatch, platform,
                                                                                settings, key, next_refusal):
    """Pinned before anything is contacted: the record (no engine here to ask the registry). With no
    credentials anywhere, check() goes on past the pinning to the next check, which refuses."""
    from platforms.core import registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud or az login state of this machine's user
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "AZURE_CONFIG_DIR", "AZURE_CLIENT_ID",
                "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    endpoint = registry.spec(platform).load(registry.spec(platform).endpoint)
    with pytest.raises(UserError, match=rf"^{platform} endpoint: {key}=reg.example.com/pb:1: no digest for this tag"):
        endpoint({**settings, key: "reg.example.com/pb:1"}).check()
    record(tmp_path, {"reg.example.com/pb:1": A})
    ep = endpoint({**settings, key: "reg.example.com/pb:1"})
    with pytest.raises(UserError, match=f"^{next_refusal}") as info:  # the tag passed: credentials are next
        ep.check()
    assert "no digest" not in str(info.value) and "tag was moved" not in str(info.value)
    assert getattr(ep.cfg, key) == f"reg.example.com/pb@{A}"
