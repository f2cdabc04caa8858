"""A cost plan and a budget (platforms/core/cost_plan.py, --max-usd): the dry-run prices each run and the
total with the price's status and date; a plan whose upper bound (price × max_run) exceeds the budget is
refused before anything is created; a job that runs past it on the loopback Vertex AI server is cancelled
before its spend crosses the budget, torn down, and its run records that the budget stopped it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from launcher_rigs import RIGS, kit_store, open_rig  # noqa: F401 (kit_store: fixture)
from conftest_clouds import gcs, gcs_server  # noqa: F401 (fixtures)
from stand_in import stand_in  # noqa: F401 (fixture)
from vertex_fixtures import job_service  # noqa: F401 (fixture)

from platforms.core import cost_plan, launch, pricing, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress
from platforms.errors import UserError
from platforms.core import price_cache as cache

VERTEX = RIGS["vertex"]


@pytest.fixture
def price_cache(tmp_path, monkeypatch):
    """A price cache of its own, holding `usd_per_hour` for the Vertex machine and its T4 (verified)."""
    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))
    pricing.forget()

    def put(machine_usd: float, t4_usd: float) -> None:
        cache.write("vertex", [cache.Fetched("training", "us-central1", sku, usd, "https://cloudbilling.googleapis.com",
                                             "Cloud Billing Catalog API", "test", cache.now())
                               for sku, usd in (("n1-standard-8", machine_usd), ("NVIDIA_TESLA_T4", t4_usd))])
        pricing.forget()
    yield put
    pricing.forget()


def test_the_dry_run_prices_each_run_and_refuses_an_over_budget_plan(stand_in, price_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    price_cache(1.0, 0.5)
    job = Job(data=stand_in.data, out=tmp_path / "out")
    text = launch.plan_text("vertex", job, {"bucket": "pb-plan", "max_run": "3600"})
    today = cache.now()[:10]
    assert (f"1.5000 USD/h (on-demand; verified, price of {today}) × 1.000 h expected (from max_run, 3600 s: no "
            "finished run of vertex/small/n1-standard-8+1xNVIDIA_TESLA_T4 yet) = 1.5000 USD; at most 1.5000 USD") in text
    with pytest.raises(UserError, match=r"--max-usd 1: the plan may cost up to 1.5000 USD .*nothing was created"):
        launch.plan_text("vertex", job, {"bucket": "pb-plan", "max_run": "3600"}, max_usd=1)
    assert not (tmp_path / "mlflow.db").exists()  # the plan read no store into being
    # a machine with no price: its cost is unknown, so no budget can be held for it
    with pytest.raises(UserError, match="has no upper bound .*no price for it"):
        launch.plan_text("vertex", job, {"bucket": "pb-plan", "machine_type": "n1-standard-96"}, max_usd=100)
    # an AutoML service: refused in one line
    with pytest.raises(UserError, match="AutoML service"):
        launch.plan_text("rekognition", job, {}, max_usd=100)


def test_expected_hours_come_from_a_finished_run_of_the_same_condition(stand_in, price_cache, tmp_path, monkeypatch,
                                                                    kit_store):
    """In the kit's shared store (a new one costs seconds), as a resnet18 run: no kit run is one."""
    monkeypatch.chdir(tmp_path)
    price_cache(1.0, 0.5)
    c = tracking.client()
    T = tracking.Tag
    run = c.create_run(tracking.experiment_id(c), tags={T.PLATFORM: "vertex", T.MODEL: "resnet18", T.STATUS: "finished",
                                                        T.INSTANCE_TYPE: "n1-standard-8+1xNVIDIA_TESLA_T4"})
    c.log_metric(run.info.run_id, "seconds_wall", 720.0)
    c.set_terminated(run.info.run_id)
    line = cost_plan.line("vertex", Job(data=stand_in.data, out=tmp_path / "o", model="resnet18"), {"bucket": "pb-plan"})
    assert line.hours == pytest.approx(0.2) and line.expected_usd == pytest.approx(0.3)
    assert f"finished run {run.info.run_id[:8]}, 720 s" in line.hours_from
    assert line.upper_usd == pytest.approx(1.5 * 4)  # max_run's default, 4 h


def test_a_sweep_dry_run_shows_each_cell_and_the_total(stand_in, price_cache, tmp_path, monkeypatch, capsys):
    from rich.console import Console

    from platforms.bench.sweep import cli_main

    monkeypatch.chdir(tmp_path)
    price_cache(1.0, 0.5)
    args = (stand_in.data, ["vertex"], ["small"], ["all"], ["0,1,2"], None, None, [],
            ["vertex:bucket=pb-plan", "vertex:max_run=600"], [], "budget-plan", None)
    assert cli_main(*args, True, False, Console(), max_usd=1) == 0
    out = capsys.readouterr().out
    assert all(f"  vertex/small/pcall/seed{s}: 1.5000 USD/h" in out for s in range(3))
    assert "total for 3 runs: 0.7500 USD expected, at most 0.7500 USD; budget --max-usd 1" in out
    for dry in (True, False):  # refused in one line, dry or not, before anything is created
        with pytest.raises(UserError, match=r"may cost up to 0.7500 USD \(3 runs"):
            cli_main(*args, dry, False, Console(), max_usd=0.5)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_an_over_budget_launch_creates_nothing(request, stand_in, price_cache, tmp_path, monkeypatch, kit_store):
    ctx = open_rig(VERTEX, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    price_cache(1.0, 0.5)
    with pytest.raises(UserError, match="--max-usd 0.01: the plan may cost up to"):
        with JobProgress(enabled=False) as progress:
            launch.launch("vertex", Job(data=stand_in.data, out=tmp_path / "out"), VERTEX.remote(ctx), progress,
                          max_usd=0.01)
    assert VERTEX.jobs(ctx) == [] and VERTEX.stored(ctx) == []


def test_a_sweep_whose_running_cell_crosses_the_budget_stops_it_and_starts_no_more_cells(
        request, stand_in, price_cache, tmp_path, monkeypatch, kit_store, capsys):
    """A sweep over the loopback Vertex AI server and this machine, one cell at a time, under --max-usd equal to
    the Vertex cell's upper bound (3.6 USD/h × max_run 60 s = 0.06 USD; this machine's cell costs nothing).
    The Vertex job would train 1000 epochs, past max_run (the loopback server does not end a job at its
    timeout), so past the budget. Why this takes ~40 s, not ~60 s: the plan refuses a budget under price ×
    max_run (max_run ≥ 60 s), and the watch cancels a job once its spend would cross the budget within two
    poll steps; with the rig's 0.05 s polls that is after ~60 s of the job, with poll_seconds 20 at its second
    poll (20 s + two steps of 20 s reach max_run), the cancel seen one poll later. The sweep then starts no
    more cells; the job is cancelled on the server, torn down, and its run records that the budget stopped
    it, its 20 s billed under the budget."""
    import json

    from rich.console import Console

    from platforms.bench.sweep import cli_main

    ctx = open_rig(VERTEX, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    VERTEX.runtime(ctx, ctx.env(stand_in, epoch_seconds=0.5))
    price_cache(3.6, 1.2)  # the kit's CPU machine (no T4): 3.6 USD/h, 0.001 USD a second, 0.06 USD in max_run
    settings = [f"vertex:{k}={v}" for k, v in {**VERTEX.remote(ctx), "max_run": "60", "poll_seconds": "20"}.items()]
    args = (stand_in.data, ["vertex", "local"], ["small"], ["all"], ["0"], 1000, None, [], settings, ["1"],
            "budget-stop", None)
    code = cli_main(*args, False, True, Console(stderr=True), max_usd=0.06)
    cells = {c["cell"]: c for c in json.loads(capsys.readouterr().out)["cells"]}
    stopped, after = cells["vertex/small/pcall/seed0"], cells["local/small/pcall/seed0"]
    assert code == 1 and after["status"] == "not started" and after["message"] == "budget"
    assert stopped["status"] == "killed" and stopped["message"].startswith("stopped by budget: "), stopped
    assert float(stopped["message"].split()[3]) < 0.06  # "stopped by budget: SPENT USD spent of --max-usd 0.06 …"
    VERTEX.cancelled(ctx)  # cancelled on the server, and the job's processes ended
    run = tracking.client().get_run(stopped["run_id"])
    assert run.info.status == "KILLED" and run.data.tags["platbench.stopped_by"] == "budget"
    assert run.data.metrics["cost_usd"] <= 0.06
    swept = tracking.client().search_runs([run.info.experiment_id], "tags.`platbench.sweep` = 'budget-stop'")
    children = [r.info.run_id for r in swept if r.data.tags.get("platbench.kind") != "sweep"]
    assert children == [run.info.run_id]  # this machine's cell never started
