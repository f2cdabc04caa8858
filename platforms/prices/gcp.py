"""Google Cloud list prices from the Cloud Billing Catalog API through its official client,
google-cloud-billing's CloudCatalogClient over REST (https://cloud.google.com/billing/v1/how-tos/catalog-api,
https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list).

services.list finds the "Vertex AI" service; services.skus.list answers {skus: [{name, skuId, description,
category {resourceFamily, resourceGroup, usageType}, serviceRegions, pricingInfo: [{pricingExpression
{usageUnit, tieredRates: [{startUsageAmount, unitPrice {currencyCode, units, nanos}}]}}]}], nextPageToken}
(the client pages). Vertex AI bills N1 machines per vCPU hour and per GiB hour of memory, so a machine
type's price is vCPUs × the core SKU + GiB × the RAM SKU (n1-standard-N: N vCPUs, 3.75 N GiB); an
accelerator and an AutoML node hour are one SKU each, chosen by the words of its description and the region
in its serviceRegions. The API takes an API key (PLATBENCH_GCP_API_KEY; else the application-default
credentials); PLATBENCH_GCP_BILLING_ENDPOINT points the client elsewhere (the loopback server in
tests/prices). 429 (RESOURCE_EXHAUSTED) is retried with backoff a few times; then one line."""
from __future__ import annotations

import os
import re
from typing import Iterable, Optional

from platforms.errors import UserError
from platforms.prices.cache import Fetched, now

API = "Cloud Billing Catalog API"
SERVICE = "Vertex AI"
N1 = re.compile(r"n1-(standard|highmem|highcpu)-(\d+)")
GIB_PER_VCPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
# words every description of the SKU holds (lower case), per section; '!word' must be absent
WORDS = {
    ("training", "core"): ("training", "n1 predefined instance core"),
    ("training", "ram"): ("training", "n1 predefined instance ram"),
    ("endpoint", "core"): ("prediction", "n1 predefined instance core", "!batch"),
    ("endpoint", "ram"): ("prediction", "n1 predefined instance ram", "!batch"),
}
ACCELERATOR_WORDS = {"NVIDIA_TESLA_T4": "tesla t4", "NVIDIA_TESLA_V100": "tesla v100", "NVIDIA_TESLA_P100": "tesla p100",
                     "NVIDIA_TESLA_A100": "a100", "NVIDIA_L4": "nvidia l4"}
AUTOML_WORDS = {"training": ("automl", "image", "classification", "training"),
                "endpoint": ("automl", "image", "classification", "!training")}


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


def skus(catalog) -> list:
    """Every SKU of the Vertex AI service, priced in USD."""
    from google.api_core import exceptions
    from google.auth.exceptions import DefaultCredentialsError

    try:
        service = next((s for s in catalog.list_services(retry=_retry()) if s.display_name == SERVICE), None)
        if service is None:
            raise UserError(f"gcp: the Cloud Billing catalog lists no service named {SERVICE!r}")
        return list(catalog.list_skus(request={"parent": service.name, "currency_code": "USD"}, retry=_retry()))
    except exceptions.GoogleAPICallError as exc:
        raise UserError(f"gcp: Cloud Billing Catalog API: {exc.code.name if exc.code else ''} {exc.message}".strip()) from None
    except exceptions.RetryError as exc:
        raise UserError(f"gcp: Cloud Billing Catalog API still throttled after retries ({exc.cause})") from None
    except DefaultCredentialsError:
        raise UserError("gcp: no API key (PLATBENCH_GCP_API_KEY) and no application-default credentials") from None


def hourly(sku) -> Optional[tuple[float, str]]:
    """(USD per usage unit of the first tier, usage unit) of a SKU's current pricing."""
    for info in sku.pricing_info:
        rates = sorted(info.pricing_expression.tiered_rates, key=lambda r: r.start_usage_amount)
        if rates:
            price = rates[0].unit_price
            return price.units + price.nanos / 1e9, info.pricing_expression.usage_unit
    return None


def find(all_skus, region: str, words: tuple[str, ...]):
    for s in all_skus:
        text = s.description.lower()
        if region in s.service_regions and all((w[1:] not in text) if w.startswith("!") else (w in text)
                                               for w in words):
            return s
    return None


def vertex(wants: Iterable[tuple[str, str, str]], catalog=None, automl: bool = False) -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for Vertex AI machine types, accelerators and AutoML node hours."""
    catalog = catalog or client()
    all_skus = skus(catalog)
    host = catalog.api_endpoint
    source = host if host.startswith(("http://", "https://")) else f"https://{host}"
    got, missing = [], []
    for section, region, sku in wants:
        sec = "training" if section.startswith("training") else section
        parts: list[tuple[object, float]] = []
        m = N1.fullmatch(sku)
        if automl:
            parts = [(find(all_skus, region, AUTOML_WORDS.get(sec, ("?",))), 1.0)]
        elif m:
            vcpus = int(m.group(2))
            parts = [(find(all_skus, region, WORDS[(sec, "core")]), vcpus),
                     (find(all_skus, region, WORDS[(sec, "ram")]), vcpus * GIB_PER_VCPU[m.group(1)])]
        elif sku in ACCELERATOR_WORDS:
            parts = [(find(all_skus, region, (sec if sec == "training" else "prediction", ACCELERATOR_WORDS[sku])), 1.0)]
        if section == "training_spot" or not parts or any(s is None for s, _ in parts):
            missing.append(f"{section}/{region}/{sku}: no {SERVICE} SKU for it in {region}")
            continue
        priced = [(s, n, hourly(s)) for s, n in parts]
        if any(p is None for _, _, p in priced):
            missing.append(f"{section}/{region}/{sku}: a {SERVICE} SKU for it has no price")
            continue
        usd = sum(n * p[0] for _, n, p in priced)
        query = "; ".join(f"{s.sku_id} '{s.description}' {p[0]:g} USD/{p[1]} x{n:g}" for s, n, p in priced)
        got.append(Fetched(section, region, sku, round(usd, 6), source, API, query, now()))
    return got, missing
