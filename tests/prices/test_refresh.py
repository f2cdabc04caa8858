"""`platbench prices refresh` against the loopback price server (tests/prices/price_servers.py): every price the
project uses for SageMaker, Vertex AI, Azure ML, Databricks, Rekognition and SkyPilot's AWS VMs comes from its official source
with source and date, which the cost figures then use (verified); a missing SKU stays as typed (†); paging,
throttling survived, throttling past the retries in one line with the last cache kept."""
from __future__ import annotations

import pytest
import sys
from pathlib import Path

from price_fixtures import FACTOR, MISSING, entries, priced, server, typed  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from platforms.core import pricing
from platforms.core import price_cache as cache
from platforms.prices.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apolo"))
from _apolo_server import apolo  # noqa: F401 (fixture)

PLATFORMS = ["sagemaker", "rekognition", "databricks", "azureml", "vertex", "vertex_automl", "skypilot"]


def refresh(*names: str):
    return CliRunner().invoke(app, ["refresh", *names])


def test_refresh_fills_every_price_the_project_uses_with_source_and_date(priced):
    r = refresh(*PLATFORMS)
    assert r.exit_code == 0, r.output
    today = cache.now()[:10]
    for name in PLATFORMS:
        for section, region, sku in entries(name):
            p = pricing.lookup(name, region, sku, section)
            if (name, section, sku) in MISSING:  # not in the catalog: stays as typed, unverified
                assert p.status == "unverified" and p.usd_per_hour == typed(name, section, region, sku)
                assert f"not found: {section}/{region}/{sku}" in r.output
                continue
            # the Databricks DBU item: the typed DBU/h × the catalog's current USD/DBU (0.20)
            want = typed(name, section, region, sku) / 0.15 * 0.20 if sku.endswith(" DBU") else \
                FACTOR * typed(name, section, region, sku)
            assert p.usd_per_hour == pytest.approx(want, rel=1e-4), (name, sku)
            assert p.date == today and p.source.startswith(priced.url)
            # the Databricks DBU item: USD/DBU official, DBU/h per node type typed → still unverified, said so
            assert p.status == ("unverified" if sku.endswith(" DBU") else "verified"), (name, sku)
    dbu = pricing.of("databricks").data["training"]["us-east-1"]["g4dn.xlarge DBU"]
    assert dbu["usd_per_hour"] == pytest.approx(0.71 * 0.20) and "0.2 USD/DBU" in dbu["note"]  # the current row
    # a quote says which prices it used, status and date: what the report reads
    q = pricing.quote("sagemaker", "us-east-1", [("ml.m5.large", 2)])
    assert q.verified and f"({priced.url}, {today}, verified)" in q.sources
    # SkyPilot's VM from AmazonEC2 (Linux, not the Windows decoy): the launcher's quote is verified
    from platforms.skypilot.task import SkyPilotSettings
    from platforms.skypilot.train import ec2_quote

    sky = ec2_quote(SkyPilotSettings(cloud="aws", region="us-east-1", accelerators="T4:1"))
    assert sky.verified and sky.usd_per_hour == pytest.approx(FACTOR * typed("skypilot", "training", "us-east-1", "g4dn.xlarge"))
    e = next(e for e in cache.read("skypilot") if e.sku == "g4dn.xlarge")
    assert e.api == "AWS Price List Query API" and "AmazonEC2" in e.query and '"instanceType": "g4dn.xlarge"' in e.query
    # low-priority meters fill Azure ML's spot section: a low-priority job gets its own price
    spot = pricing.training_quote("azureml", "eastus", [("Standard_NC4as_T4_v3", 1)], spot=True)
    assert spot.basis == "spot" and spot.usd_per_hour == pytest.approx(FACTOR * 0.526 / 4, rel=1e-4)
    # the cache records where each figure came from
    e = next(e for e in cache.read("sagemaker") if e.sku == "ml.m5.large" and e.section == "endpoint")
    assert e.api == "AWS Price List Query API" and "USE1-Host:ml.m5.large" in e.query and e.currency == "USD"
    # paging was followed: the AWS catalog answers one product a page (3 Rekognition products in the region,
    # asked once per SKU), Azure two items a page (4 meters per size, asked once per section and size)
    assert priced.requests.count("aws AmazonRekognition") == 3 * len(entries("rekognition"))
    assert priced.requests.count("azure") > len(entries("azureml")) + 4  # more pages than queries
    shown = CliRunner().invoke(app, ["show", "vertex"]).output
    assert "verified" in shown and "fetched today" in shown and "†" in shown  # the V100 stays unverified


@pytest.mark.parametrize("where, name", [("aws", "sagemaker"), ("azure", "azureml"), ("gcp", "vertex"),
                                         ("databricks", "databricks")])
def test_throttling_is_survived(priced, where, name):
    priced.fail(where, "throttle", 2)
    r = refresh(name)
    assert r.exit_code == 0, r.output
    assert any(e.status in ("verified", "unverified") for e in cache.read(name))
    assert priced.take_fault(where) is None  # both faults were met


def test_throttling_past_the_retries_is_one_line_and_the_last_cache_stays(priced):
    assert refresh("azureml").exit_code == 0
    before = cache.read("azureml")
    priced.fail("azure", "throttle", 50)
    r = refresh("azureml")
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "HTTP 429" in lines[0] and "fetched today" in lines[0] and "stays" in lines[0]
    assert cache.read("azureml") == before and pricing.lookup("azureml", "eastus", "Standard_D4s_v3").status == "verified"
    with priced.lock:
        priced.faults.clear()


def test_no_official_source_is_said_and_is_no_failure(priced):
    r = refresh("nyckel")
    assert r.exit_code == 0 and "nyckel: not refreshed: no official price source: platforms/nyckel/prices.yaml" in r.output


def test_apolo_presets_are_cached_in_credits_and_never_priced_in_usd(priced, apolo, monkeypatch):
    """The loopback Apolo platform (tests/apolo) serves its cluster config: presets with credits per hour."""
    monkeypatch.setenv("PLATBENCH_APOLO_CONFIG", str(apolo.config_dir))
    r = refresh("apolo")
    assert r.exit_code == 0, r.output
    got = {e.sku: e for e in cache.read("apolo")}
    assert got["gpu-small"].per_hour == 10 and got["cpu-small"].per_hour == 1.5
    assert {e.currency for e in got.values()} == {"credits"} and "preemptible" in got["gpu-small-p"].note
    assert pricing.table("apolo") == {}  # credits are no USD price: the cost figures do not use them
    shown = CliRunner().invoke(app, ["show", "apolo"]).output
    assert "gpu-small" in shown and "credits/h" in shown and "fetched today" in shown


def test_an_old_cache_is_used_with_its_age(priced):
    from datetime import datetime, timedelta, timezone

    old = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
    cache.write("vertex", [cache.Fetched("endpoint", "us-central1", "n1-standard-2", 0.5, "https://cloudbilling.googleapis.com",
                                         "Cloud Billing Catalog API", "q", old)])
    pricing.forget()
    p = pricing.lookup("vertex", "us-central1", "n1-standard-2", "endpoint")
    assert p.usd_per_hour == 0.5 and p.status == "verified" and p.date == old[:10]
    assert "3 days old" in CliRunner().invoke(app, ["show", "vertex"]).output
