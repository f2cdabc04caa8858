"""AWS list prices from the Price List Query API: boto3's `pricing` client, GetProducts
(https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html).

Each answer's PriceList is a list of JSON documents, one product each, in the aws_v1 format
(https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-files.html):
`product.attributes` (usagetype, instanceType, regionCode …) and `terms.OnDemand.<offer>.priceDimensions
.<rate>.{unit, pricePerUnit.USD, description}`; NextToken pages. The API needs AWS credentials and answers
in us-east-1 (also eu-central-1, ap-south-1); AWS_ENDPOINT_URL_PRICING points boto3 elsewhere (the
loopback server in tests/prices). Throttling (ThrottlingException) is retried by botocore's standard
retry mode; what still fails is one line and the cache stays as it was.

Which product is a SKU of ours:
- SageMaker: usage type `<region prefix>-Train:<instance>` (training) or `-Host:<instance>` (real-time
  hosting), as the SageMaker price list names them;
- EC2 (Databricks' and SkyPilot's VMs): instanceType, Linux, shared tenancy, no pre-installed software,
  capacity status Used (the plain on-demand box);
- Rekognition Custom Labels: the region's product whose price dimension says Custom Labels and training
  (or inference)."""
from __future__ import annotations

import json
from typing import Callable, Iterable, Optional

from platforms.errors import UserError
from platforms.prices.cache import Fetched, now

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
        raise UserError(f"aws: {service} GetProducts: {err.get('Code')}: {err.get('Message', '')}".strip()) from None
    except BotoCoreError as exc:
        raise UserError(f"aws: {service} GetProducts: {exc}") from None
    return out


def on_demand_hourly(product: dict, match: Callable[[dict], bool] = lambda d: True) -> Optional[tuple[float, str]]:
    """(USD per hour, unit) of the product's on-demand price dimension that `match`es, or None."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd is not None and dim.get("unit") in HOURLY_UNITS and match(dim):
                return float(usd), dim["unit"]
    return None


def _fetched(section, region, sku, found, service, filters, source) -> Fetched:
    usd, unit = found
    return Fetched(section, region, sku, usd, source, API, f"{service} {json.dumps(filters, sort_keys=True)}", now(),
                   unit="hour" if unit in HOURLY_UNITS else unit)


def endpoint(pricing) -> str:
    return pricing.meta.endpoint_url


def sagemaker(wants: Iterable[tuple[str, str, str]], pricing=None) -> tuple[list[Fetched], list[str]]:
    """(prices, what was not found) for SageMaker (section, region, instance type) triples."""
    pricing = pricing or client()
    got, missing = [], []
    for section, region, sku in wants:
        if region not in USAGE_PREFIX:
            missing.append(f"{section}/{region}/{sku}: no usage-type prefix known for region {region}")
            continue
        kind = "Host" if section == "endpoint" else "Train"
        filters = {"usagetype": f"{USAGE_PREFIX[region]}-{kind}:{sku}"}
        found = next((f for f in map(on_demand_hourly, products(pricing, "AmazonSageMaker", filters)) if f), None)
        if found is None or section == "training_spot":  # managed spot: the discount is in the billed seconds
            missing.append(f"{section}/{region}/{sku}: no AmazonSageMaker product with usagetype {filters['usagetype']}")
            continue
        got.append(_fetched(section, region, sku, found, "AmazonSageMaker", filters, endpoint(pricing)))
    return got, missing


def ec2(wants: Iterable[tuple[str, str, str]], pricing=None) -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for EC2 instance types: Linux, shared tenancy, on demand."""
    pricing = pricing or client()
    got, missing = [], []
    for section, region, sku in wants:
        filters = {"regionCode": region, "instanceType": sku, "operatingSystem": "Linux", "tenancy": "Shared",
                   "preInstalledSw": "NA", "capacitystatus": "Used"}
        found = next((f for f in map(on_demand_hourly, products(pricing, "AmazonEC2", filters)) if f), None)
        if found is None:
            missing.append(f"{section}/{region}/{sku}: no AmazonEC2 Linux on-demand product for {sku} in {region}")
            continue
        got.append(_fetched(section, region, sku, found, "AmazonEC2", filters, endpoint(pricing)))
    return got, missing


REKOGNITION_WORDS = {"training": ("custom labels", "train"), "endpoint": ("custom labels", "inference")}


def rekognition(wants: Iterable[tuple[str, str, str]], pricing=None) -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for Rekognition Custom Labels: training hours and inference-unit hours."""
    pricing = pricing or client()
    got, missing = [], []
    for section, region, sku in wants:
        words = REKOGNITION_WORDS.get(section)
        filters = {"regionCode": region}
        match = (lambda d, w=words: all(x in d.get("description", "").lower() for x in w)) if words else None
        found = next((f for p in products(pricing, "AmazonRekognition", filters) if match
                      for f in [on_demand_hourly(p, match)] if f), None)
        if found is None:
            missing.append(f"{section}/{region}/{sku}: no AmazonRekognition hourly price described as "
                           f"{' + '.join(words or ('?',))} in {region}")
            continue
        got.append(_fetched(section, region, sku, found, "AmazonRekognition", filters, endpoint(pricing)))
    return got, missing
