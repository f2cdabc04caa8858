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



# what a run was billed where the platform reports it later (platforms/prices/billed.py logs these)
BILLED_USD, BILLED_UNITS = "billed_usd", "billed_units"
BILLED_UNIT_TAG, BILLED_COVERS_TAG, BILLED_SOURCE_TAG = ("platbench.billed_unit", "platbench.billed_covers",
                                                         "platbench.billed_source")
NOT_REPORTED = "not reported"


def billed_text(run: Run) -> str:
    """The 'Billed' cell: what the platform says it billed the run, in its own terms (USD from billed seconds,
    USD from billed units read later, credits), else NOT_REPORTED (billing_notes says why, per platform)."""
    if billed_usd(run) is not None:
        return usd(billed_usd(run), [run])
    if run.m(BILLED_USD) is not None:  # official units × the list price per unit: no † from the price table
        return f"{run.m(BILLED_USD):.4f} ({run.m(BILLED_UNITS):g} {run.tags.get(BILLED_UNIT_TAG, 'units')})"
    if run.m("cost_credits") is not None:
        return f"{run.m('cost_credits'):g} credits"
    return NOT_REPORTED


def billing_notes(runs: Sequence[Run]) -> list[str]:
    """One line per platform of `runs`: what its billed figures cover, or why a run has none (the platform's
    SPEC says what it lacks in billing; one whose bill arrives later says how to read it then)."""
    from platforms.core import pricing, registry
    from platforms.core.api import Feature

    out: dict[str, str] = {}
    for r in runs:
        name = r.tags.get(Tag.PLATFORM) or "?"
        if name in out or name not in registry.names():
            continue
        if r.m(BILLED_USD) is not None:
            out[name] = f"{name}: billed = {r.tags.get(BILLED_COVERS_TAG, '')} (read from {r.tags.get(BILLED_SOURCE_TAG, '?')})"
        elif billed_text(r) == NOT_REPORTED:
            lacks = registry.spec(name).lacks.get(Feature.BILLING) or "it reports no billed figure per run"
            later = f"; `platbench prices billed {name}` reads it once it has arrived" if pricing.shipped(name).billed else ""
            out[name] = f"{name}: not billed per run here: {lacks}{later}"
    return [out[k] for k in sorted(out)]


def price_dates(run: Run) -> str:
    """The date(s) of the price-table entries the run's cost used ('–' without a price)."""
    dates = sorted({inner.split(",")[-2].strip() for inner in PRICE_ITEM_STATUS.findall(run.tags.get(Tag.PRICE_SOURCE) or "")
                    if inner.count(",") >= 2})
    return ", ".join(dates) or "–"
