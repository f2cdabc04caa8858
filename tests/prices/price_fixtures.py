"""The loopback price server and a platbench pointed at it (every official source's endpoint setting), with
its own price cache per test. Not a conftest.py: pytest would register it as the module `conftest` and hide
tests/conftest.py from every test that imports its helpers in the same worker."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from price_servers import PriceServer

# a figure the loopback catalog gives for a shipped entry: visibly not the typed one
FACTOR = 1.25
# entries the loopback catalog leaves out: a missing SKU per source
MISSING = {("sagemaker", "training", "ml.p3.2xlarge"), ("azureml", "endpoint", "Standard_DS3_v2"),
           ("vertex", "training", "NVIDIA_TESLA_V100")}


@pytest.fixture(scope="session")
def server():
    s = PriceServer()
    _catalog(s)
    yield s
    s.close()


@pytest.fixture
def priced(server, tmp_path, monkeypatch):
    """platbench's price sources pointed at the loopback server; a fresh cache."""
    from platforms.core import pricing

    for k, v in {"AWS_ENDPOINT_URL_PRICING": server.url, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "x",
                 "AWS_MAX_ATTEMPTS": "", "PLATBENCH_AZURE_PRICES_URL": f"{server.url}/api/retail/prices",
                 "PLATBENCH_GCP_BILLING_ENDPOINT": server.url, "PLATBENCH_GCP_API_KEY": "test-key",
                 "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "dapi-test", "DATABRICKS_WAREHOUSE_ID": "wh1",
                 "PLATBENCH_PRICE_CACHE": str(tmp_path / "prices")}.items():
        if v:
            monkeypatch.setenv(k, v)
        else:
            monkeypatch.delenv(k, raising=False)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    pricing.forget()
    with server.lock:
        server.faults.clear()
    yield server
    pricing.forget()


def entries(platform: str) -> list[tuple[str, str, str]]:
    """(section, region, SKU) of every entry of the platform's shipped prices.yaml."""
    from platforms.core import pricing

    return [(section, region, sku) for section, regions in pricing.shipped(platform).data.items()
            for region, skus in regions.items() for sku in skus]


def typed(platform: str, section: str, region: str, sku: str) -> float:
    from platforms.core import pricing

    return float(pricing.shipped(platform).data[section][region][sku]["usd_per_hour"])


def _catalog(s: PriceServer) -> None:
    from price_servers import aws_product, gcp_sku

    prefix = {"us-east-1": "USE1"}
    for section, region, sku in entries("sagemaker"):
        if ("sagemaker", section, sku) in MISSING:
            continue
        kind = "Host" if section == "endpoint" else "Train"
        s.aws.append(aws_product("AmazonSageMaker", {"usagetype": f"{prefix[region]}-{kind}:{sku}", "regionCode": region,
                                                     "instanceName": sku}, FACTOR * typed("sagemaker", section, region, sku)))
        # a decoy: the same instance's notebook price must not be taken for training
        s.aws.append(aws_product("AmazonSageMaker", {"usagetype": f"{prefix[region]}-Notebk:{sku}", "regionCode": region},
                                 99.0))
    ec2 = [("databricks", *e) for e in entries("databricks") if not e[2].endswith(" DBU")] + \
        [("skypilot", *e) for e in entries("skypilot")]
    seen = set()
    for name, section, region, sku in ec2:  # one product per VM: both tables price it at the same figure
        if (region, sku) in seen:
            continue
        seen.add((region, sku))
        attrs = {"regionCode": region, "instanceType": sku, "operatingSystem": "Linux", "tenancy": "Shared",
                 "preInstalledSw": "NA", "capacitystatus": "Used"}
        s.aws.append(aws_product("AmazonEC2", attrs, FACTOR * typed(name, section, region, sku)))
        s.aws.append(aws_product("AmazonEC2", {**attrs, "operatingSystem": "Windows"}, 99.0))
    for section, region, sku in entries("rekognition"):
        what = "training" if section == "training" else "inference"
        s.aws.append(aws_product("AmazonRekognition", {"regionCode": region},
                                 FACTOR * typed("rekognition", section, region, sku),
                                 description=f"Amazon Rekognition Custom Labels {what} per hour"))
    s.aws.append(aws_product("AmazonRekognition", {"regionCode": "us-east-1"}, 0.001, unit="Images",
                             description="Amazon Rekognition image analysis, per image"))
    for section, region, sku in entries("azureml"):
        if ("azureml", section, sku) in MISSING:
            continue
        usd = FACTOR * typed("azureml", section, region, sku)
        base = {"currencyCode": "USD", "armRegionName": region, "location": "US East", "armSkuName": sku,
                "serviceName": "Virtual Machines", "serviceFamily": "Compute", "unitOfMeasure": "1 Hour",
                "type": "Consumption", "priceType": "Consumption", "isPrimaryMeterRegion": True,
                "effectiveStartDate": "2026-12-01T00:00:00Z", "meterId": str(__import__("uuid").uuid4())}
        size = sku.removeprefix("Standard_").replace("_", " ")
        for product, sku_name, price in ((f"Virtual Machines {size} Series Windows", size, 2 * usd),
                                         (f"Virtual Machines {size} Series", f"{size} Spot", usd / 5),
                                         (f"Virtual Machines {size} Series", f"{size} Low Priority", usd / 4),
                                         (f"Virtual Machines {size} Series", size, usd)):
            item = {**base, "productName": product, "skuName": sku_name, "meterName": sku_name,
                    "retailPrice": round(price, 6), "unitPrice": round(price, 6)}
            if item not in s.azure:
                s.azure.append(item)
    regions = ["us-central1", "us-east1"]
    # per vCPU and per GiB: n1-standard-4 = 4 cores + 15 GiB, priced so that it comes to FACTOR × the typed figure
    n1 = typed("vertex", "training", "us-central1", "n1-standard-4") * FACTOR
    n1p = typed("vertex", "endpoint", "us-central1", "n1-standard-4") * FACTOR
    s.gcp_skus += [gcp_sku("Custom Training N1 Predefined Instance Core running in Americas", regions, n1 / 8),
                   gcp_sku("Custom Training N1 Predefined Instance Ram running in Americas", regions, n1 / 30, "GiBy.h"),
                   gcp_sku("Online Prediction N1 Predefined Instance Core running in Americas", regions, n1p / 8),
                   gcp_sku("Online Prediction N1 Predefined Instance Ram running in Americas", regions, n1p / 30, "GiBy.h"),
                   gcp_sku("Batch Prediction N1 Predefined Instance Core running in Americas", regions, 9.0),
                   gcp_sku("Custom Training Nvidia Tesla T4 GPU running in Americas", regions,
                           FACTOR * typed("vertex", "training", "us-central1", "NVIDIA_TESLA_T4")),
                   gcp_sku("Custom Training Nvidia Tesla T4 GPU running in Europe", ["europe-west4"], 7.0),
                   gcp_sku("AutoML Image Classification Model Training", regions,
                           FACTOR * typed("vertex_automl", "training", "us-central1", "automl-image-classification-node")),
                   gcp_sku("AutoML Image Classification Online Prediction", regions,
                           FACTOR * typed("vertex_automl", "endpoint", "us-central1", "automl-image-classification-node"))]
    s.list_prices += [
        {"sku_name": "PREMIUM_JOBS_COMPUTE", "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
         "pricing": {"default": "0.20"}, "price_start_time": "2026-01-01T00:00:00Z", "price_end_time": None},
        {"sku_name": "PREMIUM_JOBS_COMPUTE", "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
         "pricing": {"default": "0.15"}, "price_start_time": "2023-01-01T00:00:00Z",
         "price_end_time": "2026-01-01T00:00:00Z"},
        {"sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE", "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
         "pricing": {"default": "0.55"}, "price_start_time": "2023-01-01T00:00:00Z", "price_end_time": None}]
