"""The async apolo-sdk driven from platbench's synchronous steps: one event loop on a background thread
owns the SDK's `Client` (aiohttp sessions belong to the loop that made them); every call is a coroutine
submitted to that loop and waited for. Thread-safe, so the staging code's worker threads share one client.

Login is the SDK's own: `Factory(path).get()` reads the config directory `apolo login` wrote (or
APOLO_PASSED_CONFIG), https://apolo-sdk.readthedocs.io/stable/factory_reference.html. Cluster, organization
and project default to the login's current ones (`apolo config show`); every URI platbench builds names
them in full (storage://CLUSTER/ORG/PROJECT/PATH), so none depends on the SDK's defaults.
https://docs.apolo.us/index/core/getting-started/projects (every artifact belongs to a project)"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Optional

from platforms.core.sdk import require
from platforms.errors import UserError


def sdk():
    return require("apolo_sdk", "apolo", "the Apolo SDK (apolo-sdk)")


@dataclass(frozen=True)
class Where:
    """The cluster, organization (None on a cluster without orgs) and project a run uses."""

    cluster: str
    org: Optional[str]
    project: str

    def storage_uri(self, path: str = "") -> str:
        head = "/".join(p for p in (self.cluster, self.org, self.project) if p)
        return f"storage://{head}/{path.strip('/')}".rstrip("/")

    def key(self, path: str = "") -> str:
        """A storage path relative to the cluster (what ApoloStore calls a key)."""
        return "/".join(p for p in (self.org, self.project, path.strip("/")) if p)


class Session:
    """One logged-in apolo-sdk Client on its own event loop."""

    def __init__(self, config: Optional[str] = None):
        from pathlib import Path

        from platforms.apolo import credentials

        apolo_sdk = sdk()
        found, where = credentials.find(config)
        if not found:
            raise UserError(f"apolo: no credentials: {where}")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="apolo-sdk", daemon=True)
        self.thread.start()
        self.client: Any = None
        try:
            factory = apolo_sdk.Factory(Path(config).expanduser() if config else None)
            self.client = self.run(factory.get(), timeout=120)
            # one authenticated call (GET /config, what `apolo config show` reads): a revoked token is found
            # here, before anything is uploaded, and the cluster's presets are the current ones
            self.run(self.client.config.fetch(), timeout=120)
        except UserError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - any login failure is one line for the user
            self.close()
            raise UserError(f"apolo: cannot use the login in {credentials.config_dir(config)}: "
                            f"{type(exc).__name__}: {exc}".splitlines()[0]) from None

    def run(self, coro, timeout: Optional[float] = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def where(self, cluster: Optional[str], org: Optional[str], project: Optional[str]) -> Where:
        """Cluster / org / project, checked against what the login knows (no network call)."""
        cfg = self.client.config
        cluster = cluster or cfg.cluster_name
        if cluster not in cfg.clusters:
            raise UserError(f"apolo: unknown cluster {cluster!r}; this login has: {', '.join(cfg.clusters)}")
        orgs = list(cfg.clusters[cluster].orgs)
        if org is None:
            org = cfg.org_name if cfg.org_name in orgs else (sorted(orgs)[0] if orgs else None)
        elif org not in orgs:
            raise UserError(f"apolo: organization {org!r} is not on cluster {cluster} (it has: "
                            f"{', '.join(orgs) or 'none'})")
        known = sorted(p.name for p in cfg.projects.values() if p.cluster_name == cluster and p.org_name == org)
        project = project or (cfg.project_name if cfg.project_name in known else (known[0] if known else None))
        if project is None or project not in known:
            raise UserError(f"apolo: project {project!r} is not in {cluster}/{org} for this login (known: "
                            f"{', '.join(known) or 'none'}; `apolo admin add-project` creates one)")
        return Where(cluster, org, project)

    def preset(self, where: Where, name: str):
        presets = self.client.config.clusters[where.cluster].presets
        if name not in presets:
            raise UserError(f"apolo: unknown preset {name!r} on cluster {where.cluster}; known: "
                            f"{', '.join(sorted(presets))} (`apolo config show`)")
        return presets[name]

    async def token(self) -> str:
        return await self.client.config.token()

    def close(self) -> None:
        if self.client is not None and not self.client.closed:
            try:
                self.run(self.client.close(), timeout=30)
            except Exception:  # noqa: BLE001 - closing must not hide what came before
                pass
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
