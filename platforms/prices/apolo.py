"""Apolo's prices: the resource presets of the logged-in cluster and the credits each spends per hour, from
the SDK's config (apolo-sdk `Client.config.presets`, what `apolo config show` lists; GET /config, after a
fetch so they are the cluster's current ones). Apolo sells no preset for a public USD price: credits are set
by the cluster's administrator (https://docs.apolo.us/index/administration/apolo-credits), so these entries
are in credits and no USD figure rests on them (platforms/apolo: `--set usd_per_credit=…`).
PLATBENCH_APOLO_CONFIG names the login's config folder (default: the SDK's)."""
from __future__ import annotations

import os
from typing import Iterable

from platforms.prices.cache import Fetched, now

API = "apolo-sdk Client.config.presets"


def presets(wants: Iterable[tuple[str, str, str]] = ()) -> tuple[list[Fetched], list[str]]:
    """(every preset's credits per hour, nothing missing): the shipped table names no preset to ask for."""
    from platforms.apolo.session import Session

    s = Session(os.environ.get("PLATBENCH_APOLO_CONFIG") or None)
    try:
        cfg = s.client.config
        cluster, url = cfg.cluster_name, str(cfg.api_url)
        fetched_at = now()
        return [Fetched("training", cluster, name, float(p.credits_per_hour), url, API, f"cluster {cluster}", fetched_at,
                        currency="credits", note=f"{p.cpu:g} CPU, {p.memory / 2**30:g} GiB"
                        + (f", {p.nvidia_gpu} NVIDIA GPU" if p.nvidia_gpu else "")
                        + (", preemptible" if p.preemptible_node else ""))
                for name, p in sorted(cfg.presets.items())], []
    finally:
        s.close()
