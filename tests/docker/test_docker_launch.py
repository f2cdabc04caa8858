"""`platbench launch docker` without an engine: the settings, bad input (one line, exit 2, nothing created), the
dry-run's plan and `docker run` command, and the container the launcher would create — the Engine API body the
Docker SDK builds, checked against the `docker run` command the plan prints. Nothing stands in for the engine:
what needs one runs in tests/image/test_image_docker_launch.py under scripts/image-test."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import assert_one_line_error, platbench, write_folder_dataset
from stand_in.cli import platbench_here

from platforms.core.api import Job
from platforms.docker.container import CHECKPOINTS, DATA, OUT, parse_gpus
from platforms.docker.jobs import DockerHandle
from platforms.docker.outcome import engine_time
from platforms.docker.permissions import unreadable
from platforms.docker.settings import container_user
from platforms.docker.train import DockerPlatform
from platforms.errors import UserError

IMAGE_ID = "sha256:" + "ab" * 32
NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def readable_data():
    """A dataset anyone may read, as a user's usually is (pytest's own temp folders are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="platbench-docker-test-"))
    root.chmod(0o755)
    yield write_folder_dataset(root / "colors", train_per_class=4, test_per_class=2)
    shutil.rmtree(root)


def record(cwd: Path, image: str = "platbench:latest", image_id: str = IMAGE_ID) -> Path:
    """The record `platbench image build` writes (platforms/image), as it writes it."""
    (cwd / ".platbench").mkdir(parents=True, exist_ok=True)
    (cwd / ".platbench/image.json").write_text(json.dumps({"image": image, "id": image_id, "build_args": {},
                                                            "versions": {}, "pushed": {}}))
    return cwd


# ------------------------------------------------------------------------------------------------ --gpus
@pytest.mark.parametrize("text, count, ids", [
    ("all", -1, ()), ("2", 2, ()), ("device=0", None, ("0",)), ("device=0,2", None, ("0", "2")),
    ("GPU-3a23c669-1f69,GPU-4b", None, ("GPU-3a23c669-1f69", "GPU-4b")), ("none", None, ()),
])
def test_gpus_are_read_as_docker_run_reads_them(text, count, ids):
    gpus = parse_gpus(text)
    assert (gpus.count, gpus.device_ids, gpus.requested) == (count, ids, count is not None or bool(ids))
    requests = gpus.device_requests()
    if gpus.requested:  # the Engine API's DeviceRequest: no driver, the "gpu" capability picks one
        (req,) = requests
        assert req == {"Driver": "", "Count": count or 0, "DeviceIDs": list(ids), "Capabilities": [["gpu"]],
                       "Options": {}}
    else:
        assert requests == []


@pytest.mark.parametrize("text", ["lots", "0", "-1", "device=", "1,1", "device=0;rm -rf /", "all,1"])
def test_a_bad_gpu_request_is_refused(text):
    with pytest.raises(ValueError, match="is not a GPU request"):
        parse_gpus(text)


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("settings, why", [
    ({"gpus": "lots"}, "not a GPU request"), ({"job_name": "-bad"}, "job_name"), ({"job_name": "a/b"}, "job_name"),
    ({"user": "root"}, "UID or UID:GID"), ({"stop_grace": "0"}, "stop_grace"), ({"image": " "}, "image"),
    ({"region": "x"}, "unknown setting"),
])
def test_bad_settings_are_one_line_naming_the_platform(settings, why):
    with pytest.raises(UserError, match=why) as exc:
        DockerPlatform(settings).parsed()
    assert str(exc.value).startswith("docker: ") and "\n" not in str(exc.value)


def test_the_container_never_runs_as_root_by_default():
    cfg = DockerPlatform({}).parsed()
    expected = "1000:1000" if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}"
    assert container_user(cfg) == expected
    assert container_user(DockerPlatform({"user": "1234"}).parsed()) == "1234:1234"
    assert container_user(DockerPlatform({"user": "1234:5"}).parsed()) == "1234:5"


# ------------------------------------------------------------------------------------------------ the container
def spec_for(tmp_path: Path, data: Path, settings: dict, **job):
    platform = DockerPlatform(settings)
    j = Job(data=data, out=tmp_path / "out", model="small", epochs=3, hyperparameters={"batch_size": "16"}, **job)
    return platform, platform.run_spec(j, IMAGE_ID, "platbench:latest", IMAGE_ID, IMAGE_ID)


def test_the_create_body_is_what_the_plans_docker_run_says(tmp_path, digits_data):
    """The Engine API body (built by the SDK's own types) and the `docker run` line of the dry-run come from
    one RunSpec: every mount, variable, the user, the GPU request and the command agree."""
    from docker.constants import DEFAULT_DOCKER_API_VERSION

    _, spec = spec_for(tmp_path, digits_data, {"gpus": "device=0,1", "job_name": "j1", "user": "1000:1000"})
    body = spec.create_body(DEFAULT_DOCKER_API_VERSION)
    host = body["HostConfig"]
    assert body["Image"] == IMAGE_ID and body["User"] == "1000:1000" and body["Labels"] == {"platbench.job_name": "j1"}
    assert host["Binds"] == [f"{digits_data.resolve()}:{DATA}:ro", f"{(tmp_path / 'out').resolve()}:{OUT}:rw",
                             f"{Path('runs/checkpoints/j1').resolve()}:{CHECKPOINTS}:rw"]
    assert host["NetworkMode"] == "none" and host["ShmSize"] == 2 * 1024 ** 3
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"],
                                       "Capabilities": [["gpu"]], "Options": {}}]
    assert sorted(body["Env"]) == sorted([f"PLATBENCH_IMAGE_DIGEST={IMAGE_ID}", f"PLATBENCH_IMAGE_ID={IMAGE_ID}",
                                          "PLATBENCH_PLATFORM=docker"])  # the image's user keeps its own HOME
    cmd = body["Cmd"]
    assert cmd[0] == "train" and cmd[cmd.index("--checkpoint-dir") + 1] == CHECKPOINTS
    assert cmd[cmd.index("--epochs") + 1] == "3" and cmd[cmd.index("--batch-size") + 1] == "16"
    assert cmd[cmd.index("--device") + 1] == "cuda"  # GPUs asked for: used or one-line failure (issue 24 item 9)

    argv = shlex.split(spec.docker_run())
    assert argv[:3] == ["docker", "run", "--rm"]
    flags = {}
    i = 3
    while argv[i].startswith("-"):
        flags.setdefault(argv[i], []).append(argv[i + 1])
        i += 2
    assert argv[i] == "platbench:latest" and argv[i + 1:] == cmd
    assert flags["-v"] == host["Binds"] and sorted(flags["-e"]) == sorted(body["Env"])
    assert flags["--user"] == [body["User"]] and flags["--network"] == ["none"] and flags["--shm-size"] == ["2g"]
    assert flags["--gpus"] == ['"device=0,1"']  # the CLI's CSV field: one request for both devices
    assert flags["--label"] == ["platbench.job_name=j1"] and flags["--name"] == ["platbench-j1"]


def test_checkpoint_dir_wins_and_no_gpu_request_without_gpus(tmp_path, digits_data):
    from docker.constants import DEFAULT_DOCKER_API_VERSION

    _, spec = spec_for(tmp_path, digits_data, {"user": "1234"}, checkpoint_dir=tmp_path / "ck")
    body = spec.create_body(DEFAULT_DOCKER_API_VERSION)
    host = body["HostConfig"]
    assert host["Binds"][2] == f"{(tmp_path / 'ck').resolve()}:{CHECKPOINTS}:rw"
    assert "DeviceRequests" not in host and "--gpus" not in spec.docker_run()
    assert body["User"] == "1234:1234" and "HOME=/tmp" in body["Env"]  # no account in the image: a writable HOME


# ------------------------------------------------------------------------------------------------ outcome
def inspect(code: int, created: str, started: str, finished: str, oom: bool = False) -> dict:
    """GET /containers/{id}/json as the engine answers it (the fields the launcher reads)."""
    return {"Created": created, "State": {"Status": "exited", "Running": False, "ExitCode": code, "OOMKilled": oom,
                                          "StartedAt": started, "FinishedAt": finished}}


def test_engine_times_have_nanoseconds_and_a_zero_value():
    assert engine_time("2026-11-29T16:01:02.123456789Z") == pytest.approx(1795968062.123456789, abs=1e-6)
    assert engine_time("2026-11-29T17:01:02.5+01:00") == pytest.approx(1795968062.5)
    assert engine_time("0001-01-01T00:00:00Z") is None and engine_time("") is None


@pytest.mark.parametrize("code, stopped, results, oom, status, says", [
    (0, False, True, False, "finished", ""),
    (143, True, False, False, "killed", "checkpointed; launch again with --set job_name=j1 to resume"),
    (137, True, False, False, "killed", "SIGKILL after 60 s"),
    (143, False, False, False, "preempted", "stopped (SIGTERM) from outside"),
    (0, False, False, False, "failed", "exited 0 without results.json"),
    (137, False, False, True, "failed", "out of memory"),
    (2, False, False, False, "failed", "exited 2: error: no dataset"),
])
def test_how_the_container_ended_and_its_queue_time(tmp_path, digits_data, code, stopped, results, oom, status, says):
    platform, spec = spec_for(tmp_path, digits_data, {"job_name": "j1"})
    spec.out.mkdir(parents=True)
    if results:
        (spec.out / "results.json").write_text("{}")
    handle = DockerHandle(client=None, spec=spec, job_name="j1", epochs=3, job_id="c" * 64, stopped=stopped)
    handle.tail.append("error: no dataset")
    outcome = platform.job_outcome(handle, inspect(code, "2026-11-29T16:00:00.000000001Z", "2026-11-29T16:00:01.5Z",
                                                "2026-11-29T16:00:31.5Z", oom))
    assert outcome.status == status and says in outcome.message
    # queue = created → started, training = started → finished: not the launcher's own clock around them
    assert outcome.phases == {"queued": pytest.approx(1.5, abs=1e-6), "training": pytest.approx(30.0)}
    assert outcome.cost_usd is None and outcome.tags["platbench.job_id"] == "j1"


def test_the_progress_bar_follows_the_trainers_log_lines():
    from rich.console import Console

    from platforms.core.progress import JobProgress

    console = Console(file=open(os.devnull, "w"), force_terminal=False)
    progress = JobProgress(console, enabled=False)
    progress.epochs(3)
    for line in ("- Epoch: 1", "- Test accuracy: 0.5", "- Epoch: 2", "noise - Epoch: 3"):
        progress.log_line(line)
    (task,) = progress._progress.tasks
    assert task.completed == 2 and task.fields["status"] == "test acc 0.5000"


@pytest.mark.parametrize("verbose", [False, True])
def test_a_jobs_log_lines_are_echoed_only_when_verbose_also_when_piped(verbose):
    """Issue 28: a piped launch (CI logs, scripts) shows no per-epoch lines unless --verbose."""
    import io

    from rich.console import Console

    from platforms.core.progress import JobProgress

    out = io.StringIO()
    progress = JobProgress(Console(file=out, force_terminal=False), enabled=False, verbose=verbose)
    progress.epochs(1)
    progress.log_line("- Epoch: 1")
    assert ("- Epoch: 1" in out.getvalue()) is verbose


# ------------------------------------------------------------------------------------------------ the CLI
def test_dry_run_prints_the_docker_run_of_the_recorded_image(digits_data, tmp_path):
    cwd = record(tmp_path / "p")
    proc = platbench_here("launch", "docker", "--data", str(digits_data), "--gpus", "all", "--set", "job_name=j2",
                     "--dry-run", cwd=cwd, env={"DOCKER_HOST": NO_ENGINE})
    assert proc.returncode == 0, proc.stderr
    (line,) = [line.strip()[2:] for line in proc.stdout.splitlines() if line.strip().startswith("$ docker run --rm --name")]
    argv = shlex.split(line)
    assert "platbench:latest" in argv and f"PLATBENCH_IMAGE_DIGEST={IMAGE_ID}" in argv
    assert argv[argv.index("--gpus") + 1] == "all" and f"{digits_data.resolve()}:{DATA}:ro" in argv
    assert "docker run --rm --network none --gpus all platbench:latest true" in proc.stdout  # the GPU probe
    assert "billing (your own machine" in proc.stdout
    assert sorted(p.name for p in cwd.iterdir()) == [".platbench"], "a dry run wrote files"


def test_dry_run_without_an_image_says_what_a_launch_needs(digits_data, tmp_path):
    proc = platbench_here("launch", "docker", "--data", str(digits_data), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "A real launch still needs:" in proc.stdout and "platbench image build" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, says", [
    (["--gpus", "lots"], "not a GPU request"),
    (["--set", "job_name=../x"], "job_name"),
    ([], "no Docker engine answers at " + NO_ENGINE),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(readable_data, tmp_path, args, says):
    cwd = record(tmp_path / "p")
    proc = platbench_here("launch", "docker", "--data", str(readable_data), *args, cwd=cwd, env={"DOCKER_HOST": NO_ENGINE})
    assert_one_line_error(proc)
    assert proc.returncode == 2 and says in proc.stderr
    assert sorted(p.name for p in cwd.iterdir()) == [".platbench"], "no MLflow store, no runs/ for a refused launch"


def test_a_dataset_the_containers_user_cannot_read_is_one_line(digits_data, tmp_path):
    """`platbench data prepare` leaves its folder at mkdtemp's 0700: another uid cannot enter it."""
    cwd = record(tmp_path / "p")
    proc = platbench_here("launch", "docker", "--data", str(digits_data), "--set", "user=4321:4321", cwd=cwd,
                     env={"DOCKER_HOST": NO_ENGINE})
    assert_one_line_error(proc)
    assert proc.returncode == 2 and "runs as 4321:4321 and could not read" in proc.stderr and "chmod -R a+rX" in proc.stderr
    assert sorted(p.name for p in cwd.iterdir()) == [".platbench"]


def test_unreadable_reads_the_mode_bits_for_the_containers_user(readable_data):
    assert unreadable(readable_data, "4321:4321") is None
    some = sorted((readable_data / "train" / "red").iterdir())[0]
    for path, mode, says in ((some, 0o640, "a file that cannot be read"),
                             (readable_data / "test", 0o750, "a folder that cannot be listed"),
                             (readable_data.parent, 0o700, "a folder above it that cannot be entered")):
        before = path.stat().st_mode & 0o777
        path.chmod(mode)
        try:
            why = unreadable(readable_data, "4321:4321")
            assert why and why.startswith(str(path)) and says in why
            if mode == 0o640:  # the group's bits for a member of the file's group
                assert unreadable(readable_data, f"4321:{path.stat().st_gid}") is None
        finally:
            path.chmod(before)
    assert unreadable(readable_data, "0:0") is None  # root reads everything


def test_no_recorded_image_is_one_line(digits_data, tmp_path):
    # the subprocess form of the CLI's refusals here (the others run in this process: tests/stand_in/cli.py)
    proc = platbench("launch", "docker", "--data", str(digits_data), cwd=tmp_path, env={"DOCKER_HOST": NO_ENGINE})
    assert_one_line_error(proc)
    assert proc.returncode == 2 and "platbench image build" in proc.stderr and "--set image=" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_gpus_on_a_platform_without_the_setting_is_one_line(digits_data, tmp_path):
    proc = platbench_here("launch", "local", "--data", str(digits_data), "--gpus", "all", cwd=tmp_path)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and "gpus" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_gpu_asked_for_leaves_the_device_to_the_trainer(tmp_path, digits_data):
    _, spec = spec_for(tmp_path, digits_data, {"job_name": "j1"})
    assert "--device" not in spec.trainer_args
