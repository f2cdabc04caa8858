"""A loopback Apolo platform for the tests: an aiohttp server on 127.0.0.1 answering the API apolo-sdk calls
(GET /config; POST /jobs?from_preset, GET /jobs/{id}, DELETE /jobs/{id}; the monitoring log stream
/jobs/{id}/log_ws; storage GETFILESTATUS / LISTSTATUS / MKDIRS / CREATE / WRITE / OPEN / DELETE / RENAME;
a job's authenticated HTTP ingress). The real apolo-sdk is pointed at it through its own config directory
(Factory.login_with_token against this URL), as the SDK's own tests point it at aiohttp test servers.

Request bodies are checked the way the SDK builds them (apolo_sdk._jobs._job_to_api / _container_to_api,
_storage) and refused where the platform would refuse: no or a wrong token (401), an unknown cluster /
organization / project (403), an unknown preset, a volume whose storage path does not exist, a duplicate
job name, a file created under a missing folder (400).

A started job runs as a local subprocess, the image's runtime stood in for: its command's first word is one
of the image's executables (docker/train, docker/serve, run with sh and this venv's python on PATH); each
volume is the storage folder itself (rw) or a read-only copy of it (ro), with the container path replaced by
that folder in the command and env (a bind mount, by substitution); `runtime_env` is added to every job's
environment (the tests put the stand-in trainer, tests/stand_in, into the image's runtime with it); an HTTP port is published on a free host
port (the command's `--port N` rewritten, as `docker run -p` maps N); its /tmp and HOME are its own. Status
history: pending (Creating → Scheduling → ContainerCreating) → running → succeeded / failed / cancelled;
restart_policy on-failure restarts a failed container (restarts counted). Nothing here is platbench code."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pytest
from _faults import APOLO, RESET, Faults, route
from aiohttp import web
from stand_in import stand_in  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
IDENTITY = "https://platform.neuromation.io/user"  # the claim apolo_sdk reads the user name from
JOB_KEYS = {"pass_config", "project_name", "name", "preset_name", "tags", "description", "schedule_timeout",
            "restart_policy", "max_run_time_minutes", "wait_for_jobs_quota", "privileged", "org_name", "priority",
            "energy_schedule_name", "cluster_name", "image", "entrypoint", "command", "working_dir", "http", "env",
            "volumes", "secret_env", "secret_volumes", "disk_volumes", "tty", "resources"}
# A job's image is REGISTRY/NAME:TAG with no digest: apolo-sdk's parser (_parsing_utils._split_image_name) refuses
# NAME@sha256:… as "invalid image name" before any request, and the job API is only reached through it.
IMAGE_NAME_TAG = re.compile(r"[^\s@:/]+(?::\d+)?/(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
                            r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
PRESETS = {
    "cpu-small": {"credits_per_hour": "1.5", "cpu": 2.0, "memory": 4 * 2**30},
    "gpu-small": {"credits_per_hour": "10", "cpu": 7.0, "memory": 30 * 2**30,
                  "nvidia_gpu": {"count": 1, "model": "nvidia-tesla-t4"}},
    "gpu-k80": {"credits_per_hour": "2", "cpu": 4.0, "memory": 50 * 2**30,
                "nvidia_gpu": {"count": 1, "model": "nvidia-tesla-k80"}},
    "gpu-small-p": {"credits_per_hour": "3", "cpu": 7.0, "memory": 30 * 2**30, "preemptible_node": True,
                    "nvidia_gpu": {"count": 1, "model": "nvidia-tesla-t4"}},
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job:
    def __init__(self, server: "ApoloServer", body: dict, owner: str):
        self.server, self.body, self.owner = server, body, owner
        self.id = f"job-{uuid.uuid4()}"
        self.statuses: list[dict] = []
        self.created = _now()
        self.started: Optional[str] = None
        self.finished: Optional[str] = None
        self.exit_code: Optional[int] = None
        self.restarts = 0
        self.run_seconds = 0.0
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.killed = False
        self.dir = server.root / "jobs" / self.id
        self.dir.mkdir(parents=True)
        self.log = self.dir / "log"
        self.log.write_bytes(b"")
        self.host_port: Optional[int] = None
        self.enter("pending", "Creating")

    @property
    def status(self) -> str:
        return self.statuses[-1]["status"]

    @property
    def finished_(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def enter(self, status: str, reason: str = "", description: str = "", exit_code=None) -> None:
        item = {"status": status, "transition_time": _now(), "reason": reason, "description": description}
        if exit_code is not None:
            item["exit_code"] = exit_code
        self.statuses.append(item)
        if status == "running" and self.started is None:
            self.started = item["transition_time"]
        if status in ("succeeded", "failed", "cancelled"):
            self.finished = item["transition_time"]

    def describe(self) -> dict:
        b = self.body
        preset = self.server.presets[b["preset_name"]]
        rate = float(preset["credits_per_hour"])
        last = self.statuses[-1]
        resources = {"cpu": preset["cpu"], "memory": preset["memory"], "shm": False}
        if preset.get("nvidia_gpu"):
            resources.update(nvidia_gpu=preset["nvidia_gpu"]["count"], nvidia_gpu_model=preset["nvidia_gpu"]["model"])
        container = {k: b[k] for k in ("image", "command", "env", "volumes", "http", "entrypoint", "working_dir")
                     if k in b}
        container["resources"] = resources
        d = {"id": self.id, "owner": self.owner, "cluster_name": b["cluster_name"], "org_name": b.get("org_name"),
             "project_name": b["project_name"], "namespace": "", "status": last["status"],
             "history": {"status": last["status"], "reason": last["reason"], "description": last["description"],
                         "created_at": self.created, "started_at": self.started, "finished_at": self.finished,
                         "run_time_seconds": int(self.run_seconds), "exit_code": self.exit_code,
                         "restarts": self.restarts},
             "statuses": self.statuses, "container": container, "scheduler_enabled": False,
             "pass_config": b.get("pass_config", False), "uri": f"job://{b['cluster_name']}/{b.get('org_name')}/"
             f"{b['project_name']}/{self.id}", "total_price_credits": str(round(self.run_seconds * rate / 3600, 6)),
             "price_credits_per_hour": str(rate), "preset_name": b["preset_name"],
             "preemptible_node": preset.get("preemptible_node", False),
             "restart_policy": b.get("restart_policy", "never"), "tags": b.get("tags", [])}
        for key in ("name", "description", "max_run_time_minutes", "schedule_timeout"):
            if key in b:
                d[key] = b[key]
        if "http" in b and self.status == "running":
            d["http_url"] = f"{self.server.url}/ingress/{self.id}"
        return d

    # -------------------------------------------------------------- the container
    def _argv_env(self) -> tuple[list[str], dict]:
        b = self.body
        subst: list[tuple[str, str]] = []
        for i, v in enumerate(b.get("volumes", [])):
            src = self.server.storage_path(v["src_storage_uri"].split("://", 1)[1].split("/", 1)[1])
            if v.get("read_only", True):
                local = self.dir / f"ro{i}"
                if not local.exists():
                    shutil.copytree(src, local)
                    for p in [local, *local.rglob("*")]:
                        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            else:
                local = src
            subst.append((v["dst_path"].rstrip("/"), str(local)))
        subst.sort(key=lambda kv: -len(kv[0]))

        def mount(text: str) -> str:
            for dst, local in subst:
                text = re.sub(re.escape(dst) + r"(?=/|$)", lambda _m: local, text)
            return text

        words = shlex.split(b.get("command") or "train")
        exe = REPO / "docker" / words[0]
        args = [mount(a) for a in words[1:]]
        if "http" in b and "--port" in args:  # publish the container port on a free host port
            self.host_port = self.host_port or _free_port()
            args[args.index("--port") + 1] = str(self.host_port)
        home = self.dir / "home"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home / "tmp"),
               "PYTHONUNBUFFERED": "1", "PLATBENCH_SERVE_HOST": "127.0.0.1", "PLATBENCH_SERVE_THREADS": "1",
               **{k: mount(v) for k, v in b.get("env", {}).items()}}
        for var in ("PLATBENCH_CACHE", "LANG"):
            if os.environ.get(var):
                env[var] = os.environ[var]
        env.update(self.server.runtime_env)
        return ["sh", str(exe), *args], env

    async def run(self) -> None:
        for reason in ("Scheduling", "ContainerCreating"):
            await asyncio.sleep(0.05)
            if self.killed:
                return
            self.enter("pending", reason)
        while True:
            argv, env = self._argv_env()
            with self.log.open("ab") as log:
                self.proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=self.dir, stdout=log,
                                                                 stderr=asyncio.subprocess.STDOUT,
                                                                 start_new_session=True)
            self.enter("running")
            t0 = time.monotonic()
            rc = await self.proc.wait()
            rc = 128 - rc if rc < 0 else rc  # a container killed by signal N exits 128 + N
            self.run_seconds += time.monotonic() - t0
            if self.killed:
                self.exit_code = rc
                self.enter("cancelled", "UserRequested", exit_code=rc)
                return
            if rc != 0 and self.body.get("restart_policy") in ("on-failure", "always") and self.restarts < 3:
                self.restarts += 1
                self.enter("pending", "Restarting")
                continue
            self.exit_code = rc
            self.enter("succeeded" if rc == 0 else "failed", "" if rc == 0 else "Error", exit_code=rc)
            return

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class ApoloServer:
    def __init__(self, root: Path, token: str = "", user: str = "alice", cluster: str = "pb-cluster",
                 org: str = "pb-org", projects: tuple = ("pb-project",), runtime_env: Optional[dict] = None):
        from jose import jwt

        self.root, self.user, self.cluster, self.org, self.projects = Path(root), user, cluster, org, projects
        self.runtime_env = dict(runtime_env or {})
        self.token = token or jwt.encode({IDENTITY: user}, "loopback")
        self.presets = dict(PRESETS)
        self.jobs: dict[str, Job] = {}
        self.requests: list[tuple[str, str, object]] = []   # (method, path, JSON body) of API calls
        self.killed: list[str] = []
        self.faults = Faults()   # on (method, API path): fail()
        self.ingress_calls = 0   # requests that reached a job's port through the ingress
        # the cluster registry: "ORG/PROJECT/NAME:TAG" -> the manifest's digest (`apolo image push`)
        self.images = {f"{org}/{projects[0]}/platbench:1": "sha256:" + hashlib.sha256(b"platbench:1").hexdigest()}
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self.port = _free_port()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the loopback Apolo server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def storage_path(self, rel: str) -> Path:
        parts = [p for p in rel.strip("/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise web.HTTPBadRequest(text=json.dumps({"error": "bad path"}), content_type="application/json")
        return self.root.joinpath("storage", *parts)

    def fail(self, method: str, pattern: str, action: str, times: int) -> None:
        """The next `times` requests of `method` on an /api/v1 path matching `pattern` fail: "503", "502", "429"
        as the platform answers errors ({"error": message}) or "reset" (the connection closed without an answer)
        (tests/_faults.py)."""
        self.faults.add(route(method, pattern), action, times)

    @web.middleware
    async def _faulty(self, request: web.Request, handler):
        fault = self.faults.take(request.method, request.path)
        if fault == RESET:
            request.transport.close()
            raise ConnectionResetError("reset by the test")
        if fault:
            shape = APOLO[fault]
            return web.json_response(shape.body, status=shape.status, headers=shape.headers)
        return await handler(request)

    # -------------------------------------------------------------- lifecycle
    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=64 * 2**20, middlewares=[self._faulty])
        r = app.router
        r.add_get("/api/v1/config", self.config)
        r.add_post("/api/v1/jobs", self.start_job)
        r.add_get("/api/v1/jobs/{id}/log_ws", self.log_ws)
        r.add_get("/api/v1/jobs/{id}", self.job_status)
        r.add_delete("/api/v1/jobs/{id}", self.kill_job)
        r.add_route("*", "/api/v1/storage/{path:.*}", self.storage)
        r.add_route("*", "/ingress/{id}/{tail:.*}", self.ingress)
        r.add_route("*", "/v2/{name:.*}/manifests/{ref}", self.manifest)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop():
            for job in self.jobs.values():
                job.killed = True
                job.signal(signal.SIGKILL)
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def preempt(self, job_id: str) -> None:
        """The node under the job is reclaimed: the container gets SIGTERM (as Kubernetes stops a pod)."""
        self.loop.call_soon_threadsafe(self.jobs[job_id].signal, signal.SIGTERM)

    def active(self) -> list[str]:
        return [j.id for j in self.jobs.values() if not j.finished_]

    # -------------------------------------------------------------- helpers
    def _auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Not authorized"}), content_type="application/json")

    @staticmethod
    def _bad(message: str, status=web.HTTPBadRequest, **extra):
        return status(text=json.dumps({"error": message, **extra}), content_type="application/json")

    def _check_project(self, cluster: str, org: Optional[str], project: str) -> None:
        if cluster != self.cluster:
            raise self._bad(f"Cluster {cluster} not found", web.HTTPForbidden)
        if org != self.org or project not in self.projects:
            raise self._bad(f"No access to project {org}/{project}", web.HTTPForbidden)

    # -------------------------------------------------------------- registry
    async def manifest(self, request: web.Request) -> web.Response:
        """HEAD/GET /v2/NAME/manifests/TAG: the Docker-Content-Digest of a pushed image (the Docker Registry
        HTTP API V2, https://distribution.github.io/distribution/spec/api/#existing-manifests), with the
        login's Basic user:token as apolo-sdk's Images.digest sends it; an unknown one is 404."""
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            raise self._bad("authentication required", web.HTTPUnauthorized)
        key = f"{request.match_info['name']}:{request.match_info['ref']}"
        if request.method not in ("HEAD", "GET") or key not in self.images:
            raise self._bad(f"manifest unknown: {key}", web.HTTPNotFound)
        return web.Response(headers={"Docker-Content-Digest": self.images[key]},
                            text=None if request.method == "HEAD" else json.dumps({"layers": []}))

    # -------------------------------------------------------------- config
    async def config(self, request: web.Request) -> web.Response:
        payload = {"auth_url": f"{self.url}/authorize", "token_url": f"{self.url}/oauth/token",
                   "logout_url": f"{self.url}/logout", "client_id": "loopback", "audience": "loopback",
                   "headless_callback_url": f"{self.url}/oauth/show-code"}
        if "Authorization" in request.headers:
            self._auth(request)
            pools = [{"name": "pool", "min_size": 0, "max_size": 4, "cpu": 8.0, "memory": 32 * 2**30,
                      "disk_size": 100 * 2**30}]
            payload.update(authorized=True, clusters=[{
                "name": self.cluster, "orgs": [self.org], "registry_url": self.url,
                "storage_url": f"{self.api}/storage", "users_url": f"{self.api}/users",
                "monitoring_url": f"{self.api}/jobs", "secrets_url": f"{self.api}/secrets",
                "disks_url": f"{self.api}/disks", "buckets_url": f"{self.api}/buckets",
                "resource_pool_types": pools,
                "resource_presets": [{"name": n, **p} for n, p in self.presets.items()]}],
                projects=[{"name": p, "cluster_name": self.cluster, "org_name": self.org, "role": "admin"}
                          for p in self.projects])
        return web.json_response(payload)

    # -------------------------------------------------------------- jobs
    async def start_job(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        self.requests.append(("POST", request.path_qs, body))
        if "from_preset" not in request.query:
            raise self._bad("only jobs from a preset are served here")
        unknown = set(body) - JOB_KEYS
        if unknown:
            raise self._bad(f"unknown fields: {sorted(unknown)}")
        for key in ("cluster_name", "project_name", "preset_name", "image"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise self._bad(f"{key} is required")
        self._check_project(body["cluster_name"], body.get("org_name"), body["project_name"])
        if not IMAGE_NAME_TAG.fullmatch(body["image"]):
            raise self._bad(f"invalid image name {body['image']!r}")
        if body["preset_name"] not in self.presets:
            raise self._bad(f"Preset '{body['preset_name']}' not found")
        name = body.get("name")
        if name is not None:
            if not (re.fullmatch(r"[a-z](?:-?[a-z0-9])*", name) and 3 <= len(name) <= 40):
                raise self._bad(f"Invalid job name {name!r}")
            if any(j.body.get("name") == name and not j.finished_ for j in self.jobs.values()):
                raise self._bad(f"job with name '{name}' and owner '{self.user}' already exists")
        for v in body.get("volumes", []):
            if set(v) - {"src_storage_uri", "dst_path", "read_only"} or not str(v.get("dst_path", "")).startswith("/"):
                raise self._bad(f"invalid volume {v}")
            m = re.fullmatch(r"storage://([^/]+)/([^/]+)/([^/]+)(/.*)?", v["src_storage_uri"])
            if m is None:
                raise self._bad(f"invalid storage URI {v['src_storage_uri']}")
            self._check_project(m.group(1), m.group(2), m.group(3))
            if not self.storage_path(v["src_storage_uri"].split("://", 1)[1].split("/", 1)[1]).is_dir():
                raise self._bad(f"Storage path {v['src_storage_uri']} not found")
        http = body.get("http")
        if http is not None and (set(http) - {"port", "requires_auth"} or not isinstance(http.get("port"), int)):
            raise self._bad(f"invalid http {http}")
        words = shlex.split(body.get("command") or "train")
        if not (REPO / "docker" / words[0]).is_file():
            raise self._bad(f"{words[0]!r}: executable not found in the image")
        job = Job(self, body, self.user)
        self.jobs[job.id] = job
        asyncio.ensure_future(job.run())
        return web.json_response(job.describe())

    async def job_status(self, request: web.Request) -> web.Response:
        self._auth(request)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            raise self._bad("job not found", web.HTTPNotFound)
        return web.json_response(job.describe())

    async def kill_job(self, request: web.Request) -> web.Response:
        self._auth(request)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            raise self._bad("job not found", web.HTTPNotFound)
        self.killed.append(job.id)
        if not job.finished_:
            job.killed = True
            job.signal(signal.SIGTERM)
            if job.proc is None:
                job.enter("cancelled", "UserRequested")
            else:
                asyncio.get_running_loop().call_later(30, job.signal, signal.SIGKILL)
        return web.Response(status=204)

    async def log_ws(self, request: web.Request) -> web.WebSocketResponse:
        self._auth(request)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            raise self._bad("job not found", web.HTTPNotFound)
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def read():  # reading is what answers the client's heartbeat pings (autoping)
            async for _ in ws:
                pass

        reader = asyncio.ensure_future(read())
        sent = 0
        while True:
            done = job.finished_
            data = job.log.read_bytes()[sent:]
            if data:
                try:
                    await ws.send_bytes(data)
                except ConnectionError:  # the client stopped following
                    break
                sent += len(data)
            elif done:
                break
            else:
                await asyncio.sleep(0.1)
        await ws.close()
        reader.cancel()
        return ws

    # -------------------------------------------------------------- ingress
    async def ingress(self, request: web.Request) -> web.Response:
        import aiohttp

        job = self.jobs.get(request.match_info["id"])
        if job is None or job.status != "running" or job.host_port is None:
            raise web.HTTPBadGateway(text="no such running job")
        if job.body.get("http", {}).get("requires_auth", True):
            self._auth(request)
        body = await request.read()
        self.ingress_calls += request.method == "POST"
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        try:
            async with aiohttp.ClientSession() as s:
                async with s.request(request.method, f"http://127.0.0.1:{job.host_port}/{request.match_info['tail']}",
                                     data=body or None, headers=headers) as r:
                    data = await r.read()
                    keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type",) or
                            k.lower().startswith("x-platbench")}
                    return web.Response(status=r.status, body=data, headers=keep)
        except aiohttp.ClientConnectionError:
            raise web.HTTPBadGateway(text="the job's port does not answer yet")

    # -------------------------------------------------------------- storage
    async def storage(self, request: web.Request) -> web.StreamResponse:
        self._auth(request)
        rel = request.match_info["path"]
        parts = rel.split("/")
        if len(parts) < 2:
            raise self._bad("a path names an organization and a project", web.HTTPForbidden)
        self._check_project(self.cluster, parts[0], parts[1])
        path = self.storage_path(rel)
        op = request.query.get("op", "")
        self.requests.append((request.method, f"storage:{op}:{rel}", None))

        def status(p: Path, name: str) -> dict:
            st = p.stat()
            return {"path": name, "type": "DIRECTORY" if p.is_dir() else "FILE", "length": 0 if p.is_dir() else
                    st.st_size, "modificationTime": int(st.st_mtime), "permission": "write"}

        if op == "GETFILESTATUS" and request.method == "GET":
            if not path.exists():
                raise self._bad(f"File not found: {rel}", web.HTTPNotFound)
            return web.json_response({"FileStatus": status(path, "/" + rel)})
        if op == "LISTSTATUS" and request.method == "GET":
            if not path.exists():
                raise self._bad(f"File not found: {rel}", web.HTTPNotFound)
            if not path.is_dir():
                raise self._bad("Not a directory", errno="ENOTDIR")
            return web.json_response({"FileStatuses": {"FileStatus": [status(p, p.name) for p in sorted(path.iterdir())]}})
        if op == "MKDIRS" and request.method == "PUT":
            if path.is_file():
                raise self._bad("File exists", errno="EEXIST")
            path.mkdir(parents=True, exist_ok=True)
            return web.Response(status=201)
        if op == "CREATE" and request.method == "PUT":
            if not path.parent.is_dir():
                raise self._bad(f"No such directory: {Path(rel).parent}", errno="ENOENT")
            if path.is_dir():
                raise self._bad("Is a directory", errno="EISDIR")
            path.write_bytes(await request.read())
            return web.Response(status=201)
        if op == "WRITE" and request.method == "PATCH":
            m = re.fullmatch(r"bytes (\d+)-(\d+)/\*", request.headers.get("Content-Range", ""))
            data = await request.read()
            if m is None or int(m.group(2)) - int(m.group(1)) + 1 != len(data):
                raise self._bad("invalid Content-Range")
            if not path.is_file() or int(m.group(1)) > path.stat().st_size:
                raise self._bad("write past the end of the file", errno="EINVAL")
            with path.open("r+b") as f:
                f.seek(int(m.group(1)))
                f.write(data)
            return web.Response(status=200)
        if op == "OPEN" and request.method == "GET":
            if not path.is_file():
                raise self._bad(f"File not found: {rel}", web.HTTPNotFound)
            data = path.read_bytes()
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                return web.Response(status=206, body=data[start:end + 1],
                                    headers={"Content-Range": f"bytes {start}-{end}/{len(data)}"})
            return web.Response(body=data)
        if op == "DELETE" and request.method == "DELETE":
            if not path.exists():
                raise self._bad(f"File not found: {rel}", web.HTTPNotFound)
            if path.is_dir():
                if request.query.get("recursive") != "true":
                    raise self._bad("Is a directory", errno="EISDIR")
                shutil.rmtree(path)
            else:
                path.unlink()
            return web.Response(status=204)
        if op == "RENAME" and request.method == "POST":
            dest = self.storage_path(request.query.get("destination", ""))
            if not path.exists() or not dest.parent.is_dir():
                raise self._bad("No such file or directory", errno="ENOENT")
            os.replace(path, dest)
            return web.Response(status=204)
        raise self._bad(f"unsupported storage operation {request.method} {op}")


def login(server: ApoloServer, config_dir: Path) -> Path:
    """`apolo config login-with-token TOKEN URL`, through the SDK: writes the config directory."""
    import apolo_sdk

    asyncio.run(apolo_sdk.Factory(config_dir).login_with_token(server.token, url=__import__("yarl").URL(server.api)))
    return config_dir


def _serve(tmp_path: Path, runtime_env: Optional[dict] = None):
    server = ApoloServer(tmp_path / "platform", runtime_env=runtime_env)
    server.config_dir = login(server, tmp_path / "apolo-config")
    yield server
    server.close()


@pytest.fixture
def apolo(tmp_path):
    """A loopback Apolo platform and a login to it (server.config_dir), for one test."""
    yield from _serve(tmp_path)


@pytest.fixture
def apolo_stand_in(tmp_path, stand_in):
    """The same, its jobs' `train` the stand-in trainer (tests/stand_in) replaying the golden run; a test
    changes what the stand-in does through server.runtime_env (read when a job starts)."""
    yield from _serve(tmp_path, stand_in.env(base={}))


def settings(server: ApoloServer, **more) -> dict:
    """`--set` values for a launch or an endpoint on the loopback platform: its login, a preset, an image."""
    return {"config": str(server.config_dir), "preset": "cpu-small", "image": "image:platbench:1",
            "poll_seconds": "0.1", **more}
