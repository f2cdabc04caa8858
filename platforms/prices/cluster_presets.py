"""A cluster's resource presets and the credits each spends per hour, from its SDK's config (the client's
`config.presets`, what its CLI's `config show` lists, fetched so they are the cluster's current ones). Such
credits are set by the cluster's administrator and have no public USD price, so these entries are cached in
the rule's `currency` (credits) and no USD figure rests on them. The rule's `config_env` names the variable
that holds the login's config folder (default: the SDK's)."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from platforms.core.price_cache import Fetched, now
from platforms.errors import UserError

API = "SDK config.presets"


async def _presets(config: str):
    import apolo_sdk as sdk

    client = await sdk.Factory(Path(config).expanduser() if config else None).get()
    try:
        await client.config.fetch()
        return client.config.cluster_name, str(client.config.api_url), dict(client.config.presets)
    finally:
        await client.close()


def fetch(rule: dict, wants=(), table=None) -> tuple[list[Fetched], list[str]]:
    """(every preset's price per hour in the rule's currency, nothing missing)."""
    try:
        cluster, url, presets = asyncio.run(_presets(os.environ.get(rule.get("config_env", ""), "")))
    except Exception as exc:  # noqa: BLE001 - any login or config failure is one line
        raise UserError(f"cluster presets: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    fetched_at = now()
    return [Fetched("training", cluster, name, float(p.credits_per_hour), url, API, f"cluster {cluster}", fetched_at,
                    currency=rule.get("currency", "credits"),
                    note=f"{p.cpu:g} CPU, {p.memory / 2**30:g} GiB" + (f", {p.nvidia_gpu} NVIDIA GPU" if p.nvidia_gpu else "")
                    + (", preemptible" if p.preemptible_node else ""))
            for name, p in sorted(presets.items())], []
