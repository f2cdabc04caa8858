"""Billed beside listed: `platbench prices billed` reads what Databricks billed each ended run from
system.billing.usage (priced by list_prices at the time of use) on the loopback SQL Statement Execution server,
records it on the run, and says so of a run the table has no record of yet (usage arrives hours later); the
report's cost section shows each run's billed figure in the platform's own terms beside the list estimate, and
where none is reported per run, why (the platform's words)."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from launcher_rigs import kit_store  # noqa: F401 (fixture)
from price_fixtures import priced, server  # noqa: F401 (fixtures)

from platforms.core import tracking
from platforms.prices.cli import app
from platforms.report.data import Run
from platforms.report.sections.prices import billed_text, billing_notes, price_dates

T = tracking.Tag
SOURCE = "g4dn.xlarge 0.526/h ×1 (https://aws.amazon.com/ec2/pricing/on-demand/, 2026-11-29, unverified)"


def _run(platform: str, job: str, metrics: dict, **tags) -> str:
    c = tracking.client()
    r = c.create_run(tracking.experiment_id(c), tags={T.PLATFORM: platform, T.JOB_ID: job, T.STATUS: "finished",
                                                      T.PRICE_SOURCE: SOURCE, **tags})
    for k, v in metrics.items():
        c.log_metric(r.info.run_id, k, v)
    c.set_terminated(r.info.run_id)
    return r.info.run_id


def _usage(job: str, dbus: float, start: str, end: str) -> dict:
    return {"record_id": uuid.uuid4().hex, "sku_name": "PREMIUM_JOBS_COMPUTE", "cloud": "AWS", "usage_unit": "DBU",
            "usage_quantity": str(dbus), "usage_start_time": start, "usage_end_time": end,
            "usage_metadata": {"job_id": None, "job_run_id": job, "cluster_id": "0101-abc"}}


def report_run(run_id: str) -> Run:
    r = tracking.client().get_run(run_id)
    return Run(run_id, "", r.info.status, "finished", "training", r.info.start_time, r.data.tags, r.data.params,
               r.data.metrics)


def test_databricks_billed_usage_is_read_later_and_shown_beside_the_list_estimate(priced, tmp_path, monkeypatch,
                                                                                  kit_store):
    """In the kit's shared store (a new one costs seconds): only this test's runs are asserted on."""
    monkeypatch.chdir(tmp_path)
    billed_job, later_job = str(uuid.uuid4().int % 10**12), str(uuid.uuid4().int % 10**12)
    estimate = {"cost_usd": 0.05, "cost_list_estimate_usd": 0.05}
    billed_run = _run("databricks", billed_job, estimate)
    later_run = _run("databricks", later_job, estimate)
    local_run = _run("databricks", "pb-local-run-name", {}, **{T.LOCAL_MODE: "true"})  # this machine: nothing billed
    # two hours of the run: one under the 2025 price (0.15 USD/DBU), one under today's (0.20); another run's too
    priced.usage += [_usage(billed_job, 0.5, "2025-12-31T23:00:00Z", "2025-12-31T23:59:59Z"),
                     _usage(billed_job, 0.25, "2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z"),
                     _usage("999", 7.0, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")]
    r = CliRunner().invoke(app, ["billed", "databricks"])
    assert r.exit_code == 0, r.output
    assert f"run {billed_run} (job run {billed_job}): 0.1250 USD billed (0.75 DBU; Databricks DBUs at list USD/DBU" \
           in r.output  # 0.5 × 0.15 + 0.25 × 0.20
    assert f"run {later_run} (job run {later_job}): no usage record yet (system.billing.usage records a run's DBUs " \
           "hours after it ends" in r.output
    assert local_run not in r.output
    got = tracking.client().get_run(billed_run).data
    assert got.metrics["billed_usd"] == 0.125 and got.metrics["billed_units"] == 0.75
    assert got.tags["platbench.billed_unit"] == "DBU" and priced.url in got.tags["platbench.billed_source"]
    assert "usage until 2026-01-01T00:30:00Z" in got.tags["platbench.billed_source"]
    # a run already billed is not asked for again; the one without a record is
    asked = priced.requests.count("databricks")
    r = CliRunner().invoke(app, ["billed", "databricks"])
    assert billed_run not in r.output and f"run {later_run}" in r.output
    assert priced.requests.count("databricks") - asked == r.output.count("job run ")

    # the report: billed in the platform's terms beside the list estimate (the same metrics), and why not where not
    billed, later = report_run(billed_run), report_run(later_run)
    assert billed_text(billed) == "0.1250 (0.75 DBU)" and billed_text(later) == "not reported"
    assert price_dates(billed) == "2026-11-29"
    (note,) = billing_notes([billed])
    assert note.startswith("databricks: billed = Databricks DBUs at list USD/DBU; the VM is billed by the cloud apart")
    (note,) = billing_notes([later])
    assert "system.billing.usage does, hours later" in note and "`platbench prices billed databricks` reads it" in note


def test_each_platform_says_how_it_bills_a_run(kit_store, tmp_path, monkeypatch):
    """SageMaker's billed seconds, Apolo's credits, and the words of a platform billed later (Vertex: no
    billed time) — one cell each, with the list estimate and the price's date beside it in the table."""
    monkeypatch.chdir(tmp_path)
    sm = report_run(_run("sagemaker", "j1", {"billed_seconds": 90.0, "cost_usd": 0.0132, "cost_list_estimate_usd": 0.02}))
    ap = report_run(_run("apolo", "j2", {"cost_credits": 1.5, "credits_per_hour": 3.0}))
    vx = report_run(_run("vertex", "j3", {"cost_usd": 0.04, "cost_list_estimate_usd": 0.04}))
    assert billed_text(sm) == "0.0132 †" and billed_text(ap) == "1.5 credits" and billed_text(vx) == "not reported"
    assert billing_notes([sm, ap]) == []  # both report what they billed
    assert billing_notes([vx, sm]) == ["vertex: not billed per run here: Vertex reports no billed time (the bill "
                                       "arrives later, in the Cloud Billing export); cost is running time × list "
                                       "price"]
