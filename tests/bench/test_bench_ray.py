"""`platbench sweep --executor ray://…` for real: a Ray cluster started here (`ray start --head` on 127.0.0.1,
2 CPUs), a real `mlflow server` on loopback that the Ray workers log to (the team setup), one worker killed
(SIGKILL) after its cell's first epoch: Ray retries the task and the launch resumes from the checkpoint.
Its report data equals the in-process sweep's of the same cells (runs, cells, figures within noise).

Small on purpose (2 cells of the bundled digits, 2 epochs): the machine's 2 CPUs are the cluster."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from _serving import free_port
from conftest import VENV_BIN, platbench

SWEEP = ["--per-class", "all", "--seeds", "0,1", "--epochs", "2", "--name", "same"]
ACCURACY_NOISE = 0.05  # the killed cell resumes at an epoch boundary (exact by design); the rest is float noise


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the server and every process it started (collected first), then SIGKILL what is left."""
    try:
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc.pid]
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


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = root / "server.log"
    proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'm.db'}", "--artifacts-destination",
                             str(root / "artifacts"), "--workers", "1"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(port, "/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster with 2 CPUs, every port chosen here (loopback), stopped after."""
    root = tmp_path_factory.mktemp("ray")
    gcs, client, dash, agent = (free_port() for _ in range(4))
    log = root / "ray.log"
    proc = subprocess.Popen([str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(gcs), "--ray-client-server-port", str(client), "--dashboard-port", str(dash),
                             "--dashboard-agent-listen-port", str(agent), "--min-worker-port", "30000",
                             "--max-worker-port", "30999", "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard",
                             "false", "--disable-usage-stats", "--temp-dir", str(root / "t")],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while "will now block" not in log.read_text() and time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "will now block" in log.read_text(), log.read_text()[-3000:]
        yield f"127.0.0.1:{gcs}", f"ray://127.0.0.1:{client}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def in_process(digits_data, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("in-process")
    proc = platbench("sweep", "--data", str(digits_data), *SWEEP, "--json", cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return cwd


@pytest.fixture(scope="module")
def on_ray(digits_data, tmp_path_factory, ray_cluster, mlflow_server):
    cwd = tmp_path_factory.mktemp("on-ray")
    # the driver joins the cluster directly (RAY_ADDRESS = its head); Ray Client (ray://) needs a server process
    # per client that, on this loaded 2-CPU machine, does not always start within Ray's own timeout
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "RAY_ADDRESS": ray_cluster[0]}
    proc = subprocess.Popen([str(VENV_BIN / "platbench"), "sweep", "--data", str(digits_data), *SWEEP, "--executor",
                             "ray", "--json"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cell = cwd / "runs/sweeps/same/local-small-pcall-seed0"
    deadline = time.time() + 600
    while not (cell / "checkpoints/last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert (cell / "checkpoints/last.ckpt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    # the Ray worker process running the cell (the task writes its pid first thing), killed outright
    worker = int(next(line for line in (cell / "launch.log").read_text().splitlines()
                      if line.startswith("ray task on")).split(" pid ")[1].split()[0])
    os.kill(worker, signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    return cwd, proc.returncode, out, err, worker


def test_the_sweep_survives_a_killed_worker_and_resumes_the_cell(on_ray, mlflow_server):
    cwd, code, out, err, worker = on_ray
    assert code == 0, err
    cells = {c["cell"]: c for c in json.loads(out)["cells"]}
    assert set(cells) == {"local/small/pcall/seed0", "local/small/pcall/seed1"}
    assert all(c["status"] == "finished" for c in cells.values()), cells
    # the retried task resumed from the checkpoint the killed one left: the first epoch was not trained again
    res = json.loads((cwd / "runs/sweeps/same/local-small-pcall-seed0/results.json").read_text())
    assert res["resumed_from_epoch"] == 1 and res["epochs_completed"] == 2
    log = (cwd / "runs/sweeps/same/local-small-pcall-seed0/launch.log").read_text()
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
    assert set(mine) == set(theirs) and len(mine) == 2
    for key in mine:
        assert abs(mine[key].m("final_test_accuracy") - theirs[key].m("final_test_accuracy")) <= ACCURACY_NOISE
        assert mine[key].m("optimizer_steps") == theirs[key].m("optimizer_steps")
        assert mine[key].fingerprint == theirs[key].fingerprint
    assert [r.m("sweep_finished") for r in ray_store.sweeps] == [r.m("sweep_finished") for r in local_store.sweeps] == [2]
    # the killed attempt is in the record, as lost, not in any figure
    assert [r.outcome for r in ray_store.unfinished] == ["lost"] and not local_store.unfinished


def test_bad_executor_is_one_line(digits_data, tmp_path):
    from conftest import assert_one_line_error

    proc = platbench("sweep", "--data", str(digits_data), *SWEEP, "--executor", "dask://x", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--executor" in proc.stderr and list(tmp_path.iterdir()) == []
