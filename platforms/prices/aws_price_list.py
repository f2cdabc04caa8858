"""AWS list prices from the Price List Query API: boto3's `pricing` client, GetProducts
(https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html).

Each answer's PriceList is a list of JSON documents, one product each, in the aws_v1 format
(https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-files.html):
`product.attributes` (usagetype, instanceType, regionCode …) and `terms.OnDemand.<offer>.priceDimensions
.<rate>.{unit, pricePerUnit.USD, description}`; NextToken pages. The API needs AWS credentials and answers
in us-east-1 (also eu-central-1, ap-south-1); AWS_ENDPOINT_URL_PRICING points boto3 elsewhere (the
loopback server in tests/prices). Throttling (ThrottlingException) is retried by botocore's standard
retry mode; what still fails is one line and the cache stays as it was.

A table's rule (its prices.yaml `refresh`) says which product is one of its SKUs: `service` (the service
code), `filters` (TERM_MATCH, each value a template of {region}, {sku} and {usage_prefix}, the price list's
usage-type prefix of the region: USE1 for us-east-1) and optionally `description` (words every matching
price dimension's description holds, lower case)."""
from __future__ import annotations

import json
from typing import Callable, Optional

from platforms.core.price_cache import Fetched, now
from platforms.errors import UserError

API = "AWS Price List Query API"
PRICING_REGION = "us-east-1"
# the price list's usage-type prefix per region (US East (N. Virginia) is USE1, Europe (Ireland) EU …)
USAGE_PREFIX = {"us-east-1": "USE1", "us-east-2": "USE2", "us-west-1": "USW1", "us-west-2": "USW2",
                "eu-west-1": "EU", "eu-west-2": "EUW2", "eu-central-1": "EUC1", "ap-northeast-1": "APN1",
                "ap-southeast-1": "APS1", "ap-southeast-2": "APS2", "ap-south-1": "APS3"}
HOURLY_UNITS = ("Hrs", "Hours", "Hour", "hour")


def client():
    import boto3
    from botocore.config import Config

    return boto3.client("pricing", region_name=PRICING_REGION,
                        config=Config(retries={"mode": "standard", "max_attempts": 6}))


def products(pricing, service: str, filters: dict[str, str]) -> list[dict]:
    """Every product of `service` matching `filters` (TERM_MATCH each), all pages."""
    from botocore.exceptions import BotoCoreError, ClientError

    args = {"ServiceCode": service, "FormatVersion": "aws_v1",
            "Filters": [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()]}
    out = []
    try:
        for page in pricing.get_paginator("get_products").paginate(**args):
            out += [json.loads(doc) if isinstance(doc, str) else doc for doc in page.get("PriceList", [])]
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise UserError(f"{service} GetProducts: {err.get('Code')}: {err.get('Message', '')}".strip()) from None
    except BotoCoreError as exc:
        raise UserError(f"{service} GetProducts: {exc}") from None
    return out


def on_demand_hourly(product: dict, match: Callable[[dict], bool] = lambda d: True) -> Optional[tuple[float, str]]:
    """(USD per hour, unit) of the product's on-demand price dimension that `match`es, or None."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd is not None and dim.get("unit") in HOURLY_UNITS and match(dim):
                return float(usd), dim["unit"]
    return None


def fetch(rule: dict, wants: list[tuple[str, str, str]], table=None) -> tuple[list[Fetched], list[str]]:
    """(prices, what was not found) for (section, region, SKU) triples, by the table's rule."""
    pricing = client()
    service, words = rule["service"], [w.lower() for w in rule.get("description", [])]
    got, missing = [], []
    for section, region, sku in wants:
        filters = {k: str(v).format(region=region, sku=sku, usage_prefix=USAGE_PREFIX.get(region, "?"))
                   for k, v in rule["filters"].items()}

        def match(dim: dict) -> bool:
            return all(w in dim.get("description", "").lower() for w in words)
        found = next((f for p in products(pricing, service, filters) for f in [on_demand_hourly(p, match)] if f), None)
        if found is None:
            missing.append(f"{section}/{region}/{sku}: no {service} hourly on-demand product with {json.dumps(filters)}"
                           + (f" described as {' + '.join(words)}" if words else ""))
            continue
        got.append(Fetched(section, region, sku, found[0], pricing.meta.endpoint_url, API,
                           f"{service} {json.dumps(filters, sort_keys=True)}", now()))
    return got, missing
