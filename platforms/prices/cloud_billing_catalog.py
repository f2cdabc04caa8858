"""Google Cloud list prices from the Cloud Billing Catalog API through its official client,
google-cloud-billing's CloudCatalogClient over REST (https://cloud.google.com/billing/v1/how-tos/catalog-api,
https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list).

services.list finds the rule's `service` by display name; services.skus.list answers {skus: [{name, skuId,
description, category, serviceRegions, pricingInfo: [{pricingExpression {usageUnit, tieredRates:
[{startUsageAmount, unitPrice {currencyCode, units, nanos}}]}}]}], nextPageToken} (the client pages). A SKU
of ours is the catalog SKU whose description holds the rule's `words` for its section and SKU (lower case;
"!word": absent) and whose serviceRegions hold the region. Google bills N1 machines per vCPU hour and per GiB
hour, so an n1-TYPE-N machine is N × the `core` SKU + GiB × the `ram` SKU (3.75 GiB a vCPU for standard).
The API takes an API key (PLATBENCH_GCP_API_KEY; else the application-default credentials);
PLATBENCH_GCP_BILLING_ENDPOINT points the client elsewhere (the loopback server in tests/prices).
429 (RESOURCE_EXHAUSTED) is retried with backoff; then one line."""
from __future__ import annotations

import os
import re
from typing import Optional

from platforms.core.price_cache import Fetched, now
from platforms.errors import UserError

API = "Cloud Billing Catalog API"
N1 = re.compile(r"n1-(standard|highmem|highcpu)-(\d+)")
GIB_PER_VCPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}


def client():
    from google.api_core.client_options import ClientOptions
    from google.cloud import billing_v1

    options = {}
    if os.environ.get("PLATBENCH_GCP_BILLING_ENDPOINT"):
        options["api_endpoint"] = os.environ["PLATBENCH_GCP_BILLING_ENDPOINT"]
    if os.environ.get("PLATBENCH_GCP_API_KEY"):
        options["api_key"] = os.environ["PLATBENCH_GCP_API_KEY"]
    return billing_v1.CloudCatalogClient(transport="rest", client_options=ClientOptions(**options))


def _retry():
    from google.api_core import exceptions, retry

    return retry.Retry(predicate=retry.if_exception_type(exceptions.TooManyRequests, exceptions.ResourceExhausted,
                                                         exceptions.ServiceUnavailable),
                       initial=0.2, maximum=10, multiplier=2, timeout=60)


def skus(catalog, service_name: str) -> list:
    """Every SKU of the service, priced in USD."""
    from google.api_core import exceptions
    from google.auth.exceptions import DefaultCredentialsError

    try:
        service = next((s for s in catalog.list_services(retry=_retry()) if s.display_name == service_name), None)
        if service is None:
            raise UserError(f"the Cloud Billing catalog lists no service named {service_name!r}")
        return list(catalog.list_skus(request={"parent": service.name, "currency_code": "USD"}, retry=_retry()))
    except exceptions.GoogleAPICallError as exc:
        raise UserError(f"Cloud Billing Catalog API: {exc.code.name if exc.code else ''} {exc.message}".strip()) from None
    except exceptions.RetryError as exc:
        raise UserError(f"Cloud Billing Catalog API still throttled after retries ({exc.cause})") from None
    except DefaultCredentialsError:
        raise UserError("Cloud Billing Catalog API: no API key (PLATBENCH_GCP_API_KEY) and no application-default "
                        "credentials") from None


def hourly(sku) -> Optional[tuple[float, str]]:
    """(USD per usage unit of the first tier, usage unit) of a SKU's current pricing."""
    for info in sku.pricing_info:
        rates = sorted(info.pricing_expression.tiered_rates, key=lambda r: r.start_usage_amount)
        if rates:
            price = rates[0].unit_price
            return price.units + price.nanos / 1e9, info.pricing_expression.usage_unit
    return None


def find(all_skus, region: str, words: list[str]):
    words = [w.lower() for w in words]
    for s in all_skus:
        text = s.description.lower()
        if region in s.service_regions and all((w[1:] not in text) if w.startswith("!") else (w in text)
                                               for w in words):
            return s
    return None


def fetch(rule: dict, wants: list[tuple[str, str, str]], table=None) -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for (section, region, SKU) triples, by the rule's `service` and `words`."""
    catalog = client()
    all_skus = skus(catalog, rule["service"])
    host = catalog.api_endpoint
    source = host if host.startswith(("http://", "https://")) else f"https://{host}"
    got, missing = [], []
    for section, region, sku in wants:
        words = (rule.get("words") or {}).get(section) or {}
        m = N1.fullmatch(sku)
        if sku in words:
            parts = [(find(all_skus, region, words[sku]), 1.0)]
        elif m and "core" in words and "ram" in words:
            vcpus = int(m.group(2))
            parts = [(find(all_skus, region, words["core"]), vcpus),
                     (find(all_skus, region, words["ram"]), vcpus * GIB_PER_VCPU[m.group(1)])]
        else:
            parts = []
        if not parts or any(s is None for s, _ in parts):
            missing.append(f"{section}/{region}/{sku}: no {rule['service']} SKU for it in {region}")
            continue
        priced = [(s, n, hourly(s)) for s, n in parts]
        if any(p is None for _, _, p in priced):
            missing.append(f"{section}/{region}/{sku}: a {rule['service']} SKU for it has no price")
            continue
        usd = sum(n * p[0] for _, n, p in priced)
        query = "; ".join(f"{s.sku_id} '{s.description}' {p[0]:g} USD/{p[1]} x{n:g}" for s, n, p in priced)
        got.append(Fetched(section, region, sku, round(usd, 6), source, API, query, now()))
    return got, missing
