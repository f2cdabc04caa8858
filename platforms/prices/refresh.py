"""One refresh: each platform's prices.yaml says, in its `refresh` rules, which official price source gives
which of its entries and how to ask for them (the SKUs its table lists are what the project uses); what the
sources give goes to the price cache (platforms/core/price_cache.py). A source that fails (offline, throttled
past its retries, no credentials) is one line and the platform's last cache stays in use.

A rule: `source` (one of SOURCES), optionally `sections` (default: every section of the table), `skus` (a
regular expression the SKU must match) and `also` ({section: from section}: ask for the entries of `from`
under `section` too, e.g. low-priority prices for every on-demand VM), and what its source needs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from platforms.core import price_cache as cache
from platforms.core import pricing, registry
from platforms.errors import UserError


def _aws(rule, wants, table):
    from platforms.prices import aws_price_list

    return aws_price_list.fetch(rule, wants, table)


def _azure(rule, wants, table):
    from platforms.prices import azure_retail_prices

    return azure_retail_prices.fetch(rule, wants, table)


def _gcp(rule, wants, table):
    from platforms.prices import cloud_billing_catalog

    return cloud_billing_catalog.fetch(rule, wants, table)


def _sql(rule, wants, table):
    from platforms.prices import sql_list_prices

    return sql_list_prices.fetch(rule, wants, table)


def _presets(rule, wants, table):
    from platforms.prices import cluster_presets

    return cluster_presets.fetch(rule, wants, table)


SOURCES: dict[str, Callable] = {
    "aws-price-list": _aws,
    "azure-retail-prices": _azure,
    "cloud-billing-catalog": _gcp,
    "sql-list-prices": _sql,
    "cluster-presets": _presets,
}


@dataclass
class Result:
    platform: str
    fetched: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    error: str = ""


def wants(table: pricing.PriceTable, rule: dict) -> list[tuple[str, str, str]]:
    """(section, region, SKU) of every table entry the rule covers."""
    sections = rule.get("sections") or list(table.data)
    pattern = re.compile(rule.get("skus") or "")
    out = [(section, region, sku) for section in sections for region, skus in (table.data.get(section) or {}).items()
           for sku in (skus or {}) if pattern.search(sku)]
    for section, source in (rule.get("also") or {}).items():
        out += [(section, r, s) for sec, r, s in out if sec == source and (section, r, s) not in out]
    return out


def priced_platforms() -> list[str]:
    """The platforms whose table has a refresh rule."""
    return [p for p in registry.names() if pricing.shipped(p).refresh]


def refresh(platform: str) -> Result:
    table = pricing.shipped(platform)
    if not table.refresh:
        return Result(platform, error=f"no official price source: platforms/{platform}/prices.yaml "
                                       + ("has no refresh rule" if table.path.is_file() else "does not exist"))
    got, missing = [], []
    try:
        for rule in table.refresh:
            if rule.get("source") not in SOURCES:
                raise UserError(f"{table.path}: refresh source {rule.get('source')!r} unknown "
                                f"(known: {', '.join(SOURCES)})")
            g, m = SOURCES[rule["source"]](rule, wants(table, rule), table)
            got, missing = got + g, missing + m
    except UserError as exc:
        return Result(platform, error=str(exc))
    if got:
        cache.write(platform, got)
        pricing.forget()
    return Result(platform, got, missing)
