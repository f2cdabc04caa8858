"""`platbench endpoint --max-usd` (platforms/bench/endpoint.py `deployed`, platforms/core/budget_watch.py,
platforms/core/cost_plan.py hold_endpoint): an endpoint with no price, or a plan expected to cost more than the
budget, is refused in one line before anything is created; the dry run shows the budget; a load test that
would run past it on a SageMaker endpoint (moto's control plane, the real `serve` behind the loopback runtime)
is stopped before the spend crosses it, the endpoint deleted, and the run records that the budget stopped it;
a user's Ctrl-C under a budget stays a Ctrl-C. Prices come from a price cache of the test's own, never from the
shipped tables."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launchers"))
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)
from _endpoint_servers import model, container, sagemaker_env, price, USD_PER_HOUR  # noqa: F401 (fixtures)
from _endpoint_servers import _nothing_left, _payloads, _sent
from launcher_rigs import kit_store  # noqa: F401 (fixture)
from stand_in.cli import platbench_here

from platforms.core import tracking
from platforms.errors import UserError

# with the serving fixtures of tests/sagemaker/test_sagemaker_endpoint.py: one model, one `serve`, one worker
pytestmark = pytest.mark.xdist_group("sagemaker-endpoint")

def endpoint_args(settings: dict, *more: str) -> list[str]:
    return ["endpoint", "sagemaker", *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")), *more]


@pytest.fixture
def finished_endpoint_run(kit_store):
    """Makes the newest finished SageMaker endpoint run of the kit's shared store (a new store costs seconds), which
    the plan's expected hours come from: (seconds up outside the load test, its requests in 1 s); deleted after."""
    c, made = tracking.client(), []

    def make(seconds_up: float, requests: float, teardown_s: float = 0.0) -> None:
        T = tracking.Tag
        run = c.create_run(tracking.experiment_id(c),
                           tags={T.PLATFORM: "sagemaker", T.KIND: "endpoint", T.STATUS: "finished"})
        for k, v in {"endpoint_create_to_in_service_s": seconds_up, "endpoint_teardown_s": teardown_s, "load_seconds": 1.0,
                     "load_ok": requests, "load_failed": 0.0}.items():
            c.log_metric(run.info.run_id, k, v)
        c.set_terminated(run.info.run_id)
        made.append(run.info.run_id)
    yield make
    for run_id in made:  # the store is shared: later tests plan from their own runs
        c.delete_run(run_id)


def endpoint_runs() -> int:
    c = tracking.client()
    return len(c.search_runs([tracking.experiment_id(c)], "tags.`platbench.kind` = 'endpoint'"))


def test_an_endpoint_expected_to_cost_more_than_the_budget_is_refused_with_nothing_created(
        aws, price, finished_endpoint_run, tmp_path):
    """A finished run says the endpoint is up 360 s: 3.6 USD at 36 USD/h, over a budget of 1 USD; dry or not."""
    finished_endpoint_run(359.0, 10)
    before = endpoint_runs()
    settings = {"bucket": "pb-none", "role": "r", "image_uri": "img", "name": "pb-over"}
    for dry in ([], ["--dry-run"]):
        proc = platbench_here(*endpoint_args(settings, "--model-dir", str(tmp_path), "-n", "10", "--max-usd", "1", *dry),
                              cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert re.search(r"--max-usd 1: the endpoint is expected to cost 3\.6000 USD \(36\.0000 USD/h × 360 s, from "
                         r"endpoint run \w{8}: .*\); .*nothing was created", proc.stderr), proc.stderr
    assert aws.requests == [] and endpoint_runs() == before  # no AWS call, no run


def test_an_endpoint_with_no_price_is_refused_under_a_budget(aws, tmp_path, monkeypatch):
    """eu-west-1 is in no price table: its spend could not be watched (the CLI, and `deployed` for other callers)."""
    from platforms.bench.endpoint import deployed

    monkeypatch.setenv("PLATBENCH_PRICE_CACHE", str(tmp_path / "prices"))
    settings = {"region": "eu-west-1", "bucket": "pb-none", "role": "r", "image_uri": "img", "name": "pb-unpriced"}
    proc = platbench_here(*endpoint_args(settings, "--model-dir", str(tmp_path), "--max-usd", "5"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert ("--max-usd 5: the sagemaker endpoint has no price (platforms/sagemaker/prices.yaml or the price cache), "
            "so its spend cannot be watched; nothing was created") in proc.stderr
    with pytest.raises(UserError, match="has no price"):
        with deployed("sagemaker", tmp_path, settings, max_usd=5):
            raise AssertionError("deployed")
    assert aws.requests == [] and not (tmp_path / "mlflow.db").exists()


def test_the_dry_run_shows_the_budget(price, tmp_path, monkeypatch, capsys):
    from platforms.bench.endpoint import cli_main

    monkeypatch.chdir(tmp_path)
    assert cli_main("sagemaker", None, ["bucket=pb-bucket", "name=pb-dry"], 100, 4, 0, [], "image", 1, None, True,
                    False, False, None, max_usd=0.5) == 0
    out = capsys.readouterr().out
    assert "Cost plan: the endpoint at 36.0000 USD/h" in out and "expected hours unknown" in out
    assert ("  budget --max-usd 0.5: at most 50 s up; the endpoint is deleted before its spend (the price × the "
            "seconds since its deploy began) reaches it") in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prices"]  # nothing else created


def test_a_load_test_that_would_run_past_the_budget_is_stopped_and_the_endpoint_deleted(
        sagemaker_env, model, price, finished_endpoint_run, tmp_path):
    """36 USD/h and --max-usd 0.06: the budget lasts 6 s, the watch stops the endpoint 2 s before it (budget_watch
    MARGIN_S); moto serves the endpoint in under a second quiet (4 s leave room for a loaded machine), the
    teardown takes a fraction of one. 3,000 requests at concurrency 2 would take far longer, though the plan
    (from a finished run that served a million requests a second) expects them to cost nothing. What ran is
    recorded, the endpoint and everything it needed deleted on the server, and the spend (deploy to teardown's
    end) stays under the budget."""
    proxy, runtime, settings = sagemaker_env
    finished_endpoint_run(0.0, 1e6)
    proc = platbench_here(*endpoint_args({**settings, "name": "pb-ep-budget"}, "--model-dir", str(model), "-n", "3000",
                                         "-c", "2", "--warmup", "0", "--max-usd", "0.06"), cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    m = re.fullmatch(r"platbench: killed: stopped by budget: ([\d.]+) USD spent of --max-usd 0\.06 \(36\.0000 USD/h × "
                     r"[\d.]+ s\); endpoint pb-ep-budget deleted \(MLflow run (\w+)\)", lines[-1])
    assert m and [line for line in lines if "stopped by budget" in line] == [lines[-1]], proc.stderr
    assert 0 < float(m.group(1)) < 0.06
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-budget"]
    _nothing_left(settings["bucket"])
    run = tracking.client().get_run(m.group(2))
    assert run.info.status == "KILLED" and run.data.tags["platbench.status"] == "killed"
    assert run.data.tags["platbench.stopped_by"] == "budget"
    assert run.data.metrics["endpoint_spent_usd"] == pytest.approx(float(m.group(1)), abs=1e-4)
    assert run.data.metrics["budget_usd"] == 0.06
    assert 0 < run.data.metrics["load_ok"] < 3000 and runtime.calls >= run.data.metrics["load_ok"]  # the load so far


def test_a_users_ctrl_c_under_a_budget_stays_a_ctrl_c(sagemaker_env, model, price):
    """`deployed` as another caller uses it (platbench reproduce): the endpoint serves inside the block; a Ctrl-C
    there is the user's (KeyboardInterrupt, not BudgetStopped), and the endpoint is deleted all the same."""
    import signal

    from platforms.bench.endpoint import deployed
    from platforms.core.load_runner import LoadSettings, run_with

    proxy, _, settings = sagemaker_env
    with pytest.raises(KeyboardInterrupt):
        with deployed("sagemaker", model, {**settings, "name": "pb-ep-ctrl-c"}, max_usd=10) as ep:
            data = run_with(lambda: ep.transport(1, 30), _payloads(), LoadSettings(requests=2, concurrency=1, warmup=0))
            assert [x.status for x in data.samples] == [200, 200]
            signal.raise_signal(signal.SIGINT)
    assert not ep.budget.fired and 0 < ep.budget.spent_usd < 10 and ep.deleted[0] == "endpoint pb-ep-ctrl-c"
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-ctrl-c"]
    _nothing_left(settings["bucket"])


def test_the_watch_wakes_a_sleeping_main_thread_at_once_and_a_disarmed_one_never_fires():
    """A real SIGINT, not a flag the interpreter reads between bytecodes: a deploy's sleep between two polls ends
    when the budget says, not when the sleep would. Disarmed first, the watch sends nothing."""
    import threading
    import time

    from platforms.core.budget_watch import SpendWatch
    from platforms.core.teardown import sigint_interrupts

    watch = SpendWatch(usd_per_hour=3600.0, max_usd=0.05, margin_s=0.0)  # 1 USD a second: it fires at 50 ms
    with sigint_interrupts(), pytest.raises(KeyboardInterrupt):
        watch.arm()
        time.sleep(30)
    watch.disarm(interrupted=True)
    watch.end()
    assert watch.fired and 0.05 <= watch.spent_usd < 5  # woken within seconds of its time, not after 30 s
    quiet = SpendWatch(usd_per_hour=3600.0, max_usd=0.05, margin_s=0.0)
    with sigint_interrupts():
        quiet.arm()
        quiet.disarm(interrupted=False)
        threading.Event().wait(0.2)  # past its time: an interrupt would end this wait
    assert not quiet.fired


def test_an_interrupt_the_main_thread_swallowed_is_sent_again():
    """Python drops an exception raised in a finalizer or a __del__ ("Exception ignored in …"): a SIGINT that lands
    while one runs is lost. Under load the pipeline's endpoint ran 110 s past a 1.5 s watch that had fired once (the
    suite's test_aws_azure budget tests). Until the block ends, the watch sends the interrupt again."""
    import threading
    import time

    from platforms.core.budget_watch import SpendWatch
    from platforms.core.teardown import sigint_interrupts

    watch = SpendWatch(usd_per_hour=3600.0, max_usd=0.05, margin_s=0.0)
    swallowed = 0
    with sigint_interrupts(), pytest.raises(KeyboardInterrupt):
        watch.arm()
        try:
            time.sleep(30)
        except KeyboardInterrupt:  # as a finalizer's "Exception ignored": the first interrupt is lost
            swallowed += 1
        time.sleep(30)
    watch.disarm(interrupted=True)
    watch.end()
    assert swallowed == 1 and watch.spent_usd < 10  # the second came within seconds, not after 30 s
    threading.Event().wait(0.3)  # disarmed: nothing more is sent (an interrupt would end this wait)


def test_a_budget_of_nothing_is_refused_with_nothing_created(aws, price, tmp_path):
    """Reviewer finding 8: an endpoint bills from its creation: --max-usd 0 cannot cover it (one line, no AWS call)."""
    settings = {"bucket": "pb-none", "role": "r", "image_uri": "img", "name": "pb-zero"}
    proc = platbench_here(*endpoint_args(settings, "--model-dir", str(tmp_path), "--max-usd", "0"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert re.search(r"--max-usd 0: the sagemaker endpoint bills from its creation until its deletes end \(2 s \+ a "
                     r"teardown of \d+ s, assumed: no finished endpoint run yet\): at 36\.0000 USD/h the budget must "
                     r"exceed [\d.]+ USD; nothing was created", proc.stderr), proc.stderr
    assert aws.requests == []


def test_a_budget_that_would_not_cover_the_teardown_is_refused_before_the_deploy(aws, price, finished_endpoint_run,
                                                                                 tmp_path):
    """Reviewer finding 3: the newest finished run's teardown took 58 s; with the interrupt's 2 s, 60 s at 36 USD/h
    = 0.6 USD bill whatever the endpoint serves: a budget of 0.5 is refused before anything is created (the CLI's
    plan, and `deployed` for other callers); one of 1 USD has its watch stop the endpoint 60 s early."""
    from platforms.bench.endpoint import deployed
    from platforms.core.cost_plan import endpoint_margin

    finished_endpoint_run(0.0, 1e6, teardown_s=58.0)
    settings = {"bucket": "pb-none", "role": "r", "image_uri": "img", "name": "pb-short"}
    with pytest.raises(UserError, match=r"--max-usd 0\.5: .* a teardown of 58 s, the teardown of endpoint run \w{8}\): "
                                        r"at 36\.0000 USD/h the budget must exceed 0\.6000 USD; nothing was created"):
        with deployed("sagemaker", tmp_path, settings, max_usd=0.5):
            raise AssertionError("deployed")
    assert aws.requests == []
    assert endpoint_margin("sagemaker", 36.0, 1.0)[0] == 60.0


def test_a_failed_teardown_under_a_budget_stop_still_says_and_records_the_stop(
        sagemaker_env, model, price, finished_endpoint_run, kit_store):
    """Reviewer finding 7: the budget stops the endpoint and a delete then fails: BudgetStopped (not the teardown's
    bare error) names both in one line, and the MLflow run is logged, killed and stopped by the budget."""
    from platforms.bench.endpoint import BudgetStopped, run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    proxy, _, settings = sagemaker_env
    finished_endpoint_run(0.0, 1e6)  # teardown 0 s: the watch stops 2 s before the budget
    proxy.fail(lambda m, p, h: h.get("X-Amz-Target") == "SageMaker.DeleteModel", "403", 1)
    with pytest.raises(BudgetStopped) as stop:
        run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-stuck"},
                               LoadSettings(requests=3000, concurrency=2, warmup=0), _payloads(), "image",
                               max_usd=0.04)
    text = str(stop.value)
    assert "\n" not in text and text.startswith("stopped by budget: ") and "of --max-usd 0.04" in text
    assert "sagemaker endpoint: could not delete model pb-ep-stuck: " in text and "AccessDenied" in text
    run = tracking.client().get_run(stop.value.run_id)
    assert run.info.status == "KILLED" and run.data.tags["platbench.stopped_by"] == "budget"
    import boto3

    boto3.client("sagemaker").delete_model(ModelName="pb-ep-stuck")  # what the failed delete left
    _nothing_left(settings["bucket"])
