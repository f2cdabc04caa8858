"""How Vertex AI runs a CustomJob, written from its documentation for the loopback server (vertex_server.py);
nothing here comes from platforms.vertex (its local mode is the code under test, not the reference).

- The container: `containerSpec.command` replaces the image's ENTRYPOINT and `args` its CMD (the Kubernetes
  rule ContainerSpec follows: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec#ContainerSpec).
  The image is this checkout: its Dockerfile's ENTRYPOINT/CMD, its docker/train and docker/serve scripts run
  with sh, and `python` is this machine's (the venv's bin first on PATH). There is no registry to pull from.
- Environment, on every replica:
  AIP_MODEL_DIR = <baseOutputDirectory>/model/, AIP_CHECKPOINT_DIR = …/checkpoints/, AIP_TENSORBOARD_LOG_DIR =
  …/logs/ (gs:// URIs, set only when baseOutputDirectory is: CustomJobSpec.baseOutputDirectory,
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec);
  CLOUD_ML_JOB_ID (the job's ID), CLUSTER_SPEC and TF_CONFIG (the cluster: every pool's replicas as host:port,
  this replica's pool and index; https://cloud.google.com/vertex-ai/docs/training/distributed-training#cluster-variables;
  the names as the SDK reads them: google/cloud/aiplatform/training_utils/environment_variables.py);
  and the worker pool's own `containerSpec.env`.
- Cloud Storage FUSE: Vertex mounts every bucket the job can read at /gcs/BUCKET/ (writes become objects;
  https://cloud.google.com/vertex-ai/docs/training/cloud-storage-file-system). This machine cannot mount
  /gcs, so the mount is a folder of the job's, filled from the Cloud Storage emulator before the container
  starts (every bucket a gs:// URI of the job names) and copied back after every replica has exited (new and
  changed files): objects written during the job appear at its end, not as each file closes. The trainer is
  told where the folder is by PLATBENCH_GCS_ROOT, its documented stand-in for /gcs (trainer/environment.py) —
  the one variable here that Vertex does not set.
- Times and states (JobState: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState): QUEUED
  when created, PENDING while the mount is filled (provisioning), RUNNING from the first container start
  (startTime), then SUCCEEDED / FAILED (a replica exited non-zero) / CANCELLED (customJobs.cancel: error code
  1, https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs/cancel); endTime
  when a terminal state is entered. A job held (short of quota) stays QUEUED until cancelled.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
STOP_GRACE_S = 30  # SIGTERM, then SIGKILL (a preempted or cancelled VM's shutdown grace)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def image_exec_form(instruction: str) -> list[str]:
    """The image's ENTRYPOINT or CMD (exec form) as the Dockerfile declares it, [] when absent."""
    lines = [line for line in (REPO / "Dockerfile").read_text().splitlines()
             if re.match(rf"^{instruction}\s+\[", line)]
    return json.loads(lines[-1].split(None, 1)[1]) if lines else []


def container_runs(spec: dict) -> list[str]:
    """What a container spec (REST JSON) starts: `command` replaces ENTRYPOINT, `args` replaces CMD; a
    command without args runs without the image's CMD."""
    command = spec.get("command") or image_exec_form("ENTRYPOINT")
    if spec.get("args"):
        return [*command, *spec["args"]]
    return list(command) if spec.get("command") else [*command, *image_exec_form("CMD")]


def executable(argv: list[str]) -> list[str]:
    """The image's executables on this machine: docker/<name> with sh, `python` the venv's."""
    if argv and (REPO / "docker" / argv[0]).is_file():
        return ["sh", str(REPO / "docker" / argv[0]), *argv[1:]]
    if argv and argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    raise FileNotFoundError(f"exec: {argv[0] if argv else '(nothing)'!r}: executable file not found in $PATH")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gcs_uris(doc) -> set[str]:
    return set(re.findall(r"gs://[a-z0-9][a-z0-9._\-]*[a-z0-9]", json.dumps(doc)))


class JobRun:
    """One CustomJob: its REST JSON (`job`, as received and parsed), its state and times, its replicas."""

    def __init__(self, name: str, job: dict, root: Path, hold: bool = False, runtime_env: Optional[dict] = None):
        self.name, self.job, self.root, self.hold = name, job, root, hold
        self.runtime_env = dict(runtime_env or {})  # the test's additions to the image's runtime (the stand-in)
        self.id = name.rsplit("/", 1)[1]
        self.state = "JOB_STATE_QUEUED"
        self.created = self.updated = time.time()
        self.started: Optional[float] = None
        self.ended: Optional[float] = None
        self.error: Optional[dict] = None
        self.procs: list[subprocess.Popen] = []
        self.replicas: list[str] = []
        self.cancelling = threading.Event()
        self.lock = threading.Lock()
        self.mount = root / "gcs"
        self.thread = threading.Thread(target=self._life, daemon=True, name=f"customjob-{self.id}")

    # ------------------------------------------------------------------ the resource
    def describe(self) -> dict:
        with self.lock:
            d = {**self.job, "name": self.name, "state": self.state, "createTime": rfc3339(self.created),
                 "updateTime": rfc3339(self.updated)}
            if self.started:
                d["startTime"] = rfc3339(self.started)
            if self.ended:
                d["endTime"] = rfc3339(self.ended)
            if self.error:
                d["error"] = self.error
            return d

    def _enter(self, state: str, error: Optional[dict] = None) -> None:
        with self.lock:
            now = time.time()
            self.state, self.updated = state, now
            if state == "JOB_STATE_RUNNING" and self.started is None:
                self.started = now
            if state in TERMINAL:
                self.ended = now
                self.error = error

    def cancel(self) -> None:
        """customJobs.cancel: SIGTERM every replica, SIGKILL after the grace; state CANCELLED at the end."""
        with self.lock:
            self.state, self.updated = "JOB_STATE_CANCELLING", time.time()
        self.cancelling.set()
        for proc in self.procs:
            _signal(proc, signal.SIGTERM)

    # ------------------------------------------------------------------ its life
    def start(self) -> None:
        self.thread.start()

    def _life(self) -> None:
        while self.hold and not self.cancelling.is_set():
            self.cancelling.wait(0.05)
        if self.cancelling.is_set():
            return self._enter("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
        self._enter("JOB_STATE_PENDING")
        try:
            from google.cloud import storage

            client = storage.Client(project="test")
            before = self._mount_buckets(client)
            argv_env = self._replicas()
        except Exception as exc:  # noqa: BLE001 - the job fails with the reason, as the service reports it
            return self._enter("JOB_STATE_FAILED", {"code": 3, "message": str(exc)})
        if self.cancelling.is_set():
            return self._enter("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
        self._enter("JOB_STATE_RUNNING")
        for replica, (argv, env) in zip(self.replicas, argv_env):
            log = (self.root / f"{replica}.log").open("ab")
            self.procs.append(subprocess.Popen(argv, env=env, cwd=self.root / replica, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        if self.cancelling.is_set():  # cancelled while the containers were starting
            for proc in self.procs:
                _signal(proc, signal.SIGTERM)
        timeout = float(str(self.job["jobSpec"].get("scheduling", {}).get("timeout", "604800s")).rstrip("s"))
        deadline, timed_out = time.time() + timeout, False
        for proc in self.procs:
            while proc.poll() is None:
                if self.cancelling.is_set() or time.time() > deadline:
                    timed_out = timed_out or not self.cancelling.is_set()
                    self._stop(proc)
                    break
                time.sleep(0.05)
        self._sync_back(client, before)
        codes = [p.returncode for p in self.procs]
        if self.cancelling.is_set():
            return self._enter("JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
        if timed_out:
            return self._enter("JOB_STATE_FAILED", {"code": 4, "message": f"Job ran longer than its timeout {timeout:.0f}s"})
        bad = [(r, c) for r, c in zip(self.replicas, codes) if c != 0]
        if bad:
            replica, code = bad[0]
            status = 128 - code if code < 0 else code  # a container killed by signal N exits 128 + N
            return self._enter("JOB_STATE_FAILED", {"code": 3, "message": (
                f"The replica {replica} exited with a non-zero status of {status}.")})
        self._enter("JOB_STATE_SUCCEEDED")

    def _stop(self, proc: subprocess.Popen) -> None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()

    def _replicas(self) -> list[tuple[list[str], dict]]:
        spec = self.job["jobSpec"]
        pools = spec["workerPoolSpecs"]
        hosts = {f"workerpool{i}": [f"127.0.0.1:{_free_port()}" for _ in range(int(p.get("replicaCount") or 1))]
                 for i, p in enumerate(pools) if p}
        base = (spec.get("baseOutputDirectory") or {}).get("outputUriPrefix", "").rstrip("/")
        out = []
        for i, pool in enumerate(pools):
            if not pool:
                continue
            kind = f"workerpool{i}"
            for index in range(int(pool.get("replicaCount") or 1)):
                replica = f"{kind}-{index}"
                home = self.root / replica
                (home / "tmp").mkdir(parents=True, exist_ok=True)
                cluster = {"cluster": hosts, "environment": "cloud", "task": {"type": kind, "index": index},
                           "job": json.dumps(spec)}
                tf_cluster = {"chief": hosts.get("workerpool0", []), "worker": hosts.get("workerpool1", [])}
                env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
                       "TMPDIR": str(home / "tmp"), "PYTHONUNBUFFERED": "1",
                       "CLOUD_ML_JOB_ID": self.id, "CLUSTER_SPEC": json.dumps(cluster),
                       "TF_CONFIG": json.dumps({"cluster": tf_cluster, "environment": "cloud", "task": {
                           "type": "chief" if i == 0 else "worker", "index": index}}),
                       "PLATBENCH_GCS_ROOT": str(self.mount)}
                if base:
                    env.update(AIP_MODEL_DIR=f"{base}/model/", AIP_CHECKPOINT_DIR=f"{base}/checkpoints/",
                               AIP_TENSORBOARD_LOG_DIR=f"{base}/logs/")
                for var in ("PLATBENCH_CACHE", "LANG"):  # this machine's caches, not the job's contract
                    if os.environ.get(var):
                        env[var] = os.environ[var]
                container = pool["containerSpec"]
                env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
                env.update(self.runtime_env)
                self.replicas.append(replica)
                out.append((executable(container_runs(container)), env))
        return out

    # ------------------------------------------------------------------ the /gcs stand-in
    def _mount_buckets(self, client) -> dict[Path, tuple[int, int]]:
        for uri in sorted(_gcs_uris(self.job)):
            bucket = uri[len("gs://"):]
            for blob in client.list_blobs(bucket):
                if blob.name.endswith("/"):
                    continue
                path = self.mount / bucket / blob.name
                path.parent.mkdir(parents=True, exist_ok=True)
                blob.download_to_filename(str(path))
            (self.mount / bucket).mkdir(parents=True, exist_ok=True)
        return _snapshot(self.mount)

    def _sync_back(self, client, before: dict[Path, tuple[int, int]]) -> None:
        for path, stamp in _snapshot(self.mount).items():
            if before.get(path) != stamp:
                bucket, _, key = str(path.relative_to(self.mount)).partition("/")
                client.bucket(bucket).blob(key).upload_from_filename(str(path))


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _signal(proc: subprocess.Popen, sig) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
