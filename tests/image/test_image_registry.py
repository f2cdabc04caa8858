"""The image as a first-class object (issue 18), under scripts/image-test. The record: the image the script
built from the real Dockerfile with `platbench image build` (the Docker SDK's build; the record it wrote is
under PLATBENCH_IT_RECORD). The registry: a small image the script built with the same `platbench image build`
(scripts/image/small; PLATBENCH_IT_SMALL_*) — what push, pull and pinning prove does not depend on the image's
size, and pushing the real one (gigabytes) took minutes — pushed with `platbench image push` to a real OCI
registry on loopback (Debian's docker-registry, started by the script: PLATBENCH_IT_REGISTRY) and pulled back
by digest; the SageMaker registry's login through moto's ECR GetAuthorizationToken with the push going to that
loopback registry; a recorded image whose tag now names another image refused; a launcher's tag pinned to the
pushed digest through the engine's registry lookup (platforms/image/pinning.py) and refused once the tag is
moved in the registry."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error, platbench

from image.test_image import DIGEST, IMAGE, RECORD, WORK, docker, image_env

REGISTRY = os.environ.get("PLATBENCH_IT_REGISTRY", "")
# the small image: built by `platbench image build` like the real one, pushed in place of it
SMALL_IMAGE = os.environ.get("PLATBENCH_IT_SMALL_IMAGE", "")
SMALL_DIGEST = os.environ.get("PLATBENCH_IT_SMALL_DIGEST", "")
SMALL_RECORD = Path(os.environ.get("PLATBENCH_IT_SMALL_RECORD", "/nonexistent"))
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def project(name: str, record: Path = RECORD) -> Path:
    """A project folder holding the record `platbench image build` wrote (of the real image by default)."""
    cwd = WORK / name
    shutil.copytree(record / ".platbench", cwd / ".platbench")
    return cwd


def registry_manifest(repository: str, reference: str) -> tuple[str, dict]:
    """(Docker-Content-Digest, manifest) as the registry itself serves them (Distribution API:
    GET /v2/<name>/manifests/<reference>, https://distribution.github.io/distribution/spec/api/)."""
    host, _, name = repository.partition("/")
    req = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{reference}", headers={"Accept": MANIFEST_V2})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers["Docker-Content-Digest"], json.loads(r.read())


def test_build_recorded_the_image_and_the_locks_versions():
    doc = json.loads((RECORD / ".platbench/image.json").read_text())
    assert doc["image"] == IMAGE and doc["id"] == DIGEST  # what the engine holds under that tag
    # the build's own id, baked into the image's last step: how a container finds this record (compose)
    assert re.fullmatch(r"[0-9a-f]{32}", doc["build_id"]) and image_env("PLATBENCH_BUILD_ID") == doc["build_id"]
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "org.platbench.build-id"}}', IMAGE).stdout.strip()
    assert label == doc["build_id"] == doc["build_args"]["PLATBENCH_BUILD_ID"]
    pins = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    assert doc["versions"]["torch"] == pins["torch"] and doc["versions"]["lightning"] == pins["lightning"]
    assert doc["build_args"]["GIT_COMMIT"] and "BASE_IMAGE" in doc["build_args"]


def test_the_small_image_was_built_and_recorded_as_the_real_one():
    """What makes the small image a fair stand-in in the push tests: the same build code recorded it."""
    doc = json.loads((SMALL_RECORD / ".platbench/image.json").read_text())
    assert doc["image"] == SMALL_IMAGE and doc["id"] == SMALL_DIGEST != DIGEST
    assert re.fullmatch(r"[0-9a-f]{32}", doc["build_id"]) and doc["build_args"]["PLATBENCH_BUILD_ID"] == doc["build_id"]
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "org.platbench.build-id"}}', SMALL_IMAGE).stdout.strip()
    assert label == doc["build_id"]


def test_push_to_a_registry_reads_the_digest_back_and_pulls_by_digest():
    cwd = project("push-plain", SMALL_RECORD)
    repository = f"{REGISTRY}/platbench"
    proc = platbench("image", "push", repository, cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = re.search(r"registry digest (sha256:[0-9a-f]{64})", proc.stdout)[1]
    assert f"launch with: --set image_uri={repository}@{digest}" in proc.stdout
    tag = re.search(rf"as {re.escape(repository)}:(\S+)", proc.stdout)[1]
    doc = json.loads((cwd / ".platbench/image.json").read_text())
    assert doc["pushed"][repository] == digest and doc["tags"][f"{repository}:{tag}"] == digest
    served, manifest = registry_manifest(repository, tag)
    assert served == digest and manifest["config"]["digest"] == SMALL_DIGEST  # the registry holds this very image
    docker("image", "rm", f"{repository}:{tag}")  # only the tag goes; then pull it back by digest
    docker("pull", f"{repository}@{digest}", timeout=900)
    assert docker("image", "inspect", "-f", "{{.Id}}", f"{repository}@{digest}").stdout.strip() == SMALL_DIGEST


@pytest.fixture
def moto_ecr(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
           "AWS_CONFIG_FILE": "/nonexistent"}
    yield env
    server.stop()


def test_push_sagemaker_logs_in_with_an_ecr_token(moto_ecr):
    """The login is ECR's (a GetAuthorizationToken answered by moto, the repository created there); the
    layers go to the loopback registry named by --set registry (moto has no registry to push to)."""
    import boto3

    cwd = project("push-ecr", SMALL_RECORD)
    proc = platbench("image", "push", "sagemaker", "--set", "region=us-east-1", "--set", "repository=ecr/platbench",
                     "--set", f"registry={REGISTRY}", cwd=cwd, env=moto_ecr, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = re.search(r"registry digest (sha256:[0-9a-f]{64})", proc.stdout)[1]
    assert f"--set image_uri={REGISTRY}/ecr/platbench@{digest}" in proc.stdout
    ecr = boto3.client("ecr", endpoint_url=moto_ecr["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert ecr.describe_repositories(repositoryNames=["ecr/platbench"])["repositories"]
    assert registry_manifest(f"{REGISTRY}/ecr/platbench", digest)[1]["config"]["digest"] == SMALL_DIGEST


def test_a_recorded_tag_that_now_names_another_image_is_refused():
    cwd = WORK / "push-moved"
    (cwd / ".platbench").mkdir(parents=True)
    base = docker("image", "ls", "-q", "--no-trunc", "platbench-base:local").stdout.split()[0]
    docker("tag", base, "pbit-moved:1")  # the tag the record names, now on another image
    (cwd / ".platbench/image.json").write_text(json.dumps({"image": "pbit-moved:1", "id": DIGEST, "pushed": {}}))
    proc = platbench("image", "push", f"{REGISTRY}/moved", cwd=cwd)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and f"pbit-moved:1 is {base} in the engine" in proc.stderr and DIGEST in proc.stderr
    docker("image", "rm", "pbit-moved:1")


def test_a_launcher_pins_a_pushed_tag_and_refuses_it_once_moved(monkeypatch):
    """platforms/image/pinning.py with the engine's registry lookup (GET /distribution/…/json through this
    engine) and the push record: the tag pinned to the pushed digest; then the tag moved to another image in
    the registry → refused in one line."""
    from platforms.errors import UserError
    from platforms.image import pinning

    cwd = project("pin", SMALL_RECORD)
    repository = f"{REGISTRY}/pinned"
    proc = platbench("image", "push", repository, "--tag", "v1", cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = re.search(r"registry digest (sha256:[0-9a-f]{64})", proc.stdout)[1]
    monkeypatch.chdir(cwd)
    pinned = pinning.pin(f"{repository}:v1", "vertex", "image_uri")
    assert (pinned.reference, pinned.source) == (f"{repository}@{digest}", "registry and record")
    # another image under that tag: a tiny one (one file), pushed over it
    tiny = subprocess.run(["docker", "import", "-", "pbit-tiny:1"], input=_empty_tar(), capture_output=True,
                          timeout=120)
    assert tiny.returncode == 0, tiny.stderr
    docker("tag", "pbit-tiny:1", f"{repository}:v1")
    docker("push", f"{repository}:v1", timeout=300)
    moved = pinning.engine_lookup(repository, "v1")
    assert moved and moved != digest
    with pytest.raises(UserError, match=rf"now names {moved} in the registry, but `platbench image push` recorded "
                                        rf"{digest}"):
        pinning.pin(f"{repository}:v1", "vertex", "image_uri")
    docker("image", "rm", "pbit-tiny:1", f"{repository}:v1")


def _empty_tar() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("hello")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()
