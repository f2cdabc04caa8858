"""Azure list prices from the Azure Retail Prices API: public REST, no credentials
(https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices).

GET https://prices.azure.com/api/retail/prices?$filter=… answers {BillingCurrency, CustomerEntityId,
CustomerEntityType, Items: [{currencyCode, retailPrice, unitPrice, armRegionName, armSkuName, productName,
skuName, meterName, serviceName, unitOfMeasure, type, …}], NextPageLink, Count}; NextPageLink is the next
page's whole URL, null on the last page. A table's rule names the `service_name` (Virtual Machines for
compute billed as the VMs it runs on); the price is the Linux (a productName without "Windows"),
pay-as-you-go (type Consumption), hourly meter: the plain one, or the "Low Priority" one for
`training_spot`. PLATBENCH_AZURE_PRICES_URL points the source elsewhere (the loopback server in
tests/prices). A 429 answer is retried after its Retry-After seconds (a few times); then one line."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from platforms.core.price_cache import Fetched, now
from platforms.errors import UserError

API = "Azure Retail Prices API"
URL = "https://prices.azure.com/api/retail/prices"
RETRIES = 5


def base_url() -> str:
    return os.environ.get("PLATBENCH_AZURE_PRICES_URL") or URL


def get(url: str) -> dict:
    for attempt in range(RETRIES + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 429 and attempt < RETRIES:
                time.sleep(min(float(exc.headers.get("Retry-After") or 2 ** attempt), 60))
                continue
            raise UserError(f"Retail Prices API answered HTTP {exc.code}"
                            + (" (throttled; try again later)" if exc.code == 429 else "")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"Retail Prices API not reachable: {getattr(exc, 'reason', exc)}") from None
    raise AssertionError("unreachable")


def items(filter_: str) -> list[dict]:
    """Every item the filter matches, following NextPageLink."""
    url: Optional[str] = f"{base_url()}?{urllib.parse.urlencode({'$filter': filter_})}"
    out = []
    while url:
        page = get(url)
        out += page.get("Items", [])
        url = page.get("NextPageLink")
    return out


def pick(found: list[dict], section: str) -> Optional[dict]:
    """The Linux pay-as-you-go hourly meter for `section`: low priority for training_spot, else the plain one."""
    def linux_hourly(i):
        return ("windows" not in i.get("productName", "").lower() and i.get("type") == "Consumption"
                and i.get("unitOfMeasure") == "1 Hour" and i.get("currencyCode", "USD") == "USD")
    low = [i for i in found if linux_hourly(i) and "low priority" in i.get("skuName", "").lower()]
    plain = [i for i in found if linux_hourly(i) and not any(w in i.get("skuName", "").lower()
                                                               for w in ("low priority", "spot"))]
    chosen = low if section == "training_spot" else plain
    return chosen[0] if chosen else None


def fetch(rule: dict, wants: list[tuple[str, str, str]], table=None) -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for (section, region, armSkuName) triples."""
    got, missing = [], []
    for section, region, sku in wants:
        query = (f"serviceName eq '{rule['service_name']}' and armRegionName eq '{region}' and armSkuName eq '{sku}' "
                 "and priceType eq 'Consumption'")
        item = pick(items(query), section)
        if item is None:
            missing.append(f"{section}/{region}/{sku}: no Linux pay-as-you-go "
                           f"{'low-priority ' if section == 'training_spot' else ''}meter for {sku} in {region}")
            continue
        got.append(Fetched(section, region, sku, float(item["retailPrice"]), base_url(), API, f"$filter={query}",
                           now(), item.get("currencyCode", "USD"), "hour",
                           note=f"meter {item.get('meterName')!r}, {item.get('productName')}"))
    return got, missing
