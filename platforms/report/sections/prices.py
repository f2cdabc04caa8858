"""Prices as the runs recorded them: the quote tag, its price-table status (verified or not), the price
basis, billed against list-price cost, and the endpoint price metrics."""
from __future__ import annotations

import re
from typing import Optional, Sequence

from platforms.core.tracking import Tag
from platforms.report.data import Run

# A managed endpoint's price per hour (platforms/bench/endpoint.py logs endpoint_usd_per_{hour,day,month,year}
# on its run, kind "endpoint", from the price table).
ENDPOINT_PRICE_METRIC = "endpoint_usd_per_hour"
HOURS = {"hour": 1, "day": 24, "month": 730, "year": 8760}  # month = 8760 / 12 h, the cloud billing convention
PRICE_ITEM = re.compile(r"(\S+) ([0-9]+(?:\.[0-9]+)?)/h ×(\d+)")
PRICE_ITEM_STATUS = re.compile(r"\S+ [0-9]+(?:\.[0-9]+)?/h ×\d+ \(([^()]*)\)")  # pricing.Quote.sources
UNVERIFIED = "†"  # beside every USD figure computed from a price-table entry with status: unverified
BASIS_TEXT = {"spot": "spot", "on-demand": "on-demand",
              "on-demand (no spot price)": "spot run priced at on-demand (no spot price in the table)"}


def price_status(run: Run) -> Optional[str]:
    """verified | unverified for the price the run's cost was computed with (the status each price-table
    entry had, recorded in the platbench.price_source tag); None for a run with no price. A quote whose
    status is not recorded counts as unverified."""
    text = run.tags.get(Tag.PRICE_SOURCE) or ""
    items = PRICE_ITEM.findall(text)
    if not items:
        return None
    statuses = [inner.rsplit(",", 1)[-1].strip() for inner in PRICE_ITEM_STATUS.findall(text)]
    return "verified" if len(statuses) == len(items) and all(x == "verified" for x in statuses) else "unverified"


def usd(value: Optional[float], runs: Sequence[Run], f: str = "{:.4f}") -> str:
    """A USD figure, marked when any price behind it is unverified."""
    if value is None:
        return "–"
    mark = any(price_status(r) == "unverified" for r in runs)
    return f.format(value) + (f" {UNVERIFIED}" if mark else "")


def billed_usd(run: Run) -> Optional[float]:
    """The run's cost as billed: only where the platform reported billed seconds. Launchers whose platform
    reports none (Vertex AI, Azure ML, Databricks) log their running-time estimate as cost_usd too; that
    belongs in the list-price column, never under 'billed'."""
    return run.m("cost_usd") if run.m("billed_seconds") is not None else None


def basis_text(run: Run) -> str:
    value = (run.tags.get(Tag.PRICE_BASIS) or "").strip()
    return BASIS_TEXT.get(value, value) or "–"


def price_per_hour(run: Run) -> Optional[float]:
    """The quote the launcher priced the run with (tag platbench.price_source: 'SKU P/h ×N (…)' per item)."""
    text = run.tags.get(Tag.PRICE_SOURCE) or ""
    items = PRICE_ITEM.findall(text)
    if not items:
        return None
    return sum(float(p) * int(n) for _, p, n in items)

