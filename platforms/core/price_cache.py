"""The price cache: one JSON file per platform under `$PLATBENCH_PRICE_CACHE` (default: `prices/` in
platbench's cache folder, `$PLATBENCH_CACHE` or ~/.cache/platbench), each entry a price as its official
source gave it: section, region, SKU, USD per hour, and where it came from (source URL, API, the query sent,
fetched-at, currency, unit). A refresh replaces the entries it fetched and keeps the others, so an offline
or failed refresh leaves the last cache in use, with its age shown."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

CACHE_ENV = "PLATBENCH_PRICE_CACHE"


@dataclass(frozen=True)
class Fetched:
    """One price as an official source gave it (USD per hour of one SKU)."""

    section: str          # training | training_spot | endpoint (platforms/core/pricing.py SECTIONS)
    region: str
    sku: str
    per_hour: float       # in `currency` (USD; Apolo: credits)
    source: str           # the URL the figure came from (the API endpoint queried)
    api: str              # which official API, e.g. "AWS Price List Query API"
    query: str            # what was asked (filters, SQL), so the figure can be fetched again by hand
    fetched_at: str       # UTC, ISO 8601
    currency: str = "USD"
    unit: str = "hour"
    status: str = "verified"  # unverified where one factor came from no official source (note says which)
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.section, self.region, self.sku


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("PLATBENCH_CACHE") or Path.home() / ".cache" / "platbench"
    return Path(base) / "prices"


def path(platform: str) -> Path:
    return cache_dir() / f"{platform}.json"


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def read(platform: str) -> list[Fetched]:
    """The cached prices of `platform` (none when never refreshed; an unreadable file counts as none)."""
    try:
        data = json.loads(path(platform).read_text())
        return [Fetched(**e) for e in data["entries"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write(platform: str, fetched: Iterable[Fetched]) -> Path:
    """Merge `fetched` into the platform's cache (same section/region/SKU replaced), atomically."""
    entries = {e.key: e for e in read(platform)}
    entries.update({e.key: e for e in fetched})
    p = path(platform)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"platform": platform, "entries": [asdict(e) for e in sorted(entries.values(),
                                                                                        key=lambda e: e.key)]},
                              indent=1) + "\n")
    tmp.replace(p)
    return p


def age_days(fetched_at: str, at: Optional[datetime] = None) -> float:
    when = datetime.fromisoformat(fetched_at)
    return ((at or datetime.now(timezone.utc)) - when).total_seconds() / 86400


def age_text(fetched_at: str) -> str:
    days = age_days(fetched_at)
    return "fetched today" if days < 1 else f"{days:.0f} day{'s' if round(days) != 1 else ''} old"
