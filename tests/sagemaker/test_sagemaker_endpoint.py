"""SageMaker endpoints (platforms/sagemaker/endpoint.py): the control plane against moto's SageMaker API on
127.0.0.1, traffic through boto3's sagemaker-runtime into the real `serve` by way of a loopback runtime server;
teardown checked after success, an error and Ctrl-C."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import tarfile
import threading
import time

import pytest
from conftest_clouds import aws, moto_server, new_bucket_name  # noqa: F401 (fixtures)

from platforms.errors import UserError
from _endpoint_servers import model, container, sagemaker_env  # noqa: F401 (fixtures)
from _endpoint_servers import _nothing_left, _sent, _payloads

pytestmark = pytest.mark.xdist_group("sagemaker-endpoint")  # `model` trains a model once per module


def test_sagemaker_endpoint_deploy_load_batch_and_delete(sagemaker_env, model, digits_data, tmp_path, monkeypatch):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    proxy, runtime, settings = sagemaker_env
    monkeypatch.chdir(tmp_path)
    result = run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-ok"},
                                    LoadSettings(requests=60, concurrency=4, warmup=4), _payloads(), "image",
                                    batch_dir=digits_data / "test" / "3")
    load = result.load
    assert load["summary"]["ok"] == 60 and load["summary"]["failed"] == 0 and load["target"] == "sagemaker:pb-ep-ok"
    assert load["platform"]["server"]["software"] == "sagemaker endpoint (AllTraffic)"
    assert load["platform"]["model"] == "small" and load["server_batch"]["max"] >= 1
    assert result.batch["images"] == len(list((digits_data / "test" / "3").glob("*.png"))) and result.batch["errors"] == 0
    assert runtime.calls >= 64 + result.batch["images"]
    # the control plane: what was created, with the model.tar.gz SageMaker unpacks into /opt/ml/model
    (cm,) = _sent(proxy, "CreateModel")
    assert cm["PrimaryContainer"]["Image"] == settings["image_uri"] and cm["ExecutionRoleArn"] == settings["role"]
    key = cm["PrimaryContainer"]["ModelDataUrl"].split(f"s3://{settings['bucket']}/")[1]
    put = [body for method, path, _, body in proxy.requests if method == "PUT" and path.endswith(key)]
    names = tarfile.open(fileobj=io.BytesIO(put[-1]), mode="r:gz").getnames()
    assert sorted(names) == ["model.json", "model.pt"]
    (cfg,) = _sent(proxy, "CreateEndpointConfig")
    assert cfg["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-ok"]
    assert len(_sent(proxy, "DeleteEndpointConfig")) == 1 and len(_sent(proxy, "DeleteModel")) == 1
    assert result.deleted[0] == "endpoint pb-ep-ok" and len(result.deleted) == 4
    _nothing_left(settings["bucket"])
    # cost per hour/day/month/year from the price table
    assert result.cost["usd_per"]["day"] == pytest.approx(24 * result.cost["usd_per"]["hour"], rel=1e-3)
    assert result.cost["usd_per"]["year"] == pytest.approx(8760 * result.cost["usd_per"]["hour"], rel=1e-3)
    assert "ml.m5.large 0.115/h ×1" in result.cost["basis"] and result.cost["section"] == "endpoint"
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.settings["mlflow_run_id"])
    assert run.data.tags["platbench.kind"] == "endpoint" and run.data.metrics["load_ok"] == 60
    assert run.data.metrics["endpoint_usd_per_month"] == pytest.approx(result.cost["usd_per"]["month"])


def test_sagemaker_endpoint_is_deleted_after_an_error(sagemaker_env, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    proxy, _, settings = sagemaker_env
    with pytest.raises(UserError, match="nothing to send"):
        run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-err"}, LoadSettings(requests=5),
                               [], "image", track=False)
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-err"]
    _nothing_left(settings["bucket"])


def test_sagemaker_endpoint_is_deleted_after_ctrl_c(sagemaker_env, model):
    from platforms.bench.endpoint import run_endpoint_benchmark
    from platforms.core.load_runner import LoadSettings

    proxy, runtime, settings = sagemaker_env
    def interrupt_once_traffic_flows():
        # Ctrl-C once requests reach the endpoint (not after a fixed delay: a loaded machine may not have
        # sent any by then), bounded so a broken load test cannot hang the suite
        deadline = time.monotonic() + 60
        while runtime.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_traffic_flows, daemon=True)

    def start_timer(text):
        if "load test" in text:
            timer.start()

    # a library may leave a handler that swallows SIGINT: Ctrl-C must still stop a billed endpoint
    swallowing = signal.signal(signal.SIGINT, lambda *_: None)
    with pytest.raises(KeyboardInterrupt):
        run_endpoint_benchmark("sagemaker", model, {**settings, "name": "pb-ep-int"},
                               LoadSettings(requests=3_000, concurrency=2, warmup=0), _payloads(), "image",
                               say=start_timer, track=False)
    timer.join(5)
    signal.signal(signal.SIGINT, swallowing)
    assert runtime.calls > 0
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-int"]
    _nothing_left(settings["bucket"])


def test_container_errors_come_back_as_their_status_through_the_sdk(sagemaker_env, model):
    from platforms.sagemaker.endpoint import SageMakerEndpoint, SageMakerTransport
    from platforms.core.transport import Payload

    _, _, settings = sagemaker_env
    ep = SageMakerEndpoint({**settings, "name": "pb-ep-415"})
    ep.check()
    try:
        ep.deploy(model)
        t = SageMakerTransport("pb-ep-415", "us-east-1", 1, 10)
        reply = t.call(Payload(b"hello", "text/plain", 1))
        assert reply.status == 415 and "unsupported Content-Type" in json.loads(reply.body)["error"]
        assert t.call(Payload(b"hello", "image/png", 1)).status == 400
        assert SageMakerTransport("no-such-endpoint", "us-east-1", 1, 10).call(
            Payload(b"x", "image/png", 1)).status == 400
        # `platbench load sagemaker:NAME` on an endpoint that already runs
        from platforms.bench.loadtest import parse_target, run_load
        from platforms.core.load_report import summarize
        from platforms.core.load_runner import LoadSettings

        data = run_load(parse_target("sagemaker:pb-ep-415"), _payloads(), LoadSettings(requests=12, concurrency=3, warmup=0),
                        settings={"region": "us-east-1"})
        assert summarize(data)["summary"]["ok"] == 12
    finally:
        ep.teardown()
    _nothing_left(settings["bucket"])


@pytest.mark.parametrize("settings, words", [
    ({"instance_type": "ml.nope.large"}, "unknown endpoint instance type"),
    ({"colour": "blue"}, "colour"),
    ({"bucket": None}, "add --set bucket="),
])
def test_bad_settings_fail_before_anything_is_created(sagemaker_env, settings, words):
    from platforms.sagemaker.endpoint import SageMakerEndpoint

    proxy, _, base = sagemaker_env
    merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(UserError, match=words):
        SageMakerEndpoint(merged).check()
    assert not [r for r in proxy.requests if "Create" in r[2].get("X-Amz-Target", "")]


# ------------------------------------------------------------------------------------------ Vertex AI

def test_dry_run_prints_the_plan_and_cost_and_creates_nothing(tmp_path):
    from conftest import assert_one_line_error, platbench

    proc = platbench("endpoint", "sagemaker", "--dry-run", "--set", "bucket=pb-bucket", "--set", "name=pb-dry",
                     "--set", "instance_type=ml.g4dn.xlarge", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "aws sagemaker create-endpoint --endpoint-name pb-dry --endpoint-config-name pb-dry" in proc.stdout
    assert "aws sagemaker delete-endpoint --endpoint-name pb-dry" in proc.stdout
    # the hosting price (prices.yaml section endpoint), not the training one (0.7364)
    assert re.search(r"cost while up: \$0\.7360/hour, \$17\.66/day, \$537\.28/month \(730 h\), \$6447\.36/year",
                     proc.stdout), proc.stdout
    assert "training list price stands in" not in proc.stdout
    assert not (tmp_path / "mlflow.db").exists()
    proc = platbench("endpoint", "azure", "--dry-run", cwd=tmp_path, timeout=60)
    assert_one_line_error(proc)
    assert "unknown platform 'azure'" in proc.stderr


def test_an_instance_type_whose_gpu_the_image_cannot_use_is_refused():
    """Issue 12 item 9: hosting on ml.p3 (V100, sm_70) would load a model the image's torch cannot run."""
    import re

    from platforms.sagemaker.endpoint import SageMakerEndpoint

    with pytest.raises(UserError, match=re.escape("ml.p3.2xlarge has V100 GPUs (sm_70)")):
        SageMakerEndpoint({"bucket": "bkt", "role": "r", "image_uri": "img", "instance_type": "ml.p3.2xlarge"})


def test_an_endpoint_made_by_a_create_whose_answer_was_lost_is_deleted(sagemaker_env, model):
    """Reviewer finding 4: SageMaker makes the endpoint but its CreateEndpoint answer never arrives (the connection
    closes: here the proxy makes it on moto, then resets); the deploy fails, and the teardown deletes the endpoint
    it never heard of, with the rest."""
    import boto3

    from platforms.bench.endpoint import deployed

    proxy, _, settings = sagemaker_env
    host, port = proxy.upstream
    made = []

    def created_then_lost(method, path, headers):
        if headers.get("X-Amz-Target") != "SageMaker.CreateEndpoint":
            return False
        if not made:  # moto itself: the proxy's lock is held
            sm = boto3.client("sagemaker", endpoint_url=f"http://{host}:{port}")
            made.append(sm.create_endpoint(EndpointName="pb-ep-lost", EndpointConfigName="pb-ep-lost"))
        return True

    proxy.fail(created_then_lost, "reset", 1)
    # the SDK's retry refused (AWS refuses creating an endpoint that exists; moto would make it again)
    proxy.fail(lambda m, p, h: h.get("X-Amz-Target") == "SageMaker.CreateEndpoint", "403", 1)
    with pytest.raises(UserError, match="AccessDenied"):
        with deployed("sagemaker", model, {**settings, "name": "pb-ep-lost"}):
            raise AssertionError("served")
    assert made and not _sent(proxy, "DescribeEndpoint")  # the deploy never learnt of it
    assert [d["EndpointName"] for d in _sent(proxy, "DeleteEndpoint")] == ["pb-ep-lost"]
    _nothing_left(settings["bucket"])


def test_a_teardown_that_finds_the_endpoint_gone_counts_it_as_deleted(sagemaker_env, model):
    """The endpoint recorded before CreateEndpoint that SageMaker refused (its config is missing): its delete
    finds nothing, which counts as deleted, not as a failure that leaves charges."""
    from platforms.bench.endpoint import deployed

    proxy, _, settings = sagemaker_env
    proxy.fail(lambda m, p, h: h.get("X-Amz-Target") == "SageMaker.CreateEndpoint", "403", 1)
    with pytest.raises(UserError) as err:
        with deployed("sagemaker", model, {**settings, "name": "pb-ep-refused"}):
            raise AssertionError("served")
    assert "could not delete" not in str(err.value)
    _nothing_left(settings["bucket"])
