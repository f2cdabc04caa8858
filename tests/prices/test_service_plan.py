"""Cost plans beyond a training job (platforms/core/cost_plan.py): an AutoML service's line (what its newest
finished run cost, else unknown; never an upper bound, so a budget is refused), and the plan of known hours
(platform, hardware, hours) that `platbench reproduce` prices a study's horizon with."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from launcher_rigs import kit_store  # noqa: F401 (fixture)

from platforms.core import cost_plan, pricing, tracking
from platforms.core import price_cache as cache
from platforms.errors import UserError


def test_a_service_is_planned_from_its_newest_finished_run(tmp_path, monkeypatch, kit_store):
    """In the kit's shared store (a new one costs seconds)."""
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as m:  # no store here (the embedded one): nothing to go by, and none is created
        m.delenv("MLFLOW_TRACKING_URI")
        line = cost_plan.line("nyckel", None, {})
        assert line.expected_usd is None and "no finished run of nyckel yet: cost unknown" in line.text()
        assert not (tmp_path / "mlflow.db").exists()
    c = tracking.client()
    T = tracking.Tag
    basis = "invoke 0.001/request (https://www.nyckel.com/pricing, 2023-04-19, unverified: published plan, entered by hand)"
    run = c.create_run(tracking.experiment_id(c), tags={T.PLATFORM: "nyckel", T.KIND: "service", T.STATUS: "finished",
                                                        T.PRICE_SOURCE: basis})
    c.log_metric(run.info.run_id, "cost_usd", 0.078)
    c.set_terminated(run.info.run_id)
    line = cost_plan.line("nyckel", None, {})
    assert line.expected_usd == 0.078 and line.upper_usd is None
    assert line.text() == (f"  nyckel: 0.0780 USD expected (as service run {run.info.run_id[:8]} cost: {basis}; no upper "
                           "bound: the service decides how long it trains)")
    assert "total for 2 runs: 0.1560 USD expected, at most unknown" in cost_plan.render([line, line])
    with pytest.raises(UserError, match="--max-usd 1: the cost of nyckel has no upper bound .*nothing was created"):
        cost_plan.hold([line], 1)


def test_known_hours_are_priced_per_platform_and_hardware(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))
    cache.write("vertex", [cache.Fetched("training", "us-central1", sku, usd, "https://cloudbilling.googleapis.com",
                                         "Cloud Billing Catalog API", "test", cache.now())
                           for sku, usd in (("n1-standard-8", 1.0), ("NVIDIA_TESLA_T4", 0.5))])
    pricing.forget()
    try:
        vx, db, none = cost_plan.hours_lines([
            ("vertex", "n1-standard-8+2xNVIDIA_TESLA_T4", 3.0),  # an instance_type tag's form
            ("databricks", [("g4dn.xlarge", 1), ("g4dn.xlarge DBU", 1)], 730.0),  # the VM and its DBUs
            ("sagemaker", "ml.nothing", 1.0)])
        assert vx.expected_usd == vx.upper_usd == pytest.approx((1.0 + 2 * 0.5) * 3)
        assert f"(on-demand; verified, price of {cache.now()[:10]}) × 3.000 h expected (from the plan)" in vx.text()
        assert "at most 6.0000 USD in the plan's hours (3.00 h)" in vx.text()
        usd = sum(pricing.lookup("databricks", "us-east-1", s).usd_per_hour for s in ("g4dn.xlarge", "g4dn.xlarge DBU"))
        assert db.expected_usd == pytest.approx(usd * 730) and "unverified †" in db.text()
        assert none.expected_usd is None and "no price for it in platforms/sagemaker/prices.yaml" in none.text()
        (ep,) = cost_plan.hours_lines([("sagemaker", "ml.g4dn.xlarge", 24.0)], section="endpoint")
        assert ep.expected_usd == pytest.approx(24 * pricing.lookup("sagemaker", "us-east-1", "ml.g4dn.xlarge",
                                                                    "endpoint").usd_per_hour)
    finally:
        pricing.forget()
