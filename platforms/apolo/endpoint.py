"""Apolo endpoint: a job running the image's `serve` with its HTTP port exposed behind the platform's
authentication, load-tested through the job's URL, always killed afterwards (platforms/core/endpoint.py).

- `apolo run --http-port 8080 --http-auth IMAGE -- serve …` / Jobs.start(http=HTTPPort(port,
  requires_auth=True)): the platform forwards https://<job URL> to the container's port, and with auth on
  it lets through only requests carrying a token of a user with access to the job (the Authorization:
  Bearer header sent here); the job's URL is JobDescription.http_url, set once the job is scheduled:
  https://apolo-sdk.readthedocs.io/stable/jobs_reference.html (HTTPPort, JobDescription.http_url)
  https://docs.apolo.us/index/apolo-cli/commands/job (run --http-port, --http-auth / --no-http-auth)
  Whether the ingress takes the token as that header (rather than only as the console's cookie) is not
  confirmed against the live service here; the loopback server in tests/apolo checks the header.
- `serve` is the image's serving command (docker/serve → `python -m trainer serve`): /ping and
  /invocations, the SageMaker routes, on --port; the model is uploaded to storage and mounted read-only.
- Cost: the preset's credits per hour (cluster configuration, read at login) × --set usd_per_credit.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

from pydantic import Field

from platforms.apolo.train import JOB_NAME, ApoloProject, image_ref, sdk_error, unusable_gpu
from platforms.core.endpoint import MODEL_FILES, Endpoint, EndpointCost, model_tarball
from platforms.core.transport import Target
from platforms.errors import UserError

PORT = 8080
MODEL_PATH = "/platbench/model"
HEALTH, PREDICT = "/ping", "/invocations"


class ApoloEndpointSettings(ApoloProject):
    """`--set KEY=VALUE` for `platbench endpoint apolo`."""

    name: Optional[str] = None
    ready_timeout: float = Field(1800, ge=10, le=7200)  # seconds from start until /ping answers 200


class ApoloEndpoint(Endpoint):
    platform = "apolo"
    settings_model = ApoloEndpointSettings
    name_rule = JOB_NAME  # the endpoint is a job; Apolo job names are lower case
    name_refusal = ("apolo endpoint: name {name!r} is not a valid Apolo job name (3-40 lower-case letters, digits "
                    "and single dashes, starting with a letter)")

    def __init__(self, settings: dict[str, str]):
        super().__init__(settings)
        self.session = None
        self.where = None
        self.preset = None
        self.job_id: Optional[str] = None
        self.http_url: Optional[str] = None
        self._store = None

    @property
    def region(self) -> str:
        return self.cfg.cluster or ""

    def target(self) -> Target:
        return Target(kind="apolo", url=f"{self.http_url}{PREDICT}" if self.http_url else None,
                      name=self.job_id or self.name)

    def cost(self) -> Optional[EndpointCost]:
        """The preset's credits per hour, read from the login's cluster configuration (no network call),
        × the organization's credit price; None without either."""
        if not (self.cfg.usd_per_credit and self.cfg.preset):
            return None
        preset = self.preset or _offline_preset(self.cfg)
        if preset is None:
            return None
        credits = float(preset.credits_per_hour)
        return EndpointCost(credits * self.cfg.usd_per_credit,
                            f"preset {self.cfg.preset} {credits} credits/h (cluster config, "
                            "https://docs.apolo.us/index/administration/apolo-credits) × usd_per_credit "
                            f"{self.cfg.usd_per_credit} (--set)")

    def plan(self) -> list[str]:
        c = self.cfg
        root = f"storage:{c.prefix.strip('/')}/endpoints/{self.name}"
        where = "".join(f" --{k} {v}" for k, v in (("cluster", c.cluster), ("org", c.org), ("project", c.project)) if v)
        lines = [
            "apolo config show   # login, cluster, project, preset",
            f"apolo mkdir -p {root} && apolo cp model.pt model.json {root}/",
            f"apolo run{where} --preset {c.preset or 'PRESET'} --name {self.name} --http-port {PORT} --http-auth "
            f"--volume {root}:{MODEL_PATH}:ro --life-span {c.life_span // 60}m --detach {c.image or 'IMAGE'} -- "
            f"serve --model-dir {MODEL_PATH} --port {PORT}",
            f"apolo status JOB_ID   # until running; then GET <http_url>{HEALTH} with the token until 200",
            'curl -H "Authorization: Bearer $(apolo config show-token)" --data-binary @image.png '
            f"<http_url>{PREDICT}   # × N, by the load tool",
            f"apolo job kill JOB_ID; apolo rm -r {root}   # always, also on error or Ctrl-C",
        ]
        if not (c.usd_per_credit and c.preset):
            lines.append("cost: the preset's credits per hour (`apolo config show`); add --set usd_per_credit=… "
                         "(your organization's credit price) for USD per hour/day/month/year")
        return lines

    def check(self) -> None:
        from platforms.apolo.session import Session
        from platforms.apolo.storage import ApoloStore

        c = self.cfg
        for key, what in (("image", "the platbench image: image:platbench:TAG or REGISTRY/platbench@sha256:…"),
                          ("preset", "a resource preset of the cluster (`apolo config show`)")):
            if not getattr(c, key):
                raise UserError(f"apolo endpoint: add --set {key}=… ({what})")
        self.session = Session(c.config)
        try:
            self.where = self.session.where(c.cluster, c.org, c.project)
            self.preset = self.session.preset(self.where, c.preset)
            why = unusable_gpu(self.preset.nvidia_gpu.model) if self.preset.nvidia_gpu is not None else None
            if why:
                raise UserError(f"apolo endpoint: preset {c.preset!r}: {why}")
            self.session.client.parse.remote_image(image_ref(c.image, self.where), cluster_name=self.where.cluster)
        except ValueError as exc:
            self.session.close()
            raise UserError(f"apolo endpoint: image {c.image!r}: {exc}") from None
        except BaseException:
            self.session.close()
            raise
        self._store = ApoloStore(self.where.cluster, session=self.session)

    def deploy(self, model_dir: Path, progress=None) -> None:
        from platforms.apolo.session import sdk

        mod = sdk()
        say = progress or (lambda text: None)
        c = self.cfg
        folder = self.where.key(f"{c.prefix.strip('/')}/endpoints/{self.name}")
        t0 = time.perf_counter()
        model_tarball(model_dir)  # validates the model directory
        size = 0
        self.created.append(("storage folder", folder))
        for name in MODEL_FILES:
            self._store.put_file(f"{folder}/{name}", Path(model_dir) / name)
            size += (Path(model_dir) / name).stat().st_size
        self.timings["upload_s"] = time.perf_counter() - t0
        self.timings["model_mb"] = size / 1e6
        t0 = time.perf_counter()
        say(f"starting job {self.name} ({c.preset}) serving on port {PORT}")
        image = self.session.client.parse.remote_image(image_ref(c.image, self.where), cluster_name=self.where.cluster)
        try:
            d = self.session.run(self.session.client.jobs.start(
                image=image, preset_name=c.preset, cluster_name=self.where.cluster, org_name=self.where.org,
                project_name=self.where.project, command=f"serve --model-dir {MODEL_PATH} --port {PORT}",
                http=mod.HTTPPort(PORT, requires_auth=True),
                volumes=[mod.Volume(self._store._uri(folder), MODEL_PATH, read_only=True)],
                name=self.name, tags=["platbench", "endpoint"], life_span=float(c.life_span),
                env={"PLATBENCH_PLATFORM": "apolo"}))
        except (mod.ClientError, ValueError, OSError) as exc:
            raise sdk_error(mod, exc, "the endpoint job was refused") from None
        self.job_id = d.id
        self.created.append(("job", d.id))
        print(f"platbench: started Apolo job {d.id} ({self.name})", file=sys.stderr)
        self.http_url = self._wait_serving(d.id, mod, say)
        self.timings["create_to_in_service_s"] = time.perf_counter() - t0

    def _wait_serving(self, job_id: str, mod, say) -> str:
        """Until the job runs, has its URL, and /ping answers 200 through the authenticated ingress."""
        import aiohttp

        deadline = time.time() + self.cfg.ready_timeout
        client = self.session.client

        async def ping(url: str) -> int:
            token = await self.session.token()
            async with aiohttp.ClientSession() as s:
                try:
                    async with s.get(url + HEALTH, headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=5)) as r:
                        return r.status
                except (aiohttp.ClientError, TimeoutError, OSError):
                    return 0

        last = None
        while time.time() < deadline:
            d = self.session.run(client.jobs.status(job_id))
            if d.status.value != last:
                last = d.status.value
                say(f"job {job_id}: {last} {d.history.reason or ''}".rstrip())
            if d.status.is_finished:
                raise UserError(f"apolo endpoint: job {job_id} ended {d.status.value} before serving: "
                                f"{d.history.description or d.history.reason or ''} (exit code {d.history.exit_code})")
            url = str(d.http_url).rstrip("/") if str(d.http_url) else ""
            if d.status.is_running and url and self.session.run(ping(url)) == 200:
                return url
            time.sleep(min(self.cfg.poll_seconds, 1.0))
        raise UserError(f"apolo endpoint: job {job_id} did not serve within {self.cfg.ready_timeout:.0f} s "
                        "(ready_timeout)")

    by_hand = "kill / remove them by hand (`apolo job kill`, `apolo rm -r`)"

    def delete(self, kind: str, name: str) -> None:
        if kind == "job":
            self.session.run(self.session.client.jobs.kill(name), timeout=120)
        else:
            self.session.run(self.session.client.storage.rm(self._store._uri(name), recursive=True), timeout=120)

    def already_gone(self, exc: Exception) -> bool:
        from platforms.apolo.session import sdk

        return isinstance(exc, sdk().ResourceNotFound)

    def released(self) -> None:
        if self.session is not None:
            self.session.close()

    def transport(self, concurrency: int, timeout_s: float):
        return _http_transport(self.session, self.http_url, concurrency, timeout_s)

    @classmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float):
        """A transport to a job the user already runs (`platbench load apolo:JOB_ID`)."""
        from platforms.apolo.session import Session, sdk

        ep = cls(settings)
        session = Session(ep.cfg.config)
        try:
            d = session.run(session.client.jobs.status(name))
        except (sdk().ClientError, ValueError) as exc:
            session.close()
            raise sdk_error(sdk(), exc, f"job {name}") from None
        if not str(d.http_url):
            session.close()
            raise UserError(f"apolo: job {name} exposes no HTTP port (start it with --http-port)")
        return _http_transport(session, str(d.http_url).rstrip("/"), concurrency, timeout_s, owns=True)


def _http_transport(session, url: str, concurrency: int, timeout_s: float, owns: bool = False):
    from platforms.core.http_transport import HttpTransport

    class ApoloTransport(HttpTransport):
        """The load tool's HTTP transport with the user's token on every request (the job's HTTP auth)."""

        async def close(self) -> None:
            await super().close()
            if owns:
                session.close()

    token = session.run(session.token())
    return ApoloTransport(Target(kind="http", url=url + PREDICT, health_url=url + HEALTH), concurrency, timeout_s,
                          headers={"Authorization": f"Bearer {token}"})


def _offline_preset(cfg):
    """The preset as the login's config database holds it (a local SQLite read, no network), or None."""
    try:
        from apolo_sdk._config import _load

        from platforms.apolo.credentials import config_dir

        data = _load(config_dir(cfg.config))
        cluster = data.clusters.get(cfg.cluster or data.cluster_name)
        return cluster.presets.get(cfg.preset) if cluster else None
    except Exception:  # noqa: BLE001 - no login, no SDK: no price, said by the caller
        return None
