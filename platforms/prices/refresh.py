"""Which official source prices which platform's SKUs, and one refresh: the SKUs each platform's shipped
prices.yaml lists (what the project uses) are asked of the platform's source and what it gives goes to the
price cache. A source that fails (offline, throttled past its retries, no credentials) is one line and the
platform's last cache stays in use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from platforms.core import pricing
from platforms.errors import UserError
from platforms.prices import cache

# platforms whose prices no official API gives: what to say instead of a refresh
NO_SOURCE = {
    "nyckel": "Nyckel publishes plans, not an API; no price is entered for it, so its runs carry no cost",
}


@dataclass
class Result:
    platform: str
    fetched: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    error: str = ""


def wants(platform: str) -> list[tuple[str, str, str]]:
    """(section, region, SKU) of every entry the platform's shipped prices.yaml has."""
    return [(section, region, sku) for section, regions in pricing.shipped(platform).data.items()
            for region, skus in (regions or {}).items() for sku in (skus or {})]


def _azureml(w):
    from platforms.prices import azure

    # low-priority meters too: a low-priority job is then priced at its own price, not on demand
    spot = [("training_spot", r, s) for sec, r, s in w if sec == "training"]
    return azure.vms(w + [x for x in spot if x not in w])


def _databricks(w):
    from platforms.prices import aws, databricks

    table = pricing.shipped("databricks").data
    dbu = [(sec, r, s, float(table[sec][r][s].get("dbu_per_hour") or 0)) for sec, r, s in w if s.endswith(" DBU")]
    got, missing = aws.ec2([x for x in w if not x[2].endswith(" DBU")])
    g2, m2 = databricks.dbu_items(dbu)
    return got + g2, missing + m2


def _aws(kind: str) -> Callable:
    def run(w):
        from platforms.prices import aws

        return getattr(aws, kind)(w)
    return run


def _gcp(automl: bool) -> Callable:
    def run(w):
        from platforms.prices import gcp

        return gcp.vertex(w, automl=automl)
    return run


def _apolo(w):
    from platforms.prices import apolo

    return apolo.presets(w)


SOURCES: dict[str, Callable] = {
    "apolo": _apolo,  # credits per preset hour: cached and shown, never a USD figure
    "sagemaker": _aws("sagemaker"),
    "rekognition": _aws("rekognition"),
    "databricks": _databricks,
    "azureml": _azureml,
    "vertex": _gcp(False),
    "vertex_automl": _gcp(True),
}


def refresh(platform: str) -> Result:
    if platform not in SOURCES:
        return Result(platform, error=NO_SOURCE.get(platform, "no price table and no official price source"))
    try:
        got, missing = SOURCES[platform](wants(platform))
    except UserError as exc:
        return Result(platform, error=str(exc))
    if got:
        cache.write(platform, got)
        pricing.forget()
    return Result(platform, got, missing)


def priced_platforms() -> list[str]:
    return sorted(SOURCES)
