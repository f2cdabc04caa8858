"""Price tables: each platform's own `platforms/<name>/prices.yaml`, list prices per hour with a source URL,
date and status per entry, in sections `training` (on demand), `training_spot` and `endpoint` (hosting).

A Quote is the price per hour of the WHOLE job: every priced item (machine, accelerators) × its count,
instances or replicas included. The instance count is therefore applied here and only here; a launcher
multiplies the quote by the job's own seconds (wall-clock seconds of the job, not instance-seconds):

    cost = billed seconds × quote.usd_per_hour / 3600

shown beside the list-price estimate (the same run's seconds on the instance × the on-demand quote), so
spot savings and billing granularity show up. The quote says which price it used (`basis`), recorded in
the `platbench.price_basis` tag: `spot`, `on-demand (no spot price)` for a spot run the table has no spot
price for, or `on-demand`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional

from platforms.errors import UserError

SECTIONS = ("training", "training_spot", "endpoint", "request")
HOURLY = SECTIONS[:3]  # USD per hour; `request` entries are USD per request (a service billed per call)
REFRESH = "refresh"  # a table's rules for its official price source (platforms/prices/refresh.py)
BILLED = "billed"    # where the platform reports what it billed a run, read later (platforms/prices/billed.py)

# the values of the platbench.price_basis tag (platforms/report reads exactly these)
SPOT = "spot"
ON_DEMAND_NO_SPOT = "on-demand (no spot price)"
ON_DEMAND = "on-demand"


@dataclass(frozen=True)
class Price:
    platform: str
    region: str
    sku: str
    usd_per_hour: float
    source: str
    date: str
    status: str  # verified | unverified
    section: str = "training"


@dataclass(frozen=True)
class Quote:
    """A whole job's price per hour: one or more priced items (machine, accelerators) × their counts."""

    usd_per_hour: float
    items: tuple[tuple[Price, int], ...]
    basis: str = ON_DEMAND

    @property
    def sources(self) -> str:
        # format read back by platforms/report (PRICE_ITEM): 'SKU P/h ×N (source, date, status)' per item
        return "; ".join(f"{p.sku} {p.usd_per_hour}/h ×{n} ({p.source}, {p.date}, {p.status})" for p, n in self.items)

    @property
    def verified(self) -> bool:
        return bool(self.items) and all(p.status == "verified" for p, _ in self.items)

    def cost(self, seconds: Optional[float]) -> Optional[float]:
        """USD for `seconds` of the job (wall-clock, NOT × instance count: the quote already holds it)."""
        return None if seconds is None else seconds * self.usd_per_hour / 3600.0


def table_path(platform: str) -> Path:
    from platforms.core import registry

    return registry.spec(platform).directory / "prices.yaml"


class PriceTable:
    """One prices.yaml, checked on load: section → region → SKU → entry, every entry with a price, source,
    date and status, and an unverified one with a note saying what was found instead."""

    def __init__(self, path: Path, platform: str = ""):
        import yaml

        self.path, self.platform = Path(path), platform or Path(path).parent.name
        data = (yaml.safe_load(self.path.read_text()) or {}) if self.path.is_file() else {}
        # how `platbench prices refresh` asks the official source for these prices (platforms/prices/refresh.py)
        self.refresh: list[dict] = data.pop(REFRESH, None) or []
        self.billed: list[dict] = data.pop(BILLED, None) or []
        for section, regions in data.items():
            if section not in SECTIONS:
                raise UserError(f"{path}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
            for region, skus in (regions or {}).items():
                for sku, entry in (skus or {}).items():
                    where = f"{path}: {section}/{region}/{sku}"
                    unit = "usd_per_hour" if section in HOURLY else "usd_per_request"
                    missing = {unit, "source", "date", "status"} - set(entry)
                    if missing:
                        raise UserError(f"{where} lacks {', '.join(sorted(missing))}")
                    if entry["status"] not in ("verified", "unverified"):
                        raise UserError(f"{where}: status must be verified or unverified")
                    if entry["status"] == "unverified" and not entry.get("note"):
                        raise UserError(f"{where} is unverified without a note saying what was found")
        self.data = data

    def overlay(self, fetched) -> "PriceTable":
        """The table with the cached official prices `fetched` (platforms/core/price_cache.Fetched) in place of
        the typed entries of the same section/region/SKU; a price in another currency is left out."""
        for e in fetched:
            if e.currency != "USD" or e.section not in HOURLY:
                continue
            entry = {"usd_per_hour": e.per_hour, "source": e.source, "date": e.fetched_at[:10],
                     "status": e.status, "note": e.note or f"{e.api}: {e.query}", "fetched_at": e.fetched_at}
            self.data.setdefault(e.section, {}).setdefault(e.region, {})[e.sku] = entry
        return self

    def lookup(self, region: str, sku: str, section: str = "training") -> Optional[Price]:
        entry = ((self.data.get(section) or {}).get(region) or {}).get(sku)
        if entry is None:
            return None
        return Price(self.platform, region, sku, float(entry["usd_per_hour"]), str(entry["source"]),
                     str(entry["date"]), str(entry["status"]), section)

    def per_request(self, region: str, sku: str) -> Optional[Price]:
        """A price per request (section `request`), as a Price whose `usd_per_hour` field holds USD per request."""
        entry = ((self.data.get("request") or {}).get(region) or {}).get(sku)
        if entry is None:
            return None
        return Price(self.platform, region, sku, float(entry["usd_per_request"]), str(entry["source"]),
                     str(entry["date"]), str(entry["status"]), "request")

    def quote(self, region: str, items: list[tuple[str, int]], section: str = "training") -> Optional[Quote]:
        """Price per hour of the whole job `items` [(sku, count)] from one section (count applied here,
        once), or None when any item is not in it."""
        priced = []
        for sku, count in items:
            if count <= 0:
                continue
            price = self.lookup(region, sku, section)
            if price is None:
                return None
            priced.append((price, count))
        return Quote(sum(p.usd_per_hour * n for p, n in priced), tuple(priced),
                     SPOT if section == "training_spot" else ON_DEMAND)

    def training_quote(self, region: str, items: list[tuple[str, int]], spot: bool) -> Optional[Quote]:
        """The quote a training job's cost is computed with. A spot/preemptible job is priced from
        `training_spot` when that section prices every item (basis `spot`); otherwise at the on-demand
        price, labelled `on-demand (no spot price)` so nobody reads it as a spot bill. A job priced half
        spot, half on demand would carry a basis that is neither, so it is all or nothing."""
        if spot:
            found = self.quote(region, items, section="training_spot")
            if found is not None:
                return found
        found = self.quote(region, items)
        if found is None:
            return None
        return replace(found, basis=ON_DEMAND_NO_SPOT if spot else ON_DEMAND)


@lru_cache(maxsize=None)
def of(platform: str) -> PriceTable:
    from platforms.core import price_cache as cache

    return PriceTable(table_path(platform), platform).overlay(cache.read(platform))


def shipped(platform: str) -> PriceTable:
    """The platform's prices.yaml alone, without the cache: what a refresh asks the sources for."""
    return PriceTable(table_path(platform), platform)


def forget() -> None:
    """Drop the tables read so far (after a refresh wrote the cache)."""
    of.cache_clear()


def table(platform: str) -> dict:
    """section → region → SKU → entry of a platform's prices.yaml (checked)."""
    return of(platform).data


def lookup(platform: str, region: str, sku: str, section: str = "training") -> Optional[Price]:
    return of(platform).lookup(region, sku, section)


def quote(platform: str, region: str, items: list[tuple[str, int]], section: str = "training") -> Optional[Quote]:
    return of(platform).quote(region, items, section)


def per_request(platform: str, region: str, sku: str) -> Optional[Price]:
    return of(platform).per_request(region, sku)


def training_quote(platform: str, region: str, items: list[tuple[str, int]], spot: bool) -> Optional[Quote]:
    return of(platform).training_quote(region, items, spot)


def known(platform: str, section: str = "training") -> dict[str, list[str]]:
    """region → priced SKUs, for error messages."""
    return {region: sorted(skus) for region, skus in (table(platform).get(section) or {}).items()}
