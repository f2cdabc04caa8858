"""The Apolo endpoint (platforms/apolo/endpoint.py) against the loopback Apolo platform: the model uploaded to
storage and mounted read-only into a job running the image's `serve` with its HTTP port behind the
platform's authentication; the load test goes through the job's URL with the user's token; the job is
killed and the model removed after success, an error and Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
from _apolo_server import apolo, settings  # noqa: F401 (fixture)
from _endpoint_servers import _payloads, model  # noqa: F401 (fixture)

from platforms.errors import UserError


def nothing_left(server) -> None:
    """Every job killed (a killed job is cancelled once its container stopped: waited for, bounded)."""
    deadline = time.monotonic() + 45
    while server.active() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.active() == [] and all(j.status == "cancelled" for j in server.jobs.values())
    assert not (server.root / "storage/pb-org/pb-project/platbench/endpoints").exists() or not any(
        (server.root / "storage/pb-org/pb-project/platbench/endpoints").iterdir())


def test_endpoint_deploy_load_and_kill(apolo, model, tmp_path, monkeypatch):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.core.load_runner import LoadSettings

    monkeypatch.chdir(tmp_path)
    seen = {}

    def say(text):
        if "load test" in text:  # serving: the job's URL refuses a request without the token
            job = next(iter(apolo.jobs.values()))
            try:
                urllib.request.urlopen(urllib.request.Request(f"{apolo.url}/ingress/{job.id}/ping"), timeout=10)
            except urllib.error.HTTPError as exc:
                seen["anonymous"] = exc.code
            # `platbench load apolo:JOB_ID`: a transport to the running job, found by its id
            import asyncio

            from platforms.apolo.endpoint import ApoloEndpoint
            from platforms.bench.load_payloads import load_images, make_payloads

            async def one():
                t = ApoloEndpoint.attach(job.id, settings(apolo), 1, 30)
                try:
                    return (await t.send(make_payloads(load_images([]), "image", 1)[0])).status
                finally:
                    await t.close()

            seen["attached"] = asyncio.run(one())

    result = run_endpoint_benchmark("apolo", model, settings(apolo, name="pb-ap-ok", usd_per_credit="0.01"),
                                    LoadSettings(requests=20, concurrency=2, warmup=1),
                                    make_payloads(load_images([]), "json", 2), "json", say=say, track=True)
    s = result.load["summary"]
    assert s["ok"] == 20 and s["failed"] == 0
    assert seen["anonymous"] == 401 and seen["attached"] == 200
    (job,) = apolo.jobs.values()
    assert job.body["http"] == {"port": 8080, "requires_auth": True} and job.body["name"] == "pb-ap-ok"
    assert job.body["command"] == "serve --model-dir /platbench/model --port 8080"
    assert [(v["dst_path"], v["read_only"]) for v in job.body["volumes"]] == [("/platbench/model", True)]
    assert apolo.killed == [job.id] and job.status == "cancelled"
    nothing_left(apolo)
    assert result.cost["usd_per"]["hour"] == pytest.approx(1.5 * 0.01)
    assert result.cost["usd_per"]["month"] == pytest.approx(1.5 * 0.01 * 730)
    assert "1.5 credits/h" in result.cost["basis"]
    assert result.timings["create_to_in_service_s"] > 0 and result.deleted[0].startswith("job ")


def test_endpoint_is_killed_after_an_error(apolo, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    with pytest.raises(UserError, match="nothing to send"):
        run_endpoint_benchmark("apolo", model, settings(apolo, name="pb-ap-err"), LoadSettings(requests=5), [],
                               "image", track=False)
    assert len(apolo.killed) == 1
    nothing_left(apolo)


def test_endpoint_is_killed_after_ctrl_c(apolo, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    def interrupt_once_traffic_flows():
        deadline = time.monotonic() + 60
        while apolo.ingress_calls == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_traffic_flows, daemon=True)

    def start_timer(text):
        if "load test" in text:
            timer.start()

    swallowing = signal.signal(signal.SIGINT, lambda *_: None)  # a library's handler must not keep it alive
    try:
        with pytest.raises(KeyboardInterrupt):
            run_endpoint_benchmark("apolo", model, settings(apolo, name="pb-ap-int"),
                                   LoadSettings(requests=3_000, concurrency=2, warmup=0), _payloads(), "image",
                                   say=start_timer, track=False)
    finally:
        if timer.ident is not None:
            timer.join(5)
        signal.signal(signal.SIGINT, swallowing)
    assert apolo.ingress_calls > 0 and len(apolo.killed) == 1
    nothing_left(apolo)


@pytest.mark.parametrize("more, message", [
    ({"preset": "gpu-huge"}, "unknown preset 'gpu-huge'"),
    ({"image": None}, "add --set image="),
])
def test_bad_endpoint_settings_create_nothing(apolo, tmp_path, more, message):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    s = {k: v for k, v in settings(apolo, **more).items() if v is not None}
    with pytest.raises(UserError, match=re.escape(message)):
        run_endpoint_benchmark("apolo", tmp_path, s, LoadSettings(requests=1), _payloads(), "image", track=False)
    assert apolo.jobs == {} and not (apolo.root / "storage/pb-org").exists()


def test_dry_run_plan_names_the_apolo_commands(apolo):
    from platforms.apolo.endpoint import ApoloEndpoint

    ep = ApoloEndpoint(settings(apolo, name="pb-ap-plan", usd_per_credit="0.02"))
    text = "\n".join(ep.plan())
    for needle in ("apolo run", "--http-port 8080 --http-auth", ":/platbench/model:ro", "apolo job kill JOB_ID",
                   "-- serve --model-dir /platbench/model --port 8080"):
        assert needle in text, needle
    # the preset's credits per hour come from the login's config database, offline
    assert ep.cost().usd_per_hour == pytest.approx(1.5 * 0.02)
    assert apolo.requests == []
