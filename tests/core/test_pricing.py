"""Price tables and the cost rules built on them (platforms/core/pricing.py, core/endpoint.py): the instance
count is applied once, spot runs are priced at a spot price only where the table has one and say which
price they got, endpoints are priced from the hosting section (or say that training prices stand in), and
every entry of every platform's prices.yaml carries its provenance."""
from __future__ import annotations

import re
from datetime import date

import pytest

from platforms.core import pricing, registry
from platforms.core.endpoint import FALLBACK_LABEL, endpoint_cost
from platforms.errors import UserError

PLATFORMS = registry.names()
OFFICIAL = ("https://aws.amazon.com/", "https://docs.aws.amazon.com/", "https://pricing.us-east-1.amazonaws.com/",
            "https://cloud.google.com/")


def _table(tmp_path, text: str) -> pricing.PriceTable:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return pricing.PriceTable(path, "demo")


ENTRY = 'source: "https://example.com/pricing", date: "2026-11-29", status: unverified, note: "test figure"'
DEMO = f"""
training:
  r1:
    big:   {{usd_per_hour: 1.0, {ENTRY}}}
    gpu:   {{usd_per_hour: 0.5, {ENTRY}}}
training_spot:
  r1:
    big:   {{usd_per_hour: 0.3, {ENTRY}}}
"""


# ------------------------------------------------------------------------------------------ count once
def test_a_quote_is_the_whole_jobs_price_per_hour_with_the_count_applied_once():
    one = pricing.quote("sagemaker", "us-east-1", [("ml.g4dn.xlarge", 1)])
    two = pricing.quote("sagemaker", "us-east-1", [("ml.g4dn.xlarge", 2)])
    assert two.usd_per_hour == pytest.approx(2 * one.usd_per_hour)
    # an hour of a two-instance job costs two instance-hours: the job's seconds, not instance-seconds
    assert two.cost(3600) == pytest.approx(2 * one.usd_per_hour)
    assert "×2" in two.sources
    vx = pricing.quote("vertex", "us-central1", [("n1-standard-8", 2), ("NVIDIA_TESLA_T4", 2)])
    assert vx.cost(1800) == pytest.approx(0.5 * 2 * (0.437 + 0.4025))


# ------------------------------------------------------------------------------------------ spot basis
def test_spot_is_priced_at_the_spot_price_where_the_table_has_one(tmp_path):
    t = _table(tmp_path, DEMO)
    spot = t.training_quote("r1", [("big", 2)], spot=True)
    assert spot.basis == pricing.SPOT == "spot" and spot.usd_per_hour == pytest.approx(0.6)
    assert spot.items[0][0].section == "training_spot"
    on_demand = t.training_quote("r1", [("big", 2)], spot=False)
    assert on_demand.basis == pricing.ON_DEMAND == "on-demand" and on_demand.usd_per_hour == pytest.approx(2.0)


def test_spot_without_a_spot_price_is_priced_on_demand_and_says_so(tmp_path):
    t = _table(tmp_path, DEMO)
    # gpu has no spot price: the whole job (not half of it) falls back to on-demand, labelled
    q = t.training_quote("r1", [("big", 1), ("gpu", 1)], spot=True)
    assert q.basis == pricing.ON_DEMAND_NO_SPOT == "on-demand (no spot price)"
    assert q.usd_per_hour == pytest.approx(1.5)
    # the real tables: neither SageMaker (discount in BillableTimeInSeconds) nor Vertex (no figure found)
    # has a training_spot section
    q = pricing.training_quote("vertex", "us-central1", [("n1-standard-8", 1), ("NVIDIA_TESLA_T4", 1)], spot=True)
    assert q.basis == "on-demand (no spot price)" and q.usd_per_hour == pytest.approx(0.437 + 0.4025)
    assert pricing.training_quote("vertex", "mars-1", [("n1-standard-8", 1)], spot=True) is None


def test_the_report_reads_the_basis_tag_named_in_tracking():
    from platforms.core.tracking import Tag
    from platforms.report import sections

    assert Tag.PRICE_BASIS == "platbench.price_basis"
    assert set(sections.BASIS_TEXT) == {pricing.SPOT, pricing.ON_DEMAND, pricing.ON_DEMAND_NO_SPOT}


# ------------------------------------------------------------------------------------------ hosting
def test_endpoint_cost_uses_the_hosting_section():
    cost = endpoint_cost("sagemaker", "us-east-1", [("ml.m5.large", 2)])
    hosting = pricing.lookup("sagemaker", "us-east-1", "ml.m5.large", "endpoint")
    assert cost.section == "endpoint" and not cost.note and FALLBACK_LABEL not in cost.basis
    assert cost.usd_per_hour == pytest.approx(2 * hosting.usd_per_hour)
    assert cost.per()["month"] == pytest.approx(730 * 2 * hosting.usd_per_hour, abs=1e-3)
    vx = endpoint_cost("vertex", "us-central1", [("n1-standard-4", 1)])
    assert vx.section == "endpoint"
    assert vx.usd_per_hour == pricing.lookup("vertex", "us-central1", "n1-standard-4", "endpoint").usd_per_hour
    assert vx.usd_per_hour != pricing.lookup("vertex", "us-central1", "n1-standard-4").usd_per_hour


def test_endpoint_cost_falls_back_to_training_prices_labelled():
    # ml.g5.xlarge has a training price but no hosting one
    assert pricing.lookup("sagemaker", "us-east-1", "ml.g5.xlarge", "endpoint") is None
    cost = endpoint_cost("sagemaker", "us-east-1", [("ml.g5.xlarge", 1)])
    assert cost.section == "training" and "training list price stands in" in cost.note
    assert cost.basis.endswith(FALLBACK_LABEL)  # the basis is what MLflow records as the price source
    assert cost.to_dict()["section"] == "training"
    # a T4 has no prediction price: the whole Vertex endpoint is priced from training, labelled
    vx = endpoint_cost("vertex", "us-central1", [("n1-standard-4", 1), ("NVIDIA_TESLA_T4", 1)])
    assert vx.section == "training" and FALLBACK_LABEL in vx.basis
    assert endpoint_cost("sagemaker", "us-east-1", [("ml.nothing", 1)]) is None


# ------------------------------------------------------------------------------------------ provenance
@pytest.mark.parametrize("name", PLATFORMS)
def test_every_entry_has_source_date_and_status(name):
    for section, regions in pricing.table(name).items():
        for region, skus in regions.items():
            for sku, entry in skus.items():
                where = (name, section, region, sku)
                price = entry["usd_per_hour"] if section in pricing.HOURLY else entry["usd_per_request"]
                assert price > 0 or "no cost" in entry["note"], where  # free only where the source says so
                assert entry["source"].startswith("https://"), where
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(entry["date"])), where
                assert date.fromisoformat(str(entry["date"])) <= date.today(), where  # read, not foreseen
                assert entry["status"] in ("verified", "unverified"), where
                if entry["status"] == "verified":  # read on the official page or price-list file itself
                    assert entry["source"].startswith(OFFICIAL), where
                else:  # and says what was found instead
                    assert len(entry.get("note", "")) > 20, where


def test_a_table_entry_without_provenance_is_refused(tmp_path):
    with pytest.raises(UserError, match="lacks date, status"):
        _table(tmp_path, 'training:\n  r1:\n    a: {usd_per_hour: 1.0, source: "https://x"}\n')
    with pytest.raises(UserError, match="unverified without a note"):
        _table(tmp_path, 'training:\n  r1:\n    a: {usd_per_hour: 1.0, source: "https://x", date: "2026-11-29", '
                         'status: unverified}\n')
    with pytest.raises(UserError, match="status must be verified or unverified"):
        _table(tmp_path, 'training:\n  r1:\n    a: {usd_per_hour: 1.0, source: "https://x", date: "2026-11-29", '
                         'status: probably}\n')
    with pytest.raises(UserError, match="lacks usd_per_request"):  # a service priced per call
        _table(tmp_path, 'request:\n  r1:\n    a: {usd_per_hour: 1.0, source: "https://x", date: "2026-11-29", '
                         'status: verified}\n')
    with pytest.raises(UserError, match="unknown section 'hosting'"):
        _table(tmp_path, "hosting: {}\n")
