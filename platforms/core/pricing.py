"""Price tables: each platform's own `platforms/<name>/prices.yaml`, list prices per hour with a source URL,
date and status per entry, in sections `training` (on demand), `training_spot` and `endpoint` (hosting).

cost = billed seconds × price per hour / 3600, shown beside the list-price estimate (the same run's
wall-clock seconds on the instance × the same price), so spot savings and billing granularity show up."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from platforms.errors import UserError

SECTIONS = ("training", "training_spot", "endpoint")


@dataclass(frozen=True)
class Price:
    platform: str
    region: str
    sku: str
    usd_per_hour: float
    source: str
    date: str
    status: str  # verified | unverified


@dataclass(frozen=True)
class Quote:
    """A job's price per hour, made of one or more priced items (machine, accelerators) × counts."""

    usd_per_hour: float
    items: tuple[tuple[Price, int], ...]

    @property
    def sources(self) -> str:
        return "; ".join(f"{p.sku} {p.usd_per_hour}/h ×{n} ({p.source}, {p.date}, {p.status})" for p, n in self.items)

    def cost(self, seconds: Optional[float]) -> Optional[float]:
        return None if seconds is None else seconds * self.usd_per_hour / 3600.0


def table_path(platform: str) -> Path:
    from platforms.core import registry

    return registry.spec(platform).directory / "prices.yaml"


@lru_cache(maxsize=None)
def table(platform: str) -> dict:
    """section → region → SKU → entry, checked: every entry has a price, source, date and status."""
    import yaml

    path = table_path(platform)
    data = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    for section, regions in data.items():
        if section not in SECTIONS:
            raise UserError(f"{path}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        for region, skus in (regions or {}).items():
            for sku, entry in (skus or {}).items():
                missing = {"usd_per_hour", "source", "date", "status"} - set(entry)
                if missing:
                    raise UserError(f"{path}: {section}/{region}/{sku} lacks {', '.join(sorted(missing))}")
    return data


def lookup(platform: str, region: str, sku: str, section: str = "training") -> Optional[Price]:
    entry = ((table(platform).get(section) or {}).get(region) or {}).get(sku)
    if entry is None:
        return None
    return Price(platform, region, sku, float(entry["usd_per_hour"]), str(entry["source"]), str(entry["date"]),
                 str(entry["status"]))


def quote(platform: str, region: str, items: list[tuple[str, int]], section: str = "training") -> Optional[Quote]:
    """Price per hour of `items` [(sku, count)] from one section, or None when any item is not in it."""
    priced = []
    for sku, count in items:
        if count <= 0:
            continue
        price = lookup(platform, region, sku, section)
        if price is None:
            return None
        priced.append((price, count))
    return Quote(sum(p.usd_per_hour * n for p, n in priced), tuple(priced))


def known(platform: str, section: str = "training") -> dict[str, list[str]]:
    """region → priced SKUs, for error messages."""
    return {region: sorted(skus) for region, skus in (table(platform).get(section) or {}).items()}
