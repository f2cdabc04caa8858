"""The cost plan of `platbench endpoint --dry-run` (platforms/core/cost_plan.py endpoint_text): the endpoint's
price × the hours it is expected to be up, from the newest finished endpoint run of the platform (create →
serving and teardown, its load test scaled to this run's requests), else unknown; nothing is created."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from launcher_rigs import kit_store  # noqa: F401 (fixture)

from platforms.bench.endpoint import cli_main
from platforms.core import pricing, tracking

SETTINGS = ["bucket=pb-bucket", "name=pb-dry", "instance_type=ml.g4dn.xlarge"]


def dry_run(requests: int, capsys) -> str:
    cli_main("sagemaker", None, SETTINGS, requests, 4, 0, [], "png", 1, None, True, False, False, None)
    return capsys.readouterr().out


def test_the_endpoint_dry_run_plans_its_cost(tmp_path, monkeypatch, capsys, kit_store):
    """In the kit's shared store (a new one costs seconds)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))  # the shipped table
    pricing.forget()
    usd = pricing.lookup("sagemaker", "us-east-1", "ml.g4dn.xlarge", "endpoint").usd_per_hour
    with monkeypatch.context() as m:  # first: no store here (the embedded one), and none is created
        m.delenv("MLFLOW_TRACKING_URI")
        out = dry_run(200, capsys)
    assert (f"Cost plan: the endpoint at {usd:.4f} USD/h (ml.g4dn.xlarge {usd}/h ×1 (https://aws.amazon.com/sagemaker/"
            "pricing/, 2026-11-29, unverified)) × expected hours unknown (no finished endpoint run of sagemaker yet): "
            "cost unknown") in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # a finished endpoint run: 300 s create → serving, 60 s teardown, 100 requests in 36 s
    c = tracking.client()
    T = tracking.Tag
    run = c.create_run(tracking.experiment_id(c), tags={T.PLATFORM: "sagemaker", T.KIND: "endpoint", T.STATUS: "finished"})
    for k, v in {"endpoint_create_to_in_service_s": 300.0, "endpoint_teardown_s": 60.0, "load_seconds": 36.0,
                 "load_ok": 99.0, "load_failed": 1.0}.items():
        c.log_metric(run.info.run_id, k, v)
    c.set_terminated(run.info.run_id)
    out = dry_run(200, capsys)  # 360 s + 36 s × 200 / 100 = 432 s = 0.12 h
    assert (f"× 0.120 h expected (from endpoint run {run.info.run_id[:8]}: create → serving and teardown 360 s + its "
            f"load test 36 s for 100 requests, scaled to 200) = {usd * 0.12:.4f} USD; batch inference not included") in out
    pricing.forget()
