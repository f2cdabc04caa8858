"""`platbench prices billed`: what a platform billed for its runs, where it reports that only later. A price
table's `billed` rules say which source holds it (SOURCES) and which tag of a run names the run there; each run
of the platform without a billed figure yet is looked up and, once found, gets the metrics `billed_usd` and
`billed_units` and tags saying what they cover and where they came from (the report's cost section shows them
beside the list-price estimate). A run the source has no record of yet stays without, and is said so."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from platforms.core import price_cache as cache
from platforms.core import pricing
from platforms.errors import UserError

BILLED_USD, BILLED_UNITS = "billed_usd", "billed_units"
UNIT_TAG, COVERS_TAG, SOURCE_TAG = "platbench.billed_unit", "platbench.billed_covers", "platbench.billed_source"


def _usage(rule, key):
    from platforms.prices import sql_billed_usage

    got = sql_billed_usage.read(rule, key)
    return None if got is None else (got.units, got.usd, f"{got.source} ({sql_billed_usage.API}, usage until "
                                                         f"{got.until}, read {cache.now()})")


SOURCES: dict[str, Callable] = {"sql-billed-usage": _usage}


@dataclass
class Line:
    run_id: str
    key: str
    text: str
    found: bool


def billed_platforms() -> list[str]:
    from platforms.core import registry

    return [p for p in registry.names() if pricing.shipped(p).billed]


def _runs(platform: str) -> list:
    """The platform's ended runs in the cloud (local mode bills nothing; the cost plan's reader: no store is
    created where none exists)."""
    from platforms.core import cost_plan, tracking

    T = tracking.Tag
    return [r for r in cost_plan.newest_runs(f"tags.`{T.PLATFORM}` = '{platform}'", 1000)
            if r.info.status != "RUNNING" and r.data.tags.get(T.LOCAL_MODE) != "true"]


def billed(platform: str) -> list[Line]:
    """Look up the billed figure of each ended run of `platform` that has none yet; log what was found."""
    from platforms.core import tracking

    rules = pricing.shipped(platform).billed
    if not rules:
        raise UserError(f"{platform} reports no billed figure to read later (platforms/{platform}/prices.yaml has "
                        "no billed rule)")
    out = []
    for rule in rules:
        if rule.get("source") not in SOURCES:
            raise UserError(f"platforms/{platform}/prices.yaml: billed source {rule.get('source')!r} unknown "
                            f"(known: {', '.join(SOURCES)})")
        for r in _runs(platform):
            key = r.data.tags.get(rule["run_tag"])
            if BILLED_USD in r.data.metrics or not key:
                continue
            got = SOURCES[rule["source"]](rule, key)
            if got is None:
                out.append(Line(r.info.run_id, key, f"no usage record yet ({rule['later']})", False))
                continue
            units, usd, where = got
            c = tracking.client()
            c.log_metric(r.info.run_id, BILLED_USD, usd)
            c.log_metric(r.info.run_id, BILLED_UNITS, units)
            for tag, value in ((UNIT_TAG, rule["unit"]), (COVERS_TAG, rule["covers"]), (SOURCE_TAG, where)):
                c.set_tag(r.info.run_id, tag, value)
            out.append(Line(r.info.run_id, key, f"{usd:.4f} USD billed ({units:g} {rule['unit']}; {rule['covers']})",
                            True))
    return out
