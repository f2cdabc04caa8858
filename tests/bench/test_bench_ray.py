"""`platbench sweep --executor ray://…` for real: a Ray cluster started here (`ray start --head` on 127.0.0.1,
2 CPUs), the sweep's coordinator connected through Ray Client (ray://, a coordinator off the cluster), a real
`mlflow server` on loopback that the Ray workers log to (the team setup), one Ray worker killed (SIGKILL)
after its cell's first epoch: the cell's process dies with it, Ray retries the task and the launch resumes
from the checkpoint. Its report data equals the in-process sweep's of the same cells (runs, cells, figures
within noise). The direct address (`--executor ray` with RAY_ADDRESS) is what the executor tests and the
overhead benchmark below use: cancellation reaches the cell as Ctrl-C, cells run at the coordinator's
niceness in processes of their own, and the benchmark measures that.

The cells run the stand-in trainer (tests/stand_in; the cluster and the in-process sweep are started with
its environment, as a platform chooses what its jobs run): what is tested here is the executor — the retried
task, the resume from the killed attempt's checkpoint, the runs and records — not training, whose resume is
tested in tests/test_training.py. 1 cell of 2 epochs on the stand-in's golden data (every image: `all`); on the
cluster the stand-in stops making progress after the first epoch's checkpoint until it resumes from it
(PLATBENCH_STAND_IN_FAIL=hang-once), so the worker is killed between that checkpoint and the end however
loaded the machine, and no epoch waits longer than the stand-in's default."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from _serving import free_port
from conftest import REPO, VENV_BIN

from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here

SWEEP = ["--per-class", "all", "--seeds", "0", "--epochs", "2", "--name", "same"]  # the stand-in's golden job
CELL = "local-small-pcall-seed0"
ACCURACY_NOISE = 0.05  # the killed cell resumes at an epoch boundary (exact by design); the rest is float noise


def _stop(*procs: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the servers and every process they started (collected first), then SIGKILL what is left: all
    at once, so their shutdowns overlap."""
    family = []
    for proc in procs:
        try:
            family += [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family.append(proc.pid)
    for pid in family:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                         for p in family):
        time.sleep(0.2)
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait(10)


def _wait_http(port: int, path: str, proc: subprocess.Popen, log: Path, limit: float = 180) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}{path}: {log.read_text()[-3000:]}")


def _wait_port(port: int, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port}: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, stand_in):
    """A one-node Ray cluster with 2 CPUs (every port chosen here, loopback; its tasks' `trainer` the stand-in)
    and an `mlflow server`, started together (each takes tens of seconds on this machine), stopped after."""
    root = tmp_path_factory.mktemp("servers")
    gcs, client, dash, agent, tracking = (free_port() for _ in range(5))
    ray_log, mlflow_log = root / "ray.log", root / "mlflow.log"
    # Ray's sockets live under its temp dir and an AF_UNIX path has at most 107 bytes: under pytest-xdist,
    # tmp_path's popen-gwN/ level makes .../session_<date>_<pid>/sockets/plasma_store longer than that
    ray_tmp = tempfile.mkdtemp(prefix="pb-ray-")
    ray = subprocess.Popen([str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                            "--port", str(gcs), "--ray-client-server-port", str(client), "--dashboard-port", str(dash),
                            "--dashboard-agent-listen-port", str(agent), "--min-worker-port", "30000",
                            "--max-worker-port", "30999", "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard",
                            "false", "--disable-usage-stats", "--temp-dir", ray_tmp],
                           stdout=ray_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                           env={**os.environ, **stand_in.env(fail="hang-once", fail_after=1)},
                           # its workers' working folder, which `python -m` puts first on a cell's sys.path: in the
                           # checkout's root, the real trainer/ there would come before the stand-in's
                           cwd=root)
    mlflow = subprocess.Popen([str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(tracking),
                               "--backend-store-uri", f"sqlite:///{root / 'm.db'}", "--artifacts-destination",
                               str(root / "artifacts"), "--workers", "1"],
                              stdout=mlflow_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while "will now block" not in ray_log.read_text() and time.time() < deadline:
            assert ray.poll() is None, ray_log.read_text()[-3000:]
            time.sleep(0.5)
        assert "will now block" in ray_log.read_text(), ray_log.read_text()[-3000:]
        # the Ray Client server may still be starting when `ray start` says it blocks: wait until it listens
        _wait_port(client, ray, ray_log, deadline)
        _wait_http(tracking, "/health", mlflow, mlflow_log, limit=max(10, deadline - time.time()))
        yield {"ray": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}", "mlflow": f"http://127.0.0.1:{tracking}"}
    finally:
        _stop(mlflow, ray)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(servers):
    return servers["mlflow"]


@pytest.fixture(scope="module")
def ray_cluster(servers):
    return servers["ray"], servers["client"]


@pytest.fixture(scope="module")
def in_process_started(stand_in, tmp_path_factory):
    """The same sweep in process, started at once: it runs while the Ray one does (the figures compared are
    accuracies and steps, not timings)."""
    cwd = tmp_path_factory.mktemp("in-process")
    env = {**os.environ, "PLATBENCH_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), **stand_in.env()}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "sweep", "--data", str(stand_in.data), *SWEEP, "--json"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield cwd, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def in_process(in_process_started):
    cwd, proc = in_process_started
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return cwd


@pytest.fixture(scope="module")
def on_ray(stand_in, tmp_path_factory, in_process_started, ray_cluster, mlflow_server):
    """The sweep through Ray Client (ray://), a Ray worker killed in the middle of a cell."""
    cwd = tmp_path_factory.mktemp("on-ray")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "sweep", "--data", str(stand_in.data), *SWEEP, "--executor",
                             ray_cluster[1], "--json"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cell = cwd / "runs/sweeps/same" / CELL
    deadline = time.time() + 600
    while not (cell / "checkpoints/last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert (cell / "checkpoints/last.ckpt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    # the Ray worker process running the cell (the task writes its pid first thing), killed outright
    worker, cell_pid = _pids((cell / "launch.log").read_text())
    os.kill(worker, signal.SIGKILL)
    orphan_deadline = time.time() + 15
    while psutil.pid_exists(cell_pid) and psutil.Process(cell_pid).status() != psutil.STATUS_ZOMBIE \
            and time.time() < orphan_deadline:
        time.sleep(0.1)
    orphan = psutil.pid_exists(cell_pid) and psutil.Process(cell_pid).status() != psutil.STATUS_ZOMBIE
    out, err = proc.communicate(timeout=900)
    return cwd, proc.returncode, out, err, worker, orphan


def _pids(log: str) -> tuple[int, int]:
    """(the Ray worker's pid, the cell process's pid) of a cell's first Ray attempt, from its launch.log."""
    lines = log.splitlines()
    worker = int(next(ln for ln in lines if ln.startswith("ray task on")).split(" pid ")[1].split()[0])
    cell = int(next(ln for ln in lines if ln.startswith("cell process pid")).split()[-1])
    return worker, cell


def test_the_sweep_survives_a_killed_worker_and_resumes_the_cell(on_ray, mlflow_server):
    cwd, code, out, err, worker, orphan = on_ray
    assert code == 0, err
    assert not orphan, "the cell's process outlived its killed Ray worker (it would train beside the retry)"
    cells = {c["cell"]: c for c in json.loads(out)["cells"]}
    assert set(cells) == {"local/small/pcall/seed0"}
    assert all(c["status"] == "finished" for c in cells.values()), cells
    # the retried task resumed from the checkpoint the killed one left: the first epoch was not trained again
    res = json.loads((cwd / "runs/sweeps/same" / CELL / "results.json").read_text())
    assert res["resumed_from_epoch"] == 1 and res["epochs_completed"] == 2
    log = (cwd / "runs/sweeps/same" / CELL / "launch.log").read_text()
    assert log.count("ray task on") == 2 and f"pid {worker}" in log
    # nothing was written beside the sweep: the workers logged to the server
    assert not (cwd / "mlflow.db").exists()


def _store(uri: str, cwd: Path, monkeypatch):
    from platforms.report.data import gather

    monkeypatch.chdir(cwd)
    if uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return gather(["same"], latency=False)


def test_report_data_equals_the_in_process_sweeps(on_ray, in_process, mlflow_server, monkeypatch):
    ray_store = _store(mlflow_server, on_ray[0], monkeypatch)
    local_store = _store("", in_process, monkeypatch)

    def cells(store):
        return {(r.platform, r.model, r.per_class, r.seed): r for r in store.training}

    mine, theirs = cells(ray_store), cells(local_store)
    assert set(mine) == set(theirs) and len(mine) == 1
    for key in mine:
        assert abs(mine[key].m("final_test_accuracy") - theirs[key].m("final_test_accuracy")) <= ACCURACY_NOISE
        assert mine[key].m("optimizer_steps") == theirs[key].m("optimizer_steps")
        assert mine[key].fingerprint == theirs[key].fingerprint
    assert [r.m("sweep_finished") for r in ray_store.sweeps] == [r.m("sweep_finished") for r in local_store.sweeps] == [1]
    # the killed attempt is in the record, as lost, not in any figure
    assert [r.outcome for r in ray_store.unfinished] == ["lost"] and not local_store.unfinished


def test_bad_executor_is_one_line(digits_data, tmp_path):
    from conftest import assert_one_line_error

    # in this process (tests/stand_in/cli.py); sweep's subprocess form: tests/bench/test_sweep.py
    proc = platbench_here("sweep", "--data", str(digits_data), *SWEEP, "--executor", "dask://x", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--executor" in proc.stderr and list(tmp_path.iterdir()) == []


SLEEPER = """import pathlib, sys, time
d = pathlib.Path(sys.argv[1])
(d / "ready").write_text("")
try:
    time.sleep(300)
except KeyboardInterrupt:
    (d / "interrupted").write_text("")
    sys.exit(130)
"""


def test_a_cancelled_cell_gets_ctrl_c_and_runs_at_the_coordinators_niceness(ray_cluster, tmp_path, monkeypatch):
    """The coordinator's Ctrl-C → ray.cancel → the cell's own process gets SIGINT (as in a terminal) and exits;
    it ran at this process's niceness (Ray's workers run at nice 15 unless told), in a process of its own."""
    from platforms.bench.executors import JOB_FILE, LOG_FILE, make

    monkeypatch.setenv("RAY_ADDRESS", ray_cluster[0])
    executor = make("ray")
    try:
        (tmp_path / JOB_FILE).write_text("{}\n")
        with open(tmp_path / LOG_FILE, "a") as log:
            cell = executor.start([sys.executable, "-c", SLEEPER, str(tmp_path)], tmp_path, True, log)
        deadline = time.time() + 120
        while not (tmp_path / "ready").exists() and time.time() < deadline:
            assert cell.poll() is None, (tmp_path / LOG_FILE).read_text()
            time.sleep(0.1)
        worker, pid = _pids((tmp_path / LOG_FILE).read_text())
        assert pid != worker and psutil.Process(pid).ppid() == worker
        assert psutil.Process(pid).nice() == os.getpriority(os.PRIO_PROCESS, 0)
        executor.forward(None, cell, signal.SIGINT)
        deadline = time.time() + 60
        while cell.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert cell.poll() is not None and (tmp_path / "interrupted").exists()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        executor.close()


def test_the_overhead_benchmark_measures_cells_in_their_own_processes(ray_cluster, tmp_path):
    """benchmarks/ray_overhead.py against this cluster: both executors measured, the probe imported what a
    sweep worker imports and ran as a process of its own started by the Ray worker (what a cell is)."""
    env = {**os.environ, "RAY_ADDRESS": ray_cluster[0], "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ray_overhead", "--address", "ray", "--cells", "1",
                           "--parts", "1"],  # one fresh Ray worker for the no-op part, not three
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("process  submit → trainer start: median") for ln in lines), proc.stdout
    assert any(ln.startswith("ray      submit → trainer start: median") for ln in lines), proc.stdout
    assert any(ln.startswith("ray / process: ×") and "Ray adds" in ln for ln in lines), proc.stdout
    assert "each cell in a process of its own started by the worker: yes" in proc.stdout
    assert sum("no-op Ray task" in ln for ln in lines) == 2
