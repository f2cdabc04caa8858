"""Azure ML's side of a command job, for the loopback control plane (azureml_server.py): what the service does
with a created command job, written from Azure ML's documentation and nothing of platbench. It imports nothing
from platforms/: platbench's own readings of the same contract (platforms/azureml/emulator.py for local mode,
trainer/environment.py inside the job) are what it checks, so they must not share code with it.

What a command job gets (the CommandJob REST body, https://learn.microsoft.com/rest/api/azureml/jobs/create-or-update):
- inputs and outputs at `azureml://datastores/NAME/paths/PATH`, or the long form naming the workspace
  (`azureml://subscriptions/S/resourcegroups/RG/workspaces/WS/datastores/NAME/paths/PATH`); NAME is a datastore
  of this workspace. Inputs ro_mount / download: the data is on the node before the command starts; direct:
  the command gets the URI itself. Outputs rw_mount: what the path already holds is visible and what the job
  writes ends up at the path; upload: written to the path when the job ends.
  https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2 ("Paths", "Modes")
- the command with `${{inputs.NAME}}` / `${{outputs.NAME}}` replaced by those paths (a literal input by its
  value); a name the job does not define is a user error at submission. It runs in the container, under a
  shell. environment_variables are set in the container. limits.timeout: the job is canceled after it.
  https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
- distribution pytorch: Azure ML starts process_count_per_instance processes on each of the instance_count
  nodes itself and sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and NODE_RANK on every node, RANK and LOCAL_RANK
  in every process. Without a distribution the command runs once per node.
  https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu#pytorch
- statuses NotStarted → Queued → Preparing → Running → Finalizing → Completed | Failed, CancelRequested →
  Canceled: https://learn.microsoft.com/rest/api/azureml/jobs/get#jobstatus
- AZUREML_RUN_ID (the job's name) and AZUREML_ARM_SUBSCRIPTION / _RESOURCEGROUP / _WORKSPACE_NAME /
  _PROJECT_NAME are on no reference page; they are set because Microsoft's own run-context code (azureml-core's
  Run.get_context) reads them in every job container.

Stand-ins, said plainly: a node is a folder on this machine with its own working, input, output and temporary
folders (nothing is shared between nodes but storage), its processes are local subprocesses (MASTER_ADDR is
127.0.0.1, MASTER_PORT a free port); a mount is a download before the command and an upload after it; the
environment's image is the platbench image's own entry scripts (docker/train, docker/serve) on PATH with this
interpreter; the container's environment is PATH, HOME, LANG and PYTHON* of this process plus what Azure ML
and the job set, none of the caller's Azure settings."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

IMAGE_BIN = Path(__file__).resolve().parents[2] / "docker"  # the image's `train` and `serve` (no ENTRYPOINT)
DATASTORE_URI = re.compile(r"^azureml://(?:subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/workspaces/"
                           r"(?P<ws>[^/]+)/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
INPUT_MODES = {"ReadOnlyMount", "Download", "Direct"}   # what a uri_folder / uri_file input is given here
OUTPUT_MODES = {"ReadWriteMount", "Upload"}
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
STOP_GRACE_SECONDS = 30


class JobRefused(Exception):
    """What the service answers 400 (status 400) or 404 to at submission."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso_seconds(duration: Optional[str]) -> Optional[float]:
    """An ISO 8601 duration (limits.timeout, e.g. PT4H) in seconds; a malformed one is a user error."""
    if duration is None:
        return None
    import isodate

    try:
        return isodate.parse_duration(duration).total_seconds()
    except (isodate.ISO8601Error, ValueError):
        raise JobRefused(400, f"limits.timeout {duration!r} is not an ISO 8601 duration") from None


class Datastores:
    """The workspace's Blob datastores, reached in Azurite: `lookup(name)` gives (accountName, containerName)."""

    def __init__(self, workspace: tuple[str, str, str], lookup: Callable[[str], Optional[tuple[str, str]]],
                 connection_string: str):
        self.workspace, self.lookup, self.connection_string = workspace, lookup, connection_string

    def resolve(self, uri: str, where: str) -> tuple[str, str, str]:
        """(account, container, path) of a datastore URI of this workspace."""
        m = DATASTORE_URI.match(uri or "")
        if not m:
            raise JobRefused(400, f"{where}: {uri!r} is not an azureml://datastores/NAME/paths/PATH URI")
        if m.group("ws") and tuple(x.lower() for x in (m.group("sub"), m.group("rg"), m.group("ws"))) != \
                tuple(x.lower() for x in self.workspace):
            raise JobRefused(400, f"{where}: {uri!r} names another workspace's datastore")
        found = self.lookup(m.group("datastore"))
        if found is None:
            raise JobRefused(404, f"{where}: datastore {m.group('datastore')!r} was not found in the workspace")
        return found[0], found[1], m.group("path")

    def container(self, account: str, container: str):
        """The container, when the datastore's account is the one reachable here (Azurite's); else a job
        that uses it fails to mount, as one whose identity cannot reach the account does."""
        from azure.storage.blob import ContainerClient

        conn = dict(p.split("=", 1) for p in self.connection_string.strip(";").split(";"))
        if conn.get("AccountName") != account:
            raise RuntimeError(f"storage account {account!r} is not reachable from the job")
        return ContainerClient.from_connection_string(self.connection_string, container)


class Binding:
    """One input or output of the job: where its data lives and what the command gets for it."""

    def __init__(self, kind: str, name: str, doc: dict, datastores: Datastores):
        self.kind, self.name, self.doc = kind, name, doc
        where = f"{kind}.{name}"
        self.type = doc.get("jobInputType" if kind == "inputs" else "jobOutputType")
        self.mode = doc.get("mode") or ("ReadOnlyMount" if kind == "inputs" else "ReadWriteMount")
        self.literal = doc.get("value") if self.type == "literal" else None
        if self.type == "literal":
            return
        if self.type not in ("uri_folder", "uri_file"):
            raise JobRefused(400, f"{where}: type {self.type!r} is not run by this stand-in (uri_folder, uri_file)")
        if self.mode not in (INPUT_MODES if kind == "inputs" else OUTPUT_MODES):
            raise JobRefused(400, f"{where}: mode {self.mode!r} is not one for a {self.type} {kind[:-1]}")
        self.uri = doc.get("uri")
        self.account, self.container_name, self.path = datastores.resolve(self.uri, where)
        self.datastores = datastores
        self.fetched: dict[Path, tuple[int, int]] = {}  # file → (size, mtime) as it came down

    def local(self, node: Path) -> Path:
        return node / ("inputs" if self.kind == "inputs" else "outputs") / self.name

    def argument(self, node: Path) -> str:
        """What replaces ${{inputs.NAME}} / ${{outputs.NAME}} on that node."""
        if self.type == "literal":
            return str(self.literal)
        if self.mode == "Direct":
            return self.uri
        folder = self.local(node)
        return str(folder / Path(self.path).name) if self.type == "uri_file" else str(folder)

    def _prefix(self) -> str:
        return self.path if self.type == "uri_file" or not self.path or self.path.endswith("/") else self.path + "/"

    def fetch(self, node: Path) -> int:
        """Before the command: an input's data, an rw_mount output's current content. Bytes fetched."""
        if self.type == "literal" or self.mode == "Direct" or (self.kind == "outputs" and self.mode == "Upload"):
            self.local(node).mkdir(parents=True, exist_ok=True)
            return 0
        client, got = self.datastores.container(self.account, self.container_name), 0
        prefix, folder = self._prefix(), self.local(node)
        folder.mkdir(parents=True, exist_ok=True)
        for blob in client.list_blobs(name_starts_with=prefix):
            rel = Path(blob.name).name if self.type == "uri_file" else blob.name[len(prefix):]
            if self.type == "uri_file" and blob.name != prefix:
                continue
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as fh:
                got += client.download_blob(blob.name).readinto(fh)
            self.fetched[dest] = (dest.stat().st_size, dest.stat().st_mtime_ns)
        if self.kind == "inputs" and self.type == "uri_folder" and not any(folder.iterdir()):
            raise RuntimeError(f"input {self.name}: nothing at {self.uri}")
        return got

    def store(self, node: Path) -> int:
        """After the command: what the job wrote into an output's folder, written to its path (a mount writes
        only what was written: a file that came down and was left alone is not sent back, so one node's stale
        copy never overwrites what another node wrote). Bytes sent."""
        if self.kind != "outputs" or self.type == "literal" or self.mode == "Direct":
            return 0
        client, sent, folder = self.datastores.container(self.account, self.container_name), 0, self.local(node)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if self.fetched.get(path) == (path.stat().st_size, path.stat().st_mtime_ns):
                continue
            key = self.path if self.type == "uri_file" else self._prefix() + path.relative_to(folder).as_posix()
            with path.open("rb") as fh:
                client.upload_blob(key, fh, overwrite=True)
            sent += path.stat().st_size
        return sent


class CommandJob:
    """One submitted command job, run as Azure ML runs it (see the module's docstring). `status` is its JobStatus;
    `times` when each status was entered; `processes` every process started, node by node."""

    def __init__(self, name: str, props: dict, datastores: Datastores, experiment: str = "Default",
                 runtime_env: Optional[dict] = None):
        self.name, self.props, self.datastores = name, props, datastores
        self.runtime_env = dict(runtime_env or {})  # the test's additions to the image's runtime (the stand-in)
        self.experiment = experiment
        self.command = props.get("command") or ""
        self.bindings = {(kind, k): Binding(kind, k, v or {}, datastores)
                         for kind in ("inputs", "outputs") for k, v in (props.get(kind) or {}).items()}
        for m in BINDING.finditer(self.command):
            if (m.group(1), m.group(2)) not in self.bindings:
                raise JobRefused(400, f"the command refers to {m.group(0)}, which the job does not define")
        resources = props.get("resources") or {}
        self.nodes = int(resources.get("instanceCount") or 1)
        dist = props.get("distribution") or {}
        if dist and dist.get("distributionType") != "PyTorch":
            raise JobRefused(400, f"distribution {dist.get('distributionType')!r} is not run by this stand-in")
        self.distributed = bool(dist)
        self.per_node = int(dist.get("processCountPerInstance") or 1) if dist else 1
        self.timeout = iso_seconds((props.get("limits") or {}).get("timeout"))
        self.root = Path(tempfile.mkdtemp(prefix=f"azureml-job-{name}-"))
        self.status, self.times, self.error = "NotStarted", {"NotStarted": now()}, ""
        self.processes: list[subprocess.Popen] = []
        self.figures = {"download_bytes": 0, "upload_bytes": 0}
        self.hold = threading.Event()  # set: the job may leave Queued (a test holds it, as a quota would)
        self.hold.set()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.done = threading.Event()

    # -------------------------------------------------------------- the job's life
    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _enter(self, status: str) -> None:
        with self._lock:
            if self.status in ("Completed", "Failed", "Canceled"):
                return
            self.status = status
            self.times[status] = now()

    def _run(self) -> None:
        try:
            self._enter("Queued")
            while not self.hold.wait(0.1):
                if self._cancel.is_set():
                    break
            if self._cancel.is_set():
                return self._end("Canceled")
            self._enter("Preparing")
            nodes = [self.root / f"node-{n}" for n in range(self.nodes)]
            for node in nodes:
                for b in self.bindings.values():
                    self.figures["download_bytes"] += b.fetch(node)
            if self._cancel.is_set():
                return self._end("Canceled")
            self._enter("Running")
            self._start_processes(nodes)
            codes = self._wait_processes()
            self._enter("Finalizing")
            for node in nodes:
                for b in self.bindings.values():
                    self.figures["upload_bytes"] += b.store(node)
            if self._cancel.is_set():
                return self._end("Canceled")
            bad = [(i, c) for i, c in enumerate(codes) if c != 0]
            if bad:
                i, code = bad[0]
                self.error = f"process {i} exited with code {code}: " + self._log_tail(i)
                return self._end("Failed")
            self._end("Completed")
        except Exception as exc:  # noqa: BLE001 - the job fails, as the service reports it
            self.error = f"{type(exc).__name__}: {exc}"
            self._end("Failed")

    def _end(self, status: str) -> None:
        self._enter(status)
        self.done.set()

    def _environment(self, node: Path, node_rank: int, local_rank: int, master_port: int) -> dict:
        sub, rg, ws = self.datastores.workspace
        env = {k: v for k, v in os.environ.items() if k in KEPT_ENV or k.startswith("PYTHON")}
        env["PATH"] = os.pathsep.join([str(IMAGE_BIN), str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update({k: str(v) for k, v in (self.props.get("environmentVariables") or {}).items()})
        env.update({"AZUREML_RUN_ID": self.name, "AZUREML_ARM_SUBSCRIPTION": sub, "AZUREML_ARM_RESOURCEGROUP": rg,
                    "AZUREML_ARM_WORKSPACE_NAME": ws, "AZUREML_ARM_PROJECT_NAME": self.experiment,
                    "TMPDIR": str(node / "tmp")})
        env.update(self.runtime_env)
        if self.distributed:
            env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port),
                        "WORLD_SIZE": str(self.nodes * self.per_node), "NODE_RANK": str(node_rank),
                        "RANK": str(node_rank * self.per_node + local_rank), "LOCAL_RANK": str(local_rank)})
        return env

    def _start_processes(self, nodes: list[Path]) -> None:
        port = free_port()
        for node_rank, node in enumerate(nodes):
            command = BINDING.sub(lambda m: self.bindings[(m.group(1), m.group(2))].argument(node), self.command)
            (node / "wd").mkdir(parents=True, exist_ok=True)
            (node / "tmp").mkdir(parents=True, exist_ok=True)
            for local_rank in range(self.per_node):
                log = (node / f"std_log_process_{local_rank}.txt").open("w")
                with self._lock:
                    if self._cancel.is_set():
                        return
                    self.processes.append(subprocess.Popen(
                        ["/bin/sh", "-c", command], cwd=node / "wd", stdout=log, stderr=subprocess.STDOUT,
                        env=self._environment(node, node_rank, local_rank, port), start_new_session=True))
                log.close()

    def _wait_processes(self) -> list[Optional[int]]:
        deadline = None if self.timeout is None else self.times["Running"] + dt.timedelta(seconds=self.timeout)
        while any(p.poll() is None for p in self.processes):
            if deadline is not None and now() > deadline and not self._cancel.is_set():
                self.error = f"the job ran past limits.timeout ({self.timeout:g} s)"
                self.cancel()
            time.sleep(0.2)
        return [p.returncode for p in self.processes]

    def _log_tail(self, index: int) -> str:
        logs = sorted(self.root.glob("node-*/std_log_process_*.txt"))
        return logs[index].read_text()[-400:] if index < len(logs) else ""

    # -------------------------------------------------------------- cancel
    def cancel(self) -> None:
        """CancelRequested: SIGTERM to every process, SIGKILL after a grace period; outputs still written."""
        with self._lock:
            if self.status in ("Completed", "Failed", "Canceled") or self._cancel.is_set():
                return
            self._cancel.set()
            procs = list(self.processes)
        self._enter("CancelRequested")
        for p in procs:
            _signal(p, signal.SIGTERM)

        def reap():
            for p in procs:
                try:
                    p.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    _signal(p, signal.SIGKILL)

        threading.Thread(target=reap, daemon=True).start()

    def close(self) -> None:
        self.cancel()
        self.done.wait(STOP_GRACE_SECONDS + 10)
        shutil.rmtree(self.root, ignore_errors=True)


def _signal(proc: subprocess.Popen, sig) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
