"""The SageMaker launcher's engine-backed local mode (platforms/sdk_local.py), the parts that need no
engine: when it is chosen and what it refuses, the dry-run plan, the rewrite of the SDK's output.tar.gz
into the service's layout, and compose's log prefixes. The run itself (the SDK driving Docker against a
moto S3) is in tests/image/, under scripts/image-test. A stand-in `docker` on PATH answers the few
questions asked of an engine here."""
from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from conftest import write_folder_dataset
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from platforms.core import launch

from platforms.sagemaker import sdk_local
from platforms.core.api import Job
from platforms.errors import UserError
from platforms.sagemaker.train import SageMakerSettings

DIGEST = "sha256:" + "c" * 64
FAKE_DOCKER = """#!/bin/sh
case "$1 $2" in
  "info --format") echo 20.10.24 ;;
  "compose version") echo "Docker Compose version ${COMPOSE_VERSION:-v2.26.1}" ;;
  "image inspect") case "$*" in *platbench:local*) echo '[] {digest}' ;; *pushed*) echo '["r/pushed@sha256:{pushed}"] sha256:{other}' ;; *) echo "no such image" >&2; exit 1 ;; esac ;;
  *) echo "unexpected: $*" >&2; exit 3 ;;
esac
""".replace("{digest}", DIGEST).replace("{pushed}", "d" * 64).replace("{other}", "e" * 64)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


@pytest.fixture
def no_engine(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def settings(**kw) -> SageMakerSettings:
    return SageMakerSettings(**{"bucket": "bkt", "local": True, **kw})


def test_without_an_engine_auto_runs_natively_and_docker_says_why(no_engine):
    assert sdk_local.choose_runner(settings(image_uri="platbench:local")) == "native"
    assert sdk_local.choose_runner(settings()) == "native"
    with pytest.raises(UserError, match="local_runner=docker: no docker client on PATH"):
        sdk_local.choose_runner(settings(image_uri="platbench:local", local_runner="docker"))
    with pytest.raises(UserError, match="needs --set image_uri"):
        sdk_local.choose_runner(settings(local_runner="docker"))


def test_with_an_engine_and_the_image_auto_chooses_docker_and_stages_naive(engine):
    cfg = settings(image_uri="platbench:local")
    assert sdk_local.choose_runner(cfg) == "docker" and cfg.staging == "naive"
    assert sdk_local.choose_runner(settings(image_uri="platbench:local", local_runner="native")) == "native"
    # an image the engine does not hold: native under auto, a clear error when docker is asked for
    assert sdk_local.choose_runner(settings(image_uri="elsewhere:1")) == "native"
    with pytest.raises(UserError, match="not in the local Docker engine"):
        sdk_local.choose_runner(settings(image_uri="elsewhere:1", local_runner="docker"))
    with pytest.raises(UserError, match="staging=naive"):
        sdk_local.choose_runner(settings(image_uri="platbench:local", staging="sharded"))
    with pytest.raises(UserError, match="managed spot"):
        sdk_local.choose_runner(settings(image_uri="platbench:local", spot=True))


def test_compose_must_be_one_the_sdk_recognises(engine, monkeypatch, tmp_path):
    assert sdk_local.engine_problem() is None
    monkeypatch.setenv("COMPOSE_VERSION", "2.26.1")  # Debian's build: no "v2" in the line, so the SDK
    assert "docker-compose must be on PATH" in sdk_local.engine_problem()  # looks for docker-compose
    (tmp_path / "fake-bin" / "docker-compose").write_text("#!/bin/sh\n")
    (tmp_path / "fake-bin" / "docker-compose").chmod(0o755)
    assert sdk_local.engine_problem() is None


def test_image_digest_prefers_the_registry_digest(engine):
    assert sdk_local.image_digest("platbench:local") == DIGEST  # built here: the image ID
    assert sdk_local.image_digest("r/pushed:1") == "sha256:" + "d" * 64
    assert sdk_local.image_digest("missing:1") is None


def test_dry_run_plan_names_the_sdk_local_mode(engine, aws, tmp_path):
    import boto3

    bucket = new_bucket_name()
    boto3.client("s3").create_bucket(Bucket=bucket)
    data = write_folder_dataset(tmp_path / "colors", train_per_class=4, test_per_class=2)
    text = launch.plan_text("sagemaker", Job(data=data, out=tmp_path / "o", epochs=2),
                            {"bucket": bucket, "local": "true", "image_uri": "platbench:local", "job_name": "pb-d"})
    assert "aws s3 sync" in text and "ManifestFile" not in text  # naive staging
    assert "instance_type='local'" in text and "image_uri='platbench:local'" in text
    assert "PLATBENCH_OPT_ML" not in text  # not the native local mode's steps


def _sdk_tarball(with_failure: bool) -> bytes:
    """output.tar.gz as sagemaker/local/image.py retrieve_artifacts packs it: all of /opt/ml/output."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {"data/results.json": b'{"x": 1}', "data/metrics.jsonl": b"{}\n"}
        if with_failure:
            files = {"failure": b"error: no dataset"}
        info = tarfile.TarInfo("data")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_output_tarball_is_rewritten_to_the_service_layout(aws):
    import boto3

    s3 = boto3.client("s3")
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="j/output/output.tar.gz", Body=_sdk_tarball(False))
    assert sdk_local.normalize_output(s3, bucket, "j/output/output.tar.gz") == (None, True)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key="j/output/output.tar.gz")["Body"].read())) as t:
        assert sorted(t.getnames()) == ["metrics.jsonl", "results.json"]
        assert t.extractfile("results.json").read() == b'{"x": 1}'
    s3.put_object(Bucket=bucket, Key="k/output.tar.gz", Body=_sdk_tarball(True))
    assert sdk_local.normalize_output(s3, bucket, "k/output.tar.gz") == ("error: no dataset", False)


def test_compose_prefixes_are_dropped_from_container_lines():
    out = io.StringIO()
    lines = sdk_local._ComposeLines(out)
    lines.write("Attaching to 3k2j1h4g5f-algo-1-abcde\n3k2j1h4g5f-algo-1-abcde  | - Epoch: 1\r\n")
    lines.write("3k2j1h4g5f-algo-1-abcde  | - Test accuracy: 0.5")
    lines.write("\n3k2j1h4g5f-algo-1-abcde exited with code 0\n")
    assert out.getvalue().splitlines() == ["Attaching to 3k2j1h4g5f-algo-1-abcde", "- Epoch: 1",
                                           "- Test accuracy: 0.5", "3k2j1h4g5f-algo-1-abcde exited with code 0"]


def test_local_mode_settings_reject_an_unknown_runner():
    from platforms.sagemaker.train import SageMakerPlatform

    with pytest.raises(UserError, match="local_runner"):
        SageMakerPlatform({"bucket": "bkt", "local": "true", "local_runner": "podman"}).parsed()


def test_module_entry_needs_a_job_file(capsys):
    assert sdk_local.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_static_files_for_the_image_build():
    """.dockerignore keeps every COPY source (the context is the repository, .venv included); the CPU
    override resets the GPU reservation with Compose v2's !reset."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    ignore = (repo / ".dockerignore").read_text().splitlines()
    kept = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for line in (repo / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert src in kept or src.split("/")[0] in kept, src

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: "RESET")
    doc = yaml.load((repo / "docker/compose.cpu.override.yml").read_text(), Loader=Loader)
    assert doc == {"services": {"trainer": {"deploy": {"resources": "RESET"}}}}
    assert re.search(r"^ARG ROOTFS=", (repo / "docker/base/Dockerfile").read_text(), re.M)
    json.dumps(doc)
