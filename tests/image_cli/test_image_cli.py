"""`platbench image build|push` without an engine (scripts/image-test runs them against a real engine and
a loopback OCI registry): help, the plans --dry-run prints for each platform's registry, and bad input as
one line with exit 2, nothing written. In this process (tests/stand_in/cli.py) but for one refusal of each
command through the real entry point (ENTRY_POINT)."""
from __future__ import annotations

import pytest
from stand_in.cli import platbench_here
from conftest import assert_one_line_error, platbench

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
ENTRY_POINT = {("image", "push", "nosuch"), ("image", "build")}


def test_help_of_every_image_command(tmp_path):
    for args in (["image", "--help"], ["image", "build", "--help"], ["image", "push", "--help"]):
        proc = platbench_here(*args, cwd=tmp_path)
        assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    assert "sagemaker" in platbench_here("image", "push", "--help", cwd=tmp_path).stdout  # from the registry


@pytest.mark.parametrize("target, settings, login, repository", [
    ("sagemaker", ["region=eu-west-1"], "aws ecr get-login-password --region eu-west-1 | docker login --username AWS",
     "ACCOUNT.dkr.ecr.eu-west-1.amazonaws.com/platbench"),
    ("vertex", ["project=pb-1", "region=europe-west4"], "docker login -u oauth2accesstoken --password-stdin "
     "https://europe-west4-docker.pkg.dev", "europe-west4-docker.pkg.dev/pb-1/platbench/platbench"),
    ("azureml", ["registry=pbacr01"], "docker login pbacr01.azurecr.io --username 00000000-0000-0000-0000-000000000000",
     "pbacr01.azurecr.io/platbench"),
    ("127.0.0.1:5000/team/platbench", [], "docker login 127.0.0.1:5000", "127.0.0.1:5000/team/platbench"),
])
def test_dry_run_shows_the_login_and_push_commands(tmp_path, target, settings, login, repository):
    args = [a for s in settings for a in ("--set", s)]
    proc = platbench_here("image", "push", target, *args, "--dry-run", cwd=tmp_path, env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    assert login in proc.stdout
    assert f"docker push {repository}:TAG" in proc.stdout and f"docker tag platbench:latest {repository}:TAG" in proc.stdout
    assert not (tmp_path / ".platbench").exists()


@pytest.mark.parametrize("args, says", [
    (["image", "push", "nosuch"], "unknown registry 'nosuch'"),
    (["image", "push", "local"], "local runs no image from a registry"),
    (["image", "push", "azureml", "--dry-run"], "--set registry=NAME"),
    (["image", "push", "sagemaker", "--set", "colour=red", "--dry-run"], "unknown setting 'colour'"),
    (["image", "push", "sagemaker", "--set", "repository=Bad Name", "--dry-run"], "sagemaker registry: repository"),
    (["image", "push", "127.0.0.1:5000/pb", "--set", "region=x"], "a repository takes no --set options"),
    (["image", "push", "127.0.0.1:5000/pb"], "no Docker engine answers at unix:///nonexistent/docker.sock"),
    (["image", "build"], "no Docker engine answers at unix:///nonexistent/docker.sock"),
    (["image", "build", "--build-arg", "NOEQUALS"], "--build-arg 'NOEQUALS': expected KEY=VALUE"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, says):
    proc = (platbench if tuple(args) in ENTRY_POINT else platbench_here)(*args, cwd=tmp_path, env=NO_ENGINE)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert not (tmp_path / ".platbench").exists()
