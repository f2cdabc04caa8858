"""The loopback workspace's job cluster: what Databricks does with a one-time run's task, written from its
documentation and nothing of platbench's (this module imports no `platforms.*`).

- The cluster comes up (cluster events CREATING → RUNNING: https://docs.databricks.com/api/workspace/clusters/events),
  then its libraries are installed into the cluster's Python environment before the task starts; a `whl` may name
  a Unity Catalog volume path (https://docs.databricks.com/en/libraries/volume-libraries.html, Library.whl in
  https://docs.databricks.com/api/workspace/jobs/submit). All of that is the run's setup_duration.
- spark_python_task: the driver's Python runs `python_file` with `parameters` as its command line arguments;
  python_wheel_task: the installed package's entry point `entry_point` is called with `parameters` as sys.argv
  (SparkPythonTask, PythonWheelTask in https://docs.databricks.com/api/workspace/jobs/submit).
- Unity Catalog volumes are mounted on the driver at /Volumes/<catalog>/<schema>/<volume>/ (FUSE:
  https://docs.databricks.com/en/volumes/volume-files.html): the task gets the real path /Volumes, this
  workspace's files bound there in a private mount namespace of its own (`unshare --mount`, root only), so runs
  of parallel tests do not see each other's /Volumes and what the task writes is at once what the Files API serves.
- `new_cluster.spark_env_vars` are exported as they are when the driver starts (ClusterSpec.spark_env_vars,
  https://docs.databricks.com/api/workspace/clusters/create), and the runtime sets DATABRICKS_RUNTIME_VERSION
  (the release, e.g. 16.4: https://docs.databricks.com/en/release-notes/runtime/index.html; databricks-sdk's
  credentials_provider.py and useragent.py read it to tell that code runs on a cluster). The process gets
  nothing else of the test's environment: a cluster is another machine (its own HOME and temporary folder here).
- runs/get: life_cycle_state PENDING (setup) → RUNNING (the task) → TERMINATING (the cluster is torn down) →
  TERMINATED with result_state SUCCESS / FAILED / TIMEDOUT / CANCELED, or INTERNAL_ERROR when a library fails to
  install, and setup/execution/cleanup_duration in ms (https://docs.databricks.com/api/workspace/jobs/getrun).
  A failed task's state says only "Workload failed, see run output for details"; its reason is runs/get-output's
  `error` (with `error_trace`), and `logs` holds the last 5 MB of stdout/stderr
  (https://docs.databricks.com/api/workspace/jobs/getrunoutput; the state messages as real runs report them:
  https://github.com/dagster-io/dagster/issues/19715, https://github.com/astronomer/astronomer-providers/issues/460).
- timeout_seconds: the run is stopped and TIMEDOUT; runs/cancel: CANCELED (user_cancelled_or_timedout).

What stays a stand-in: the runtime's own packages (torch, Lightning) are this machine's Python (the cluster's
environment is a venv on top of it), libraries are installed without their dependencies (no index is reachable),
and there is no Spark."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Callable, Optional

LOG_LIMIT = 5 * 1024 * 1024
WORKLOAD_FAILED = "Workload failed, see run output for details"
# the driver's own namespace: the workspace's /Volumes bound at the real path, then the task exec'd in it
_MOUNT = 'mkdir -p /Volumes && mount --bind "$1" /Volumes && shift && exec "$@"'


# Volumes on a cluster are a FUSE mount that takes no direct appends and no random writes ("perform the
# operations on a local disk first and then copy the results": https://docs.databricks.com/en/volumes/volume-files.html,
# limitations): the driver's Python gets the refusal the mount gives, EOPNOTSUPP, for an open under /Volumes
# in append or read-write mode (an audit hook on "open": builtins open, io, pathlib and os.open all raise it)
_VOLUMES_FUSE = '''import errno, os


def refuse_appends(event, args):
    if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path, flags = os.fsdecode(args[0]), args[2]
    if not os.path.abspath(path).startswith("/Volumes/") or not isinstance(flags, int):
        return
    if flags & os.O_APPEND or flags & os.O_ACCMODE == os.O_RDWR:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), path)
'''


def mount_namespace_problem() -> Optional[str]:
    """Why a task cannot get /Volumes in a private mount namespace here (None: it can)."""
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "unshare --mount is not permitted here (root with CAP_SYS_ADMIN is): " + proc.stderr.strip()[-200:]
    return None


def _ms() -> int:
    return int(time.time() * 1000)


class TaskRun:
    """One submitted run: its single task on a new job cluster, run as a subprocess of this machine."""

    def __init__(self, run_id: int, name: str, task: dict, timeout_seconds: int, volumes: Path, scratch: Path,
                 cluster_id: str, event: Callable[[str, str], None], runtime_env: Optional[dict] = None):
        self.run_id, self.name, self.task, self.cluster_id = run_id, name, task, cluster_id
        self.runtime_env = dict(runtime_env or {})  # the test's additions to the runtime (tests/stand_in)
        self.timeout = int(timeout_seconds or 0)
        self.volumes, self.root, self.event = volumes, scratch, event
        self.life, self.result, self.message = "PENDING", None, ""
        self.error: Optional[str] = None
        self.error_trace: Optional[str] = None
        self.start = _ms()
        self.marks: dict[str, int] = {"setup": self.start}   # setup → execution → cleanup → end
        self.proc: Optional[subprocess.Popen] = None
        self.stopped: Optional[str] = None                    # CANCELED or TIMEDOUT once asked to stop
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.log = self.root / "driver" / "logs" / "stdout"
        self.site: Optional[Path] = None                      # the cluster environment's site-packages

    # ------------------------------------------------------------------ lifecycle
    def begin(self) -> None:
        self.event(self.cluster_id, "CREATING")
        self.thread.start()

    def _run(self) -> None:
        try:
            python = self._cluster_environment()
            self.event(self.cluster_id, "RUNNING")
            if self._install_libraries() and not self.stopped:
                self._execute(python)
        except Exception as exc:  # noqa: BLE001 - the workspace's own failure: INTERNAL_ERROR, as the service says
            self._end("INTERNAL_ERROR", "FAILED", f"{type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                now = _ms()
                self.marks.setdefault("execution", now)
                self.marks.setdefault("cleanup", now)
                if self.life != "INTERNAL_ERROR":
                    self.life = "TERMINATING"
            self.event(self.cluster_id, "TERMINATING")
            with self.lock:
                self.marks["end"] = _ms()
                self.life = "INTERNAL_ERROR" if self.life == "INTERNAL_ERROR" else "TERMINATED"
                self.result = self.result or self.stopped or "FAILED"

    def _cluster_environment(self) -> Path:
        """The cluster's Python: a venv over this machine's interpreter and its packages (the runtime's)."""
        env_dir = self.root / "python"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                       capture_output=True, timeout=120)
        self.site = Path(self._site(env_dir / "bin" / "python"))
        runtime = sysconfig.get_paths()["purelib"]
        (self.site / "databricks_runtime.pth").write_text(f"import site; site.addsitedir({runtime!r})\n"
                                                          "import sys; sys.addaudithook(__import__('databricks_"
                                                          "volumes').refuse_appends)\n")
        (self.site / "databricks_volumes.py").write_text(_VOLUMES_FUSE)
        for d in ("driver/logs", "home", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        return env_dir / "bin" / "python"

    def _install_libraries(self) -> bool:
        for lib in self.task.get("libraries") or []:
            whl = lib.get("whl")
            if whl is None or not whl.startswith("/Volumes/"):
                return self._library_failed(lib, "this workspace installs wheels from Unity Catalog volumes only")
            local = self.volumes / whl[len("/Volumes/"):]
            if not local.is_file():
                return self._library_failed(lib, f"java.io.FileNotFoundException: {whl}")
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                   "--target", str(self.site), str(local)], capture_output=True, text=True,
                                  timeout=600)
            if proc.returncode != 0:
                return self._library_failed(lib, proc.stderr.strip()[-1000:])
        return True

    @staticmethod
    def _site(python: Path) -> str:
        return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, timeout=60).stdout.strip()

    def _library_failed(self, lib: dict, why: str) -> bool:
        kind, where = next(iter(lib.items()), ("library", ""))
        self._end("INTERNAL_ERROR", "FAILED", f'Library installation failed for library due to user error for {kind}: '
                                              f'"{where}". Error messages:\n{why}')
        return False

    def _command(self, python: Path) -> list[str]:
        if "spark_python_task" in self.task:
            t = self.task["spark_python_task"]
            return [str(python), t["python_file"], *(t.get("parameters") or [])]
        if "python_wheel_task" in self.task:
            t = self.task["python_wheel_task"]
            named = t.get("named_parameters") or {}
            args = list(t.get("parameters") or []) or [f"--{k}={v}" for k, v in named.items()]
            # the entry point from the package's metadata, else the package's function of that name
            call = ("import sys\nfrom importlib import import_module, metadata\n"
                    "pkg, name = sys.argv[1], sys.argv[2]\nsys.argv = [name, *sys.argv[3:]]\n"
                    "try:\n    eps = [e for e in metadata.distribution(pkg).entry_points if e.name == name]\n"
                    "except metadata.PackageNotFoundError:\n    eps = []\n"
                    "sys.exit((eps[0].load() if eps else getattr(import_module(pkg), name))())\n")
            return [str(python), "-c", call, t["package_name"], t["entry_point"], *args]
        raise ValueError("this workspace runs spark_python_task and python_wheel_task tasks only")

    def _environment(self, python: Path) -> dict[str, str]:
        cluster = self.task.get("new_cluster") or {}
        runtime = str(cluster.get("spark_version", "")).split(".x-")[0]
        return {**(cluster.get("spark_env_vars") or {}),
                "PATH": f"{python.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self.root / "home"), "TMPDIR": str(self.root / "tmp"), "LANG": "C.UTF-8",
                "DATABRICKS_RUNTIME_VERSION": runtime, **self.runtime_env}

    def _execute(self, python: Path) -> None:
        command = self._command(python)
        with self.lock:
            if self.stopped:
                return
            self.marks["execution"] = _ms()
            self.life = "RUNNING"
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                                              _MOUNT, "sh", str(self.volumes), *command],
                                             cwd=self.root / "driver", env=self._environment(python), stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        left = self.timeout - (_ms() - self.start) / 1000 if self.timeout else None  # the whole run's limit
        try:
            rc = self.proc.wait(max(left, 0.001) if left is not None else None)
        except subprocess.TimeoutExpired:
            self.stop("TIMEDOUT")
            rc = self.proc.wait()
        self.marks["cleanup"] = _ms()
        if self.stopped:
            self._end("TERMINATING", self.stopped, "")
        elif rc == 0:
            self._end("TERMINATING", "SUCCESS", "")
        else:
            lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
            self.error = lines[-1] if lines else f"the Python process exited with code {rc}"
            self.error_trace = "\n".join(lines[-50:])
            self._end("TERMINATING", "FAILED", WORKLOAD_FAILED)

    def _end(self, life: str, result: str, message: str) -> None:
        with self.lock:
            self.life, self.result, self.message = life, result, message

    def stop(self, why: str = "CANCELED") -> None:
        """runs/cancel or the run's timeout: the cluster is terminated with the task on it."""
        with self.lock:
            if self.stopped or "end" in self.marks:
                return
            self.stopped = why
            proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended meanwhile
                pass

    def close(self) -> None:
        self.stop()
        self.thread.join(60)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ the API's view
    def log_text(self) -> str:
        try:
            data = self.log.read_bytes()
        except OSError:
            return ""
        return data[-LOG_LIMIT:].decode(errors="replace")

    def describe(self) -> dict:
        """runs/get (Run, RunState, RunTask)."""
        with self.lock:
            life, result, message, marks = self.life, self.result, self.message, dict(self.marks)
        task_state = {"life_cycle_state": life, "state_message": message,
                      "user_cancelled_or_timedout": self.stopped is not None}
        if result and life in ("TERMINATED", "INTERNAL_ERROR"):
            task_state["result_state"] = result
        state = dict(task_state)
        if message == WORKLOAD_FAILED:
            state["state_message"] = (f"Task {self.task.get('task_key')} failed with message: {WORKLOAD_FAILED}. "
                                      "This caused all downstream tasks to get skipped.")

        def span(a: str, b: str) -> int:
            return max(0, marks[b] - marks[a]) if a in marks and b in marks else 0

        durations = {"queue_duration": 0, "setup_duration": span("setup", "execution"),
                     "execution_duration": span("execution", "cleanup"), "cleanup_duration": span("cleanup", "end")}
        times = {"start_time": self.start, "end_time": marks.get("end", 0)}
        task = {k: v for k, v in self.task.items() if k != "_token"}
        # a runs/submit with tasks[] is a multitask run: its own setup/execution/cleanup_duration are 0 and its
        # total is run_duration; each task's are on tasks[i] (Run.setup_duration in databricks-sdk jobs.py,
        # https://docs.databricks.com/api/workspace/jobs/getrun)
        top = {"queue_duration": 0, "setup_duration": 0, "execution_duration": 0, "cleanup_duration": 0,
               "run_duration": span("setup", "end")}
        return {"run_id": self.run_id, "run_name": self.name, "run_type": "SUBMIT_RUN", "state": state,
                **times, **top,
                "tasks": [{**task, "run_id": self.run_id + 1, "state": task_state,
                           "cluster_instance": {"cluster_id": self.cluster_id}, **times, **durations}]}

    def output(self) -> dict:
        """runs/get-output of the task's run."""
        text = self.log_text()
        run = self.describe()
        task = run.pop("tasks")[0]  # the task's run, in the Run shape metadata has
        metadata = {**run, "run_id": task["run_id"], "state": task["state"],
                    "cluster_instance": task["cluster_instance"]}
        doc = {"metadata": metadata, "logs": text,
               "logs_truncated": self.log.is_file() and self.log.stat().st_size > LOG_LIMIT}
        if self.error:
            doc.update(error=self.error, error_trace=self.error_trace)
        elif self.life == "INTERNAL_ERROR":
            doc["error"] = self.message
        return doc
