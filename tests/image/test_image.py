"""The image built from the real Dockerfile, run the way the platforms run it (issue 6). Collected only under
scripts/image-test (see conftest.py), against its engine, with a tiny generated dataset and small settings.

- `docker run IMAGE train` with SageMaker's /opt/ml layout mounted, the folders owned by root as the service
  mounts them, as the image's default user (root: SageMaker expects it, see the Dockerfile);
- `serve` started as each platform starts it: SageMaker `docker run IMAGE serve` with the model unpacked into a
  root-owned /opt/ml/model (/ping, /invocations on 8080); Vertex AI with the launcher's own ModelContainerSpec
  (args, routes, port) and the model fetched from a gs:// AIP_STORAGE_URI (a Cloud Storage emulator);
- `docker stop` mid-training: SIGTERM → epoch-end checkpoint, exit 143 → a second run resumes;
- docker-compose.gpu.yml's trainer service minus the GPU reservation (docker/compose.cpu.override.yml), as
  the non-root user (uid 1000) in the user's own folder, recording the image's ID with no variable passed
  (the record `platbench image build` left in the folder names this build: trainer/image_record.py);
- the SageMaker Python SDK's own local mode, through `platbench launch sagemaker --set local=true`,
  training against a moto S3, then serving the model it wrote;
- the software stack in the image is the lock's (constraints.txt), the one native runs use (issue 10).
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import COLORS, REPO, VENV_BIN, wait_for, write_folder_dataset

from trainer.results import read_results

IMAGE = os.environ.get("PLATBENCH_IT_IMAGE", "")
DIGEST = os.environ.get("PLATBENCH_IT_DIGEST", "")
WORK = Path(os.environ.get("PLATBENCH_IT_WORK", "/nonexistent"))
RECORD = Path(os.environ.get("PLATBENCH_IT_RECORD", "/nonexistent"))  # the folder `platbench image build` ran in
IMAGE_UID = 1000  # the image's non-root user (useradd in the Dockerfile), what compose runs as
ROOT_UID = 0      # the image's default user (USER 0:0), what SageMaker, Vertex AI and Azure ML start
COMPOSE_FILES = ["-f", str(REPO / "docker-compose.gpu.yml"), "-f", str(REPO / "docker/compose.cpu.override.yml")]


def docker(*args: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} … exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def chown_tree(path: Path, uid: int = IMAGE_UID) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, uid)


@pytest.fixture(scope="module")
def data() -> Path:
    return write_folder_dataset(WORK / "data" / "colors", train_per_class=60, test_per_class=15)


@pytest.fixture(scope="module")
def network():
    name = "platbench-it"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


def opt_ml(name: str, hyperparameters: dict[str, str], data: Path) -> Path:
    """SageMaker's layout on the host as the service mounts it: the channel and config read-only,
    model/output/checkpoints owned by root and writable by root only (mode 755), so a container user
    other than root could not write them (issue 12 item 3)."""
    root = WORK / name
    shutil.copytree(data, root / "input/data/training")
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    for d in ("model", "output/data", "checkpoints"):
        (root / d).mkdir(parents=True)
    for d in ("model", "output", "output/data", "checkpoints"):
        os.chmod(root / d, 0o755)
    for d in ("model", "output", "output/data", "checkpoints"):
        st = (root / d).stat()
        assert st.st_uid == ROOT_UID and not st.st_mode & 0o022, f"{d}: not as SageMaker mounts it"
    return root


def mounts(root: Path) -> list[str]:
    return ["-v", f"{root / 'input/data/training'}:/opt/ml/input/data/training:ro",
            "-v", f"{root / 'input/config'}:/opt/ml/input/config:ro",
            "-v", f"{root / 'model'}:/opt/ml/model", "-v", f"{root / 'output'}:/opt/ml/output",
            "-v", f"{root / 'checkpoints'}:/opt/ml/checkpoints"]


def image_env(name: str) -> str:
    out = docker("image", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", IMAGE).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line).get(name, "")


def png(path: Path) -> bytes:
    return path.read_bytes()


def http_call(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------ stack
STACK_PROBE = """
import importlib.metadata as md, json, sys
import torch, torchvision, lightning
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "modules": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "lightning": lightning.__version__},
    "cuda": torch.version.cuda,
    "dists": {d.metadata["Name"]: d.version for d in md.distributions()},
}))
"""


def canonical(name: str) -> str:  # https://packaging.python.org/en/latest/specifications/name-normalization/
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_runs_exactly_the_locks_stack():
    """`import torch, torchvision, lightning` in the image reports the lock's versions (a CUDA torch), on the
    lock's Python minor, with nothing installed outside the lock, and the same versions as the native
    environment these tests run in (scripts/setup installs the same lock)."""
    from importlib.metadata import version

    proc = docker("run", "--rm", "--network", "none", IMAGE, "python", "-c", STACK_PROBE, timeout=300)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, pinned = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[canonical(name)] = pinned
    dists = {canonical(n): v for n, v in got["dists"].items()}
    for module, reported in got["modules"].items():
        assert reported.split("+")[0] == pins[module], (module, reported, pins[module])  # 2.15.0+cu132 is 2.15.0
        assert dists[module] == pins[module] == version(module), module
    assert got["cuda"], "torch in the image is a CPU build; the lock's is the registry's CUDA build"
    lock_python = re.search(r"^ARG LOCK_PYTHON=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)[1]
    assert got["python"] == lock_python
    # pip and wheel are the installer's; setuptools too unless the lock pins it (pip freeze, which made the
    # lock, leaves it out, yet torch requires it at run time: then the base's copy is kept)
    tools = {"pip", "wheel", "platbench"} | ({"setuptools"} - pins.keys())
    outside = {n: v for n, v in dists.items() if n not in tools and pins.get(n) != v}
    assert not outside, f"installed in the image but not in constraints.txt at that version: {outside}"


# ------------------------------------------------------------------------------------------------ train
@pytest.fixture(scope="module")
def trained(data):
    root = opt_ml("train", {"model": "small", "epochs": "2", "batch_size": "32"}, data)
    proc = docker("run", "--rm", "--name", "pbit-train", "--network", "none",
                  "-e", "TRAINING_JOB_NAME=pbit-train-1", "-e", f"PLATBENCH_IMAGE_DIGEST={DIGEST}",
                  *mounts(root), IMAGE, "train", check=False, timeout=900)
    return root, proc


def test_train_under_the_sagemaker_layout_with_root_owned_folders(trained):
    assert docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE).stdout.strip() == f"{ROOT_UID}:{ROOT_UID}"
    root, proc = trained
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "- Test accuracy: " in proc.stdout
    res = read_results(root / "output/data")
    assert res.platform == "sagemaker" and res.job_id == "pbit-train-1" and res.epochs_completed == 2
    assert res.image_digest == DIGEST  # what the launcher passed: in results.json, then in MLflow
    assert res.git_commit and res.git_commit == image_env("PLATBENCH_GIT_COMMIT")
    assert res.hyperparameters["batch_size"] == 32  # from hyperparameters.json
    for f in ("model/model.pt", "model/model.json", "output/data/results.json", "checkpoints/last.ckpt"):
        assert (root / f).stat().st_uid == ROOT_UID, f  # written by the image's default user, as on SageMaker


# ------------------------------------------------------------------------------------------------ serve
def container_uid(name: str) -> int:
    """The uid the container's main process runs as (what the platform's start gave it)."""
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:")))


def test_serve_answers_ping_and_invocations_from_the_trained_model(trained, network, data):
    """As SageMaker hosting starts it: `docker run IMAGE serve`, no user given (the image's default), the
    model unpacked into /opt/ml/model owned by root
    (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html)."""
    root, proc = trained
    assert proc.returncode == 0
    assert (root / "model").stat().st_uid == ROOT_UID
    name = "pbit-serve"
    docker("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8080",
           "-v", f"{root / 'model'}:/opt/ml/model:ro", "-e", f"PLATBENCH_IMAGE_DIGEST={DIGEST}", IMAGE, "serve")
    try:
        assert container_uid(name) == ROOT_UID
        port = int(docker("port", name, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1])
        wait_for(lambda: _ping(port), 180, "/ping to answer 200")
        correct, total = 0, 0
        for cls in COLORS:
            for img in sorted((data / "test" / cls).glob("*.png"))[:5]:
                status, headers, body = http_call(port, "POST", "/invocations", png(img), {"Content-Type": "image/png"})
                assert status == 200, body
                (pred,) = json.loads(body)["predictions"]
                assert pred["class"] in COLORS and 0 <= pred["probability"] <= 1
                assert {k.lower(): v for k, v in headers.items()}.get("x-platbench-image-digest") == DIGEST
                correct += pred["class"] == cls
                total += 1
        assert correct / total > 1 / len(COLORS), f"{correct}/{total}: no better than chance"
        two = sorted((data / "test" / "red").glob("*.png"))[:2]
        doc = {"instances": [{"b64": base64.b64encode(png(p)).decode()} for p in two]}
        status, _, body = http_call(port, "POST", "/invocations", json.dumps(doc).encode(),
                                    {"Content-Type": "application/json"})
        assert status == 200 and len(json.loads(body)["predictions"]) == 2
        status, _, body = http_call(port, "POST", "/invocations", b"hello", {"Content-Type": "text/plain"})
        assert status == 415 and "error" in json.loads(body)
    finally:
        docker("stop", "-t", "30", name, check=False)
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name, check=False).stdout.strip()
        logs = docker("logs", name, check=False)
        docker("rm", "-f", name, check=False)
    assert code == "0", f"serve exited {code} on SIGTERM\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"


def _ping(port: int, route: str = "/ping") -> bool:
    try:
        return http_call(port, "GET", route)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def gcs_emulator():
    """The Cloud Storage emulator on the host's loopback; the Vertex container shares the host's network
    to reach it (the engine runs without its own bridge)."""
    from gcp_storage_emulator.server import create_server

    from conftest_clouds import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def kubernetes_start(command: list[str], args: list[str]) -> list[str]:
    """`docker run` arguments for a container spec with Kubernetes command/args semantics (Vertex AI's
    ModelContainerSpec): command replaces the image's ENTRYPOINT, args its CMD."""
    if command:
        return ["--entrypoint", command[0], IMAGE, *command[1:], *args]
    return [IMAGE, *args]


def test_vertex_serving_container_fetches_its_model_from_gs(trained, gcs_emulator, data, monkeypatch):
    """As Vertex AI starts the model's container: the launcher's own ModelContainerSpec (args, routes,
    port; platforms/vertex/endpoint.py), the image's default user, AIP_* set as the service sets them and
    the model handed over as a gs:// AIP_STORAGE_URI, nothing mounted
    (https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements). `serve` must copy
    it down with google-cloud-storage, which the image installs (issue 12 item 2)."""
    from google.cloud import storage

    from conftest_clouds import free_port
    from platforms.vertex import endpoint as vx

    root, proc = trained
    assert proc.returncode == 0
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    bucket = storage.Client(project="platbench-it").create_bucket("pbit-vertex-models")
    for f in ("model.pt", "model.json"):
        bucket.blob(f"models/pbit/{f}").upload_from_filename(str(root / "model" / f))
    # The spec's containerPort becomes AIP_HTTP_PORT; here a free port of the host, whose network the
    # container shares to reach the emulator on 127.0.0.1.
    port = free_port()
    env = {"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": vx.HEALTH_ROUTE, "AIP_PREDICT_ROUTE": vx.PREDICT_ROUTE,
           "AIP_STORAGE_URI": "gs://pbit-vertex-models/models/pbit", "AIP_MODE": "PREDICTION",
           "AIP_FRAMEWORK": "CUSTOM_CONTAINER", "AIP_DEPLOYED_MODEL_ID": "1", "AIP_ENDPOINT_ID": "2",
           "AIP_PROJECT_NUMBER": "3", "AIP_MACHINE_TYPE": "n1-standard-4",
           "STORAGE_EMULATOR_HOST": gcs_emulator, "PLATBENCH_IMAGE_DIGEST": DIGEST}
    name = "pbit-vertex-serve"
    docker("run", "-d", "--name", name, "--network", "host", *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
           *kubernetes_start([], vx.SERVE_ARGS))
    try:
        assert container_uid(name) == ROOT_UID
        wait_for(lambda: _ping(port, vx.HEALTH_ROUTE) or docker("inspect", "-f", "{{.State.Running}}", name
                                                                  ).stdout.strip() == "false", 180, "the health route")
        assert _ping(port, vx.HEALTH_ROUTE), docker("logs", name, check=False).stderr[-3000:]
        sample = sorted((data / "test" / "blue").glob("*.png"))[0]
        status, headers, body = http_call(port, "POST", vx.PREDICT_ROUTE, png(sample), {"Content-Type": "image/png"})
        assert status == 200, body
        assert json.loads(body)["predictions"][0]["class"] in COLORS
        assert {k.lower(): v for k, v in headers.items()}.get("x-platbench-image-digest") == DIGEST
    finally:
        docker("stop", "-t", "30", name, check=False)
        logs = docker("logs", name, check=False)
        docker("rm", "-f", name, check=False)
    assert re.search(r"copied 2 model files from gs://pbit-vertex-models/models/pbit", logs.stderr), logs.stderr[-3000:]


# ------------------------------------------------------------------------------------------------ SIGTERM
def test_docker_stop_checkpoints_and_a_second_run_resumes(data):
    # stopped once epoch 2 has ended: the epochs after it are the margin the stop must land in (it does within
    # a step), and the resumed run trains only them (was 20: 18 epochs after the stop)
    epochs = 6
    root = opt_ml("preempt", {"model": "small", "epochs": str(epochs), "batch_size": "16"}, data)
    args = ["--network", "none", "-e", "TRAINING_JOB_NAME=pbit-preempt", "-e", f"PLATBENCH_IMAGE_DIGEST={DIGEST}",
            *mounts(root), IMAGE, "train"]
    name = "pbit-preempt"
    docker("run", "-d", "--name", name, *args)
    try:
        wait_for(lambda: "- Epoch: 2\n" in docker("logs", name, check=False).stdout, 600, "epoch 2 to end")
        t0 = time.time()
        docker("stop", "-t", "60", name)  # SIGTERM, then SIGKILL after 60 s
        stopped_in = time.time() - t0
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name).stdout
    finally:
        docker("rm", "-f", name, check=False)
    assert code == "143", logs[-3000:]
    assert stopped_in < 60, "SIGTERM was not handled: docker stop had to SIGKILL"
    assert "SIGTERM received" in logs
    assert (root / "checkpoints/last.ckpt").is_file() and not (root / "output/data/results.json").exists()

    proc = docker("run", "--rm", "--name", name, *args, timeout=900)
    assert "Resuming from /opt/ml/checkpoints/last.ckpt" in proc.stdout, proc.stdout[-3000:]
    res = read_results(root / "output/data")
    assert res.resumed_from_epoch is not None and res.resumed_from_epoch >= 2
    assert res.epochs_completed == epochs and res.image_digest == DIGEST


# ------------------------------------------------------------------------------------------------ compose
def test_compose_trainer_service_without_the_gpu_reservation(data):
    from mlflow.tracking import MlflowClient

    """No digest passed (issue 18): the trainer reads the record `platbench image build` left in the project
    folder and records its image ID because the record's build id is the one baked into the image."""
    proj = WORK / "compose"
    shutil.copytree(data, proj / "data" / "cifar10")  # prepared already: --if-missing skips the download
    shutil.copytree(RECORD / ".platbench", proj / ".platbench")  # the project folder the image was built from
    chown_tree(proj)  # the user's own folder, owned by the uid compose runs the image as (PLATBENCH_UID)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATBENCH_IMAGE_")}
    # two epochs as given (no step budget: it trained 200 steps, minutes of the image test, for what only needs a
    # run): what is tested is the service, its user, folder and recorded identity, not training
    env.update({"PWD": str(proj), "PLATBENCH_IMAGE": IMAGE, "PLATBENCH_MODEL": "small", "PLATBENCH_TARGET": "0.5",
                "PLATBENCH_LAUNCH_ARGS": "--epochs 2", "PLATBENCH_UID": str(IMAGE_UID), "PLATBENCH_GID": str(IMAGE_UID)})
    config = json.loads(docker("compose", *COMPOSE_FILES, "config", "--format", "json", cwd=proj, env=env).stdout)
    svc = config["services"]["trainer"]
    assert not svc.get("deploy", {}).get("resources")  # the GPU reservation is gone, nothing else changed:
    assert svc["working_dir"] == str(proj) and svc["image"] == IMAGE and svc["user"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert not any(k.startswith("PLATBENCH_IMAGE_") for k in svc.get("environment") or {})  # nothing passed in
    try:
        proc = docker("compose", *COMPOSE_FILES, "run", "--rm", "-T", "trainer", cwd=proj, env=env, check=False,
                      timeout=900)
    finally:
        docker("compose", *COMPOSE_FILES, "down", cwd=proj, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = (proj / "runs").iterdir()
    res = read_results(out)
    assert res.platform == "local" and res.model == "small" and res.target_accuracy == 0.5
    assert res.epochs_completed == 2  # PLATBENCH_LAUNCH_ARGS reached the launch
    build_id = json.loads((RECORD / ".platbench/image.json").read_text())["build_id"]
    assert res.image_digest == res.image_id == DIGEST and res.image_build_id == build_id
    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["platbench.image_digest"] == DIGEST
    assert run.data.tags["platbench.image_id"] == DIGEST


# ------------------------------------------------------------------------------------------------ SDK
@pytest.fixture(scope="module")
def aws_env():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    home = WORK / "home"
    home.mkdir(exist_ok=True)
    config = home / "sagemaker-config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"), "AWS_CONFIG_FILE": str(home / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
           "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config), "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "HOME": str(home)}
    yield env
    server.stop()


def test_sagemaker_sdk_local_mode_trains_and_serves_the_image(data, aws_env, monkeypatch):
    import boto3

    for k, v in aws_env.items():
        monkeypatch.setenv(k, v)
    bucket, job = "platbench-it", "pbit-sdk-1"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    work = WORK / "sdk"
    work.mkdir()
    proc = subprocess.run(
        [str(VENV_BIN / "platbench"), "launch", "sagemaker", "--data", str(data), "--model", "small", "--epochs", "2",
         "--set", "local=true", "--set", "local_runner=docker", "--set", f"bucket={bucket}",
         "--set", f"image_uri={IMAGE}", "--set", f"job_name={job}", "--json",
         "--verbose"],  # the job's log lines on stderr: piped, they appear only when asked for (issue 28)
        cwd=work, env={**os.environ}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    sys.stderr.write(proc.stderr[-2000:])  # the SDK's compose log, for the record (-rA / on failure)
    doc = json.loads(proc.stdout)
    res = doc["results"]
    assert res["platform"] == "sagemaker" and res["job_id"] == job and res["epochs_completed"] == 2
    assert res["image_digest"] == DIGEST
    assert "- Epoch: 2" in proc.stderr  # the container's log reached the launcher without compose's prefixes

    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}").get_run(doc["mlflow_run_id"])
    tags = run.data.tags
    assert run.info.status == "FINISHED" and tags["platbench.local_runner"] == "docker"
    assert tags["platbench.image_digest"] == DIGEST and tags["platbench.staging"] == "naive"

    prefix = f"platbench/jobs/{job}/output"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert {f"{prefix}/model.tar.gz", f"{prefix}/output.tar.gz"} <= keys
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=f"{prefix}/output.tar.gz")["Body"].read())) as t:
        assert "results.json" in t.getnames()  # the service's layout (the SDK packs output/ whole)

    from platforms.sagemaker.sdk_local import local_endpoint

    sample = sorted((data / "test" / "green").glob("*.png"))[0]
    with local_endpoint(f"s3://{bucket}/{prefix}/model.tar.gz", IMAGE, "us-east-1", WORK / "sdk-serve",
                        env={"PLATBENCH_IMAGE_DIGEST": DIGEST}) as predictor:
        answer = predictor.predict(png(sample))
        assert answer["predictions"][0]["class"] in COLORS
    running = docker("ps", "-q").stdout.split()
    assert running == [], "the local endpoint's container is still running"


def test_ctrl_c_during_sdk_local_mode_stops_its_container(data, aws_env):
    """Teardown always: Ctrl-C while the SDK's container trains → StopTrainingJob's equivalent (SIGTERM
    to the SDK's process group: compose stops the container, the trainer checkpoints) → no container
    left running, the MLflow run KILLED."""
    import signal

    import boto3
    from mlflow.tracking import MlflowClient

    env = {**os.environ, **aws_env}
    bucket = "platbench-it-int"
    boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    work = WORK / "sdk-int"
    work.mkdir()
    proc = subprocess.Popen(
        [str(VENV_BIN / "platbench"), "launch", "sagemaker", "--data", str(data), "--model", "small", "--epochs",
         "500", "--set", "local=true", "--set", f"bucket={bucket}", "--set", f"image_uri={IMAGE}",
         "--set", "job_name=pbit-sdk-int", "--json"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def training_container():
            names = docker("ps", "--format", "{{.Names}}").stdout.split()
            name = next((n for n in names if "algo-1" in n), None)
            logs = docker("logs", name, check=False).stdout if name else ""
            return name if re.search(r"^- Epoch: 1\r?$", logs, re.M) else None  # the SDK runs it with a tty

        name = wait_for(training_container, 600, "the SDK's training container to finish an epoch")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out[-2000:] + err[-2000:]
    assert docker("ps", "-q").stdout.split() == [], f"{name} still runs after Ctrl-C"
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "KILLED" and run.data.tags["platbench.local_runner"] == "docker"
