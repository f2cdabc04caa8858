"""Where a sweep's cells run (platforms/bench/sweep.py schedules them; an executor only starts one and says
when it ended):

- `process` (default): each cell a worker process on this machine (`python -m platforms.bench.sweep worker
  CELL_DIR`, its own session). A local cell gets one device of its own: with N visible GPUs (or `--devices
  N`) N local cells run at once, each with CUDA_VISIBLE_DEVICES naming only its GPU; without a GPU one at a
  time (the CPU is the device). Two runs never share a device, so their timings stay their own.
- `ray` / `ray://HOST:PORT`: each cell a Ray task on an existing Ray cluster (`ray start --head` …; `ray`
  is the cluster RAY_ADDRESS names, else the one this machine belongs to; `ray://` goes through Ray Client). A local training
  cell asks Ray for one GPU (Ray sets CUDA_VISIBLE_DEVICES to it), or on a CPU-only cluster for every CPU
  of a node, so it has a node to itself; a cloud cell is a light task (no CPU reserved) that waits on its
  platform. The task starts the same worker command as a process of its own (a fresh interpreter per
  cell: nothing of one launch, its seeds, torch threads, Lightning state, signal handlers or environment,
  leaks into the next) and waits for it, so Ray's workers are reused across cells (max_calls=0, also for
  GPU tasks, whose default is 1) and a cell pays no Ray worker start-up (benchmarks/ray_overhead.py). The
  cell's process dies with its Ray worker (PR_SET_PDEATHSIG), and a task whose worker dies is retried
  (max_retries): the retried launch finds the cell's checkpoint and resumes. Ray is imported only here,
  only for this executor (extra `platbench[ray]`).

Ray docs relied on: tasks and their resources, max_calls (worker reuse), retries on worker death,
cancellation (KeyboardInterrupt in the task), children of a worker, Ray Client addresses:
https://docs.ray.io/en/releases-2.50.0/ray-core/tasks.html
https://docs.ray.io/en/releases-2.50.0/ray-core/scheduling/resources.html
https://docs.ray.io/en/releases-2.50.0/ray-core/fault_tolerance/tasks.html
https://docs.ray.io/en/releases-2.50.0/ray-core/api/doc/ray.cancel.html
https://docs.ray.io/en/releases-2.50.0/ray-core/api/doc/ray.remote.html
https://docs.ray.io/en/latest/ray-core/user-spawn-processes.html
https://docs.ray.io/en/releases-2.50.0/cluster/running-applications/job-submission/ray-client.html

A team's setup (README): every Ray node has platbench installed (the image), the dataset folder and the
sweep's output folder on storage every node sees at the same path (NFS or a mounted bucket: checkpoints
must be visible to the node a retried cell lands on), and MLflow a server all nodes reach
(MLFLOW_TRACKING_URI=http://…), which the workers log to.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Optional

from platforms.errors import UserError

# a cell's folder (platforms/bench/sweep.py writes and reads them; the executors carry them between nodes)
WORKER_FILE = "worker.json"        # the worker's pid/host/start, written by the coordinator when it starts it
JOB_FILE = "worker-job.json"       # what the worker runs
RESULT_FILE = "worker-result.json"
LOG_FILE = "launch.log"

RAY_RETRIES = 3          # a cell whose worker process dies is run again (and resumes) this many times
CLIENT_ATTEMPTS = 3      # Ray Client connections tried (its server side sometimes fails to start one)
RAY_ENV = ("MLFLOW_TRACKING_URI", "PLATBENCH_CACHE", "PLATBENCH_IMAGE_DIGEST")  # passed on to every task


def visible_gpus() -> list[str]:
    """The GPUs this machine shows CUDA, without importing torch: CUDA_VISIBLE_DEVICES when set, else the
    NVIDIA device nodes (/dev/nvidia0, /dev/nvidia1, …) the driver creates, one per GPU."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    return sorted((p[len("/dev/nvidia"):] for p in glob.glob("/dev/nvidia[0-9]*")), key=int)


class ProcessExecutor:
    """Worker processes on this machine; local cells pinned one per device."""

    name = "process"

    def __init__(self, devices: Optional[int] = None):
        gpus = visible_gpus()
        if devices is not None and devices > max(1, len(gpus)):
            raise UserError(f"--devices {devices}: " + (f"only {len(gpus)} GPU(s) visible" if gpus else
                            "no GPU visible, and local cells sharing the CPU would time each other"))
        self.gpus = gpus[:devices] if devices is not None else gpus
        self.slots = max(1, len(self.gpus))
        self.held: dict[str, subprocess.Popen] = {}  # GPU → the worker using it

    def local_slots(self) -> int:
        return self.slots

    def describe(self) -> str:
        return (f"worker processes on this machine; local cells one per GPU ({', '.join(self.gpus)})" if self.gpus
                else "worker processes on this machine; local cells one at a time (no GPU: the CPU is the device)")

    def start(self, command: list[str], cell_dir: Path, local: bool, log) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        gpu = None
        if local and self.gpus:
            self.held = {g: p for g, p in self.held.items() if p.poll() is None}
            gpu = next((g for g in self.gpus if g not in self.held), None)
            if gpu is None:  # the scheduler keeps local cells ≤ local_slots(); a free GPU always exists
                raise RuntimeError("no free GPU for a local cell")
            env["CUDA_VISIBLE_DEVICES"] = gpu
            log.write(f"pinned to GPU {gpu} (CUDA_VISIBLE_DEVICES={gpu})\n")
            log.flush()
        popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env, cwd=Path.cwd())
        if gpu is not None:
            self.held[gpu] = popen
        return popen

    def forward(self, pid: Optional[int], handle: Any, signum: int) -> None:
        """Pass the coordinator's Ctrl-C / SIGTERM on to a running cell (its whole process group)."""
        if pid is None:
            return
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ Ray
def _cell_process_setup(parent: int):
    """preexec_fn of a cell's process. Ctrl-C reaches it as in a terminal: a Ray worker's main thread blocks
    SIGINT (Ray's cancel reaches it as a simulated interrupt instead), and a child inherits the blocked mask
    (and an ignored SIGINT) across exec, so the SIGINT passed on by run_cell would stay pending. And the
    kernel SIGKILLs it when the Ray worker that started it dies (PR_SET_PDEATHSIG, Linux): Ray does not kill
    a crashed worker's children by default (https://docs.ray.io/en/latest/ray-core/user-spawn-processes.html),
    and an orphaned cell would go on training beside the retried one."""
    def setup() -> None:
        import ctypes

        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs its KeyboardInterrupt handler
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1 (<linux/prctl.h>)
        except (OSError, AttributeError):  # not Linux: a crashed worker's cell outlives it (said in the docstring)
            return
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)
    return setup


def run_cell(command: list[str], cell_dir: str, job_text: str, env: dict) -> dict:
    """The Ray task: one cell's worker command (`python -m platforms.bench.sweep worker CELL_DIR`) run as a
    process of its own, exactly what the process executor starts, its output in the cell's launch.log.
    The Ray worker stays clean and is reused for the next cell: the task changes nothing in it (no
    environment, no file descriptors, no imports of the launch). Returns the worker's result and exit code."""
    import sys

    d = Path(cell_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / JOB_FILE).write_text(job_text)
    # CUDA_VISIBLE_DEVICES as Ray set it for this task (its GPU), in the cell's environment only
    child_env = {**os.environ, **env}
    with open(d / LOG_FILE, "a") as log:
        log.write(f"ray task on {os.uname().nodename} pid {os.getpid()}"
                  f" (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')})\n")
        log.flush()
        # this node's interpreter (the coordinator's path may not exist here)
        proc = subprocess.Popen([sys.executable, *command[1:]], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=child_env, start_new_session=True,
                                preexec_fn=_cell_process_setup(os.getpid()))
        log.write(f"cell process pid {proc.pid}\n")
        log.flush()
    try:
        # polled, not a blocking wait: ray.cancel raises KeyboardInterrupt in this thread between bytecodes
        while (code := _wait(proc, 0.5)) is None:
            pass
    except KeyboardInterrupt:  # ray.cancel (the coordinator's Ctrl-C): the cell handles it as Ctrl-C
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        code = proc.wait()
    try:
        result = json.loads((d / RESULT_FILE).read_text())
    except (OSError, ValueError):
        result = {"status": "failed", "run_id": None, "message": "the worker wrote no result"}
    return {**result, "code": code}


def _wait(proc: subprocess.Popen, seconds: float) -> Optional[int]:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


class RayCell:
    """A submitted cell: the Popen-like face the coordinator polls (poll/pid)."""

    pid = None

    def __init__(self, ray, ref, cell_dir: Path):
        self.ray, self.ref, self.cell_dir = ray, ref, cell_dir
        self.code: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.code is not None:
            return self.code
        ready, _ = self.ray.wait([self.ref], timeout=0)
        if not ready:
            return None
        from trainer.results import atomic_write_text

        try:
            result = self.ray.get(self.ref)
        except Exception as exc:  # noqa: BLE001 - a task that failed for good (retries spent, cancelled): say why
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            result = {"status": "failed", "run_id": None, "message": f"ray: {type(exc).__name__}: {first}"[:300],
                      "code": 1}
        # the coordinator reads the worker's result beside the cell (the task may have run on another node)
        atomic_write_text(self.cell_dir / RESULT_FILE, json.dumps({k: v for k, v in result.items() if k != "code"}) + "\n")
        self.code = int(result.get("code", 1))
        return self.code


class RayExecutor:
    """Cells as Ray tasks on an existing cluster (`ray` = the local node's cluster, `ray://HOST:PORT`)."""

    name = "ray"

    def __init__(self, address: str, devices: Optional[int] = None):
        from platforms.core.sdk import require

        ray = require("ray", "ray", "Ray (for --executor ray)")
        self.ray = ray
        self.address = address
        # Ray starts its workers at nice 15 (its worker_niceness setting): a cell timed at nice 15 loses the CPU
        # to every other process of its node. This sweep's workers (and so its cells) run at the coordinator's
        # niceness, set the way Ray's own job manager sets its supervisor's (env_vars RAY_worker_niceness:
        # python/ray/dashboard/modules/job/job_manager.py), in the job's runtime_env, so every task shares it
        # and reuses the same workers (https://docs.ray.io/en/releases-2.50.0/ray-core/handling-dependencies.html)
        niceness = {"env_vars": {"RAY_worker_niceness": str(os.getpriority(os.PRIO_PROCESS, 0))}}
        try:
            for attempt in range(1, CLIENT_ATTEMPTS + 1):
                try:
                    ray.init(address=address, logging_level="WARNING", log_to_driver=False, ignore_reinit_error=True,
                             runtime_env=niceness)
                    break
                except ConnectionAbortedError:
                    # Ray Client: the server's process for this client died starting (ray-project/ray#63202, a
                    # gRPC fork race in Ray's client proxy, intermittent); a new connection starts a new one
                    ray.shutdown()
                    if attempt == CLIENT_ATTEMPTS:
                        raise
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"--executor {'ray' if address == 'auto' else address}: no Ray cluster there ({first[:200]}); "
                            "start one with `ray start --head` or give ray://HOST:PORT") from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        # CPU-only cluster: a local cell takes a whole node's CPUs, so no two cells share a node's CPU
        self.cpus_per_cell = max((n["Resources"].get("CPU", 1) for n in nodes), default=1)
        slots = self.gpus if self.gpus else len(nodes)
        self.slots = min(slots, devices) if devices else slots
        # max_calls=0: workers are reused (the cell runs in a process of its own); Ray's default for GPU tasks is 1
        self.task = ray.remote(max_calls=0, max_retries=RAY_RETRIES, retry_exceptions=False)(run_cell)

    def local_slots(self) -> int:
        return max(1, self.slots)

    def describe(self) -> str:
        ask = "1 GPU" if self.gpus else f"{self.cpus_per_cell:g} CPUs (a whole node)"
        return (f"Ray tasks on {self.address} ({self.gpus} GPU(s)); a local cell asks for {ask}, a cloud cell "
                f"for none; a task whose worker dies is retried up to {RAY_RETRIES} times and resumes")

    def start(self, command: list[str], cell_dir: Path, local: bool, log) -> RayCell:
        from platforms.core import tracking

        env = {k: os.environ[k] for k in RAY_ENV if os.environ.get(k)}
        env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()  # the user's store; the embedded one by path
        env["PYTHONUNBUFFERED"] = "1"
        resources = ({"num_gpus": 1} if self.gpus else {"num_cpus": self.cpus_per_cell}) if local else {"num_cpus": 0}
        log.write(f"submitted as a Ray task ({', '.join(f'{k}={v:g}' for k, v in resources.items())})\n")
        log.flush()
        ref = self.task.options(**resources, name=f"platbench-cell:{cell_dir.name}").remote(
            command, str(cell_dir.resolve()), (cell_dir / JOB_FILE).read_text(), env)
        return RayCell(self.ray, ref, cell_dir)

    def forward(self, pid: Optional[int], handle: Any, signum: int) -> None:
        """Ray cancels a running task by raising KeyboardInterrupt in it, as Ctrl-C would: the launch stops
        its job (a local trainer keeps its last epoch-end checkpoint) and the run is marked killed."""
        if isinstance(handle, RayCell):
            if handle.code is None:
                self.ray.cancel(handle.ref, force=False)
        else:  # a worker process re-attached from an earlier session
            ProcessExecutor.forward(self, pid, handle, signum)

    def close(self) -> None:
        self.ray.shutdown()


def make(spec: str, devices: Optional[int] = None):
    """`process` | `ray` | `ray://HOST:PORT` → an executor; anything else one line."""
    if spec in ("process", "", None):
        return ProcessExecutor(devices)
    if spec == "ray":  # RAY_ADDRESS names the cluster when set (HOST:PORT of its head), else this node's
        return RayExecutor(os.environ.get("RAY_ADDRESS") or "auto", devices)
    if spec.startswith("ray://") and len(spec) > len("ray://"):
        return RayExecutor(spec, devices)
    raise UserError(f"--executor {spec!r}: use process (default), ray (the Ray cluster of this machine) or "
                    "ray://HOST:PORT")


