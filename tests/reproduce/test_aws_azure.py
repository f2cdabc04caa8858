"""The AWS-vs-Azure paper's per-batch pipeline (platforms/reproduce/pipeline.py): upload, download and inference
per batch in s/MiB and throughput by the paper's definition, on this machine (a disk folder and the trainer's
server) and on the emulated SageMaker and Azure ML endpoints and stores (moto S3, Azurite); the model is the
session's trained digits model (tests/_runs.py), recorded as the platform's finished run of the study's sweep,
since no figure here comes from training. The figures are checked against the batches' real bytes and against
scipy's Kruskal–Wallis on the same per-batch values."""
from __future__ import annotations

import re
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from _mlflow_store import empty_store, here  # noqa: F401 (fixtures)
from _pipeline_runs import record_batches
from _markdown import table_rows
from _endpoint_servers import model  # noqa: F401 (fixture)

from platforms.reproduce import pipeline, pipeline_figures, pipeline_plan, plan as plan_mod, protocol
from platforms.reproduce.execute import STUDY_TAG
from platforms.reproduce.ledger import Ledger

TESTS = Path(__file__).resolve().parent.parent
for _folder in ("azureml",):  # the emulators' helpers, as tests/launchers/launcher_rigs.py finds them
    if str(TESTS / _folder) not in sys.path:
        sys.path.append(str(TESTS / _folder))
from azureml_server import azure_ml  # noqa: E402,F401 (fixtures)
from azurite_server import azurite, blob_env  # noqa: E402,F401
from conftest_clouds import aws, moto_server  # noqa: E402,F401
from _endpoint_servers import container, sagemaker_env, price, USD_PER_HOUR  # noqa: E402,F401 (fixtures; a price cache of the test's own)

MIB = 2 ** 20


def small_test_split(src: Path, dest: Path, per_class: int) -> Path:
    """The first images of each class of the digits' test split: a few small batches, quick to infer."""
    for cls in sorted(p for p in (src / "test").iterdir() if p.is_dir()):
        out = dest / "test" / cls.name
        out.mkdir(parents=True)
        for f in sorted(cls.iterdir())[:per_class]:
            shutil.copy(f, out / f.name)
    return dest


def aws_azure_plan(platforms: list[str], data: Path, images: int, settings: dict | None = None):
    proto = protocol.load("aws-azure")
    proto = proto.model_copy(update={"local": proto.local.model_copy(update={"batch_images": images})})
    return plan_mod.make(proto, platforms, data, settings=settings or {})


def record_trained(plan, platform: str, model_dir: Path) -> str:
    """The platform's finished run of the study's sweep, as a sweep cell records it, with the model to serve."""
    from platforms.core import tracking

    T = tracking.Tag
    tags = {T.SWEEP: plan.sweep_name(plan.groups[0]), T.PLATFORM: platform, T.STATUS: "finished",
            T.MODEL: plan.groups[0].model, STUDY_TAG: plan.proto.study}
    with tracking.tracked_run(f"trained-{platform}", {"per_class": "None", "seed": 0}, tags) as tr:
        tr.client.log_artifacts(tr.run_id, str(model_dir), "model")
        tr.end("FINISHED")
        return tr.run_id


def history(run_id: str, name: str) -> list[float]:
    from platforms.core import tracking

    return [m.value for m in sorted(tracking.client().get_metric_history(run_id, name), key=lambda m: m.step)]


def batch_bytes(data: Path, size: int) -> list[int]:
    from platforms.bench.load_payloads import image_files

    files = image_files([data / "test"])
    return [sum(f.stat().st_size for f in files[i:i + size]) for i in range(0, len(files), size)]


def check_figures(run_id: str, data: Path, size: int) -> None:
    """Each batch's MiB is its files' bytes / 2^20; throughput is MiB / (download + inference) — in per-MiB
    terms 1 / (download s/MiB + inference s/MiB); every image answered."""
    mib = history(run_id, "pipeline_batch_mib")
    assert mib == pytest.approx([b / MIB for b in batch_bytes(data, size)], rel=1e-9)
    down, inf = history(run_id, "pipeline_download_s_per_mib"), history(run_id, "pipeline_inference_s_per_mib")
    thr = history(run_id, "pipeline_throughput_mib_per_s")
    assert thr == pytest.approx([1 / (d + i) for d, i in zip(down, inf)], rel=1e-6)
    assert len(history(run_id, "pipeline_upload_s_per_mib")) == len(mib) and all(v > 0 for v in down + inf)
    assert history(run_id, "pipeline_errors") == [0.0] * len(mib)


def pipeline_run(run_id_of_platform: str):
    from platforms.core import tracking

    c = tracking.client()
    exp = c.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    return c.search_runs([exp], f"tags.`platbench.kind` = 'pipeline' and tags.`platbench.platform` = '{run_id_of_platform}'")


def test_local_pipeline_batches_figures_run_and_page(model, digits_data, here):
    from platforms.report import study_page

    tmp_path = here
    data = small_test_split(digits_data, tmp_path / "data", 4)  # 40 images: batches of 16, 16, 8
    plan = aws_azure_plan(["local"], data, 16)
    record_trained(plan, "local", model)
    said: list[str] = []
    assert pipeline.run(plan, None, None, said.append) == 0
    (run,) = pipeline_run("local")
    assert run.data.tags[STUDY_TAG] == "aws-azure" and run.data.tags["platbench.status"] == "finished"
    assert run.data.tags[pipeline_plan.STORE_TAG] == "a folder on this machine's disk (not a cloud store)"
    assert run.data.params["batch_images"] == "16" and run.data.params["batches"] == "3"
    check_figures(run.info.run_id, data, 16)
    m = run.data.metrics
    thr = history(run.info.run_id, "pipeline_throughput_mib_per_s")
    assert m["pipeline_throughput_mib_per_s_median"] == pytest.approx(statistics.median(thr))
    assert m["pipeline_throughput_mib_per_s_n"] == 3 and any("pipeline on local: 3 batch(es)" in s for s in said)

    # the page: our per-batch values beside the paper's, n = batches, in MiB, the store said
    md = study_page.write(protocol.load("aws-azure"), tmp_path / "page")[0].read_text()
    rows = {(r[0], r[1], r[2].split()[0]): r for r in table_rows(md, "Quantity")}
    down = rows[("download time per batch", "AWS", "mean")]
    assert down[3].startswith("local: ") and "(n = 3;" in down[3]
    # a median row shows our median (not our mean), beside theirs
    from platforms.report.sections.study import _num

    per_batch = history(run.info.run_id, pipeline_plan.METRICS["download_s_per_mb"])
    median_row = rows[("download time per batch", "AWS", "median")]
    assert median_row[3].startswith(f"local: median {_num(statistics.median(per_batch))} s/MB (n = 3; IQR ")
    assert "MiB (the paper's text says mebibyte" in down[4] and "a folder on this machine's disk" in down[4]
    assert "endpoint the trainer's server (python -m trainer serve) on loopback" in down[4]
    kw = [r for k, r in rows.items() if k[0].startswith("Kruskal")]
    assert kw and all("needs the per-batch values of two platforms" in r[4] for r in kw)
    cost = rows[("whole deployment cost per day", "AWS", "12.8736")]
    assert "not billed" in cost[4]
    assert not [r for r in table_rows(md, "Not measured here") if "per-batch pipeline" in r[0]]


def test_the_figures_are_per_mib_of_each_batch_and_kruskal_wallis_is_scipys_on_them(here):
    """Would catch measuring the wrong thing: s/MiB over the batch's bytes (not its images, not 10^6 bytes),
    throughput = MiB / (download + inference) (upload left out, as the paper's "retrieval + inference"), the
    H statistic of exactly our per-batch values, and the day's cost at the study's 24 h."""
    from scipy import stats

    from platforms.report import data

    rng = np.random.default_rng(7)

    def batches(scale: float) -> list:
        return [pipeline.Batch(1024, float(mib), *(rng.uniform(0.5, 1.5, 3) * scale * mib), 0)
                for mib in rng.uniform(2.0, 3.0, 8)]
    aws, azure = batches(1.0), batches(0.8)
    record_batches("sagemaker", aws, usd_per_hour=0.115)
    record_batches("azureml", azure)
    store = data.gather(None)
    proto = protocol.load("aws-azure")

    def measure(quantity: str, platform: str):
        return pipeline_figures.measure(proto, quantity, store, platform)

    values, runs, note = measure("download_s_per_mb", "sagemaker")
    assert values == pytest.approx([b.download_s / b.mib for b in aws]) and len(runs) == 1
    assert f"median {statistics.median(values):.4g}" in note and "n = batches of 1024 images" in note
    values, _, _ = measure("throughput_mb_per_s", "azureml")
    assert values == pytest.approx([b.mib / (b.download_s + b.inference_s) for b in azure])
    values, _, _ = measure("upload_s_per_mb", "azureml")
    assert values == pytest.approx([b.upload_s / b.mib for b in azure])

    for side, q in (("download", "download_s"), ("inference", "inference_s")):
        values, runs, note = measure(f"kruskal_wallis_h_{side}", "sagemaker")
        ours = stats.kruskal([getattr(b, q) / b.mib for b in aws], [getattr(b, q) / b.mib for b in azure])
        assert values == [pytest.approx(ours.statistic)] and "8 + 8 batches (sagemaker vs azureml)" in note
        assert "platbench's run-level test" in note and len(runs) == 2

    values, _, note = measure("deployment_usd_per_day", "sagemaker")
    assert values == [pytest.approx(0.115 * 24)]
    assert "left out: no storage price" in note and "client VM not included" in note
    assert measure("deployment_usd_per_hour", "azureml")[0] == []
    assert measure("latency_p50_ms", "sagemaker") is None  # not the pipeline's


def cloud_plan(data: Path, images: int, training: dict, endpoints: dict):
    """The plan on the study's two platforms: the store takes the training settings (bucket/container, region),
    the endpoint its own (the emulators' role, image, poll step)."""
    plan = aws_azure_plan(list(training), data, images)
    plan.settings, plan.endpoint_settings = training, endpoints
    return plan


def test_pipeline_on_emulated_sagemaker_and_azureml_leaves_nothing(model, digits_data, here, sagemaker_env,
                                                                   azure_ml, blob_env):
    """Each platform's store (moto's S3, Azurite's Blob container) and endpoint (SageMaker's and Azure ML's
    loopback control planes, the real `serve` behind them), one pipeline run each, everything deleted after."""
    import boto3
    from azureml_server import SUBSCRIPTION
    from azurite_server import new_container
    from azure.storage.blob import BlobServiceClient

    _, runtime, sm = sagemaker_env
    container = new_container(blob_env)
    az = {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "workspace": "ws",
          "image": "myacr.azurecr.io/platbench@sha256:" + "d" * 64, "container": container}
    data = small_test_split(digits_data, here / "data", 2)  # 20 images: batches of 8, 8, 4
    plan = cloud_plan(data, 8, {"sagemaker": {"region": sm["region"], "bucket": sm["bucket"]},
                                "azureml": {"container": container}},
                      {"sagemaker": sm, "azureml": az})
    for platform in plan.platforms:
        record_trained(plan, platform, model)
    assert pipeline.run(plan, None, None, lambda s: None) == 0
    for platform, where in (("sagemaker", f"s3://{sm['bucket']}/platbench/reproduce/aws-azure-"),
                            ("azureml", f"az://{container}/platbench/reproduce/aws-azure-")):
        (run,) = pipeline_run(platform)
        assert run.data.tags[pipeline_plan.STORE_TAG].startswith(where), run.data.tags
        assert run.data.params["batches"] == "3"
        check_figures(run.info.run_id, data, 8)
    assert runtime.calls == 20  # every image inferred once through SageMaker's runtime
    assert pipeline_run("sagemaker")[0].data.metrics["endpoint_usd_per_hour"] > 0
    # the machine each endpoint ran on is part of the run's condition (runs on two machines are never pooled)
    assert pipeline_run("sagemaker")[0].data.tags["platbench.instance_type"] == "1x ml.m5.large"
    assert pipeline_run("azureml")[0].data.tags["platbench.instance_type"] == "1x Standard_DS3_v2"
    # nothing left: no endpoint, no batch object in either store
    assert boto3.client("sagemaker").list_endpoints()["Endpoints"] == []
    assert boto3.client("s3").list_objects_v2(Bucket=sm["bucket"]).get("KeyCount", 0) == 0
    assert azure_ml.deployments == {}
    blobs = BlobServiceClient.from_connection_string(blob_env).get_container_client(container).list_blobs()
    assert [b.name for b in blobs if "/reproduce/" in b.name or "/endpoints/" in b.name] == []

    # the page: each study platform's own per-batch values, the paper's H on ours of the two, the day's cost
    from platforms.report import study_page

    md = study_page.write(protocol.load("aws-azure"), here / "page")[0].read_text()
    rows = {(r[0], r[1], r[2].split()[0]): r for r in table_rows(md, "Quantity")}
    assert rows[("download time per batch", "AWS", "mean")][3].startswith("sagemaker: ")
    assert rows[("inference time per batch", "Azure", "mean")][3].startswith("azureml: ")
    kw = rows[("Kruskal–Wallis H on per-batch download times (theirs)", "AWS vs Azure (download)", "93.754")]
    assert re.search(r": \S+ H \(n = 1\)$", kw[3]) and "on 3 + 3 batches (sagemaker vs azureml)" in kw[4]
    usd = pipeline_run("sagemaker")[0].data.metrics["endpoint_usd_per_hour"]
    day = rows[("whole deployment cost per day", "AWS", "12.8736")]
    assert day[3] == f"sagemaker: {usd * 24:.2f} USD/day (n = 1)" and "client VM not included" in day[4]


def budget_of(seconds: float) -> float:
    """A budget that lets the emulated SageMaker endpoint serve `seconds` before its watch stops it."""
    from platforms.core.cost_plan import endpoint_margin

    return USD_PER_HOUR * (endpoint_margin("sagemaker", USD_PER_HOUR, 1.0)[0] + seconds) / 3600


def test_a_budget_stops_the_pipeline_and_deletes_everything(model, digits_data, here, sagemaker_env, price):
    """--max-usd reaches the pipeline's endpoint: at USD_PER_HOUR (a cent a second) a budget of 1.5 s beyond the
    watch's margin (the interrupt and the deletes) is crossed while the digits' 45 batches of 8 run; the endpoint
    and the store's prefix are deleted, the run says why."""
    import boto3

    _, _, sm = sagemaker_env
    plan = cloud_plan(digits_data, 8, {"sagemaker": {"region": sm["region"], "bucket": sm["bucket"]}},
                      {"sagemaker": sm})
    record_trained(plan, "sagemaker", model)
    said: list[str] = []
    ledger = Ledger(budget_of(1.5))
    # as `platbench sweep` when its budget stops a cell: exit 1, one line; the run ends KILLED as a launch's does
    assert pipeline.run(plan, None, ledger, said.append) == 1
    (run,) = pipeline_run("sagemaker")
    assert run.data.tags["platbench.stopped_by"] == "budget" and run.data.tags["platbench.status"] == "killed"
    assert run.info.status == "KILLED"
    (line,) = [s for s in said if "stopped by budget" in s]
    assert line.startswith("reproduce aws-azure: pipeline on sagemaker killed: stopped by budget") and \
        run.info.run_id in line
    assert len(history(run.info.run_id, "pipeline_batch_mib")) < 45
    assert boto3.client("sagemaker").list_endpoints()["Endpoints"] == []
    assert boto3.client("s3").list_objects_v2(Bucket=sm["bucket"]).get("KeyCount", 0) == 0
    # one budget for the command: the endpoint's spend is counted in it, and after the stop nothing more starts
    assert 0 < ledger.spent <= ledger.max_usd and ledger.stopped.startswith("endpoint ")
    said.clear()
    assert pipeline.run(plan, None, ledger, said.append) == 1
    assert said == [f"budget: the pipeline on sagemaker not started, nor any later sweep, endpoint or pipeline: the "
                    f"budget stopped {ledger.stopped}"]
    assert len(pipeline_run("sagemaker")) == 1

def test_a_store_cleanup_error_does_not_hide_the_budget_stop(model, digits_data, here, sagemaker_env, price):
    """The budget stops the pipeline and the store's cleanup then fails (its bucket is gone by the time the
    endpoint is being deleted): the run is still killed by the budget, and both errors are said."""
    import boto3

    _, _, sm = sagemaker_env
    plan = cloud_plan(digits_data, 8, {"sagemaker": {"region": sm["region"], "bucket": sm["bucket"]}},
                      {"sagemaker": sm})
    record_trained(plan, "sagemaker", model)
    said: list[str] = []

    def say(text: str) -> None:
        said.append(text)
        if text.startswith("deleting endpoint"):  # the bucket removed under the pipeline: its cleanup fails
            s3 = boto3.client("s3")
            for o in s3.list_objects_v2(Bucket=sm["bucket"]).get("Contents", []):
                s3.delete_object(Bucket=sm["bucket"], Key=o["Key"])
            s3.delete_bucket(Bucket=sm["bucket"])

    assert pipeline.run(plan, None, Ledger(budget_of(1.5)), say) == 1
    (run,) = pipeline_run("sagemaker")
    assert run.data.tags["platbench.stopped_by"] == "budget" and run.info.status == "KILLED"
    assert any("stopped by budget" in s for s in said)
    assert any("could not remove" in s and "NoSuchBucket" in s for s in said), said
    assert boto3.client("sagemaker").list_endpoints()["Endpoints"] == []


def test_the_pipelines_endpoint_and_store_are_checked_before_training(digits_data, here, aws):
    """aws-azure has no request plans, yet its pipeline deploys an endpoint and fills a store on each cloud
    platform: both are checked before any training is paid for, and a budget refuses an endpoint it cannot
    watch (no price) there too, in one line each."""
    import boto3

    from platforms.errors import UserError

    bucket = "pb-pipeline-check"
    boto3.client("s3").create_bucket(Bucket=bucket)
    bogus = {"region": "us-east-1", "bucket": bucket, "instance_type": "ml.bogus"}
    plan = cloud_plan(digits_data, 8, {"sagemaker": {"region": "us-east-1", "bucket": bucket}}, {"sagemaker": bogus})
    with pytest.raises(UserError, match="ml.bogus"):
        plan_mod.check_endpoints(plan)
    with pytest.raises(UserError, match=r"--max-usd 5: the sagemaker endpoint has no price"):
        plan_mod.check_endpoints(plan, max_usd=5)
    plan = cloud_plan(digits_data, 8, {"sagemaker": {"region": "us-east-1", "bucket": "pb-absent"}},
                      {"sagemaker": {"region": "us-east-1", "bucket": bucket}})
    with pytest.raises(UserError, match="bucket 'pb-absent' does not exist"):
        plan_mod.check_endpoints(plan)


def test_one_budget_for_the_command_counts_what_this_commands_cells_cost(digits_data, here):
    """The ledger takes what the sweep's cells that started in this command cost (billed, else the list estimate;
    an earlier session's cell and the sweep's parent are not this command's spend); a cell the budget stopped
    stops every later sweep, endpoint and pipeline, in one line each."""
    import time

    from platforms.core import tracking
    from platforms.reproduce import execute

    plan = aws_azure_plan(["local"], digits_data, 8)
    name = plan.sweep_name(plan.groups[0])
    T = tracking.Tag

    def cell(metrics: dict, tags: dict | None = None) -> None:
        with tracking.tracked_run("cell", {}, {T.SWEEP: name, **(tags or {})}) as tr:
            tr.metrics(metrics)
            tr.end("FINISHED")

    cell({"cost_usd": 7.0})  # an earlier session's
    time.sleep(0.01)
    since_ms = int(time.time() * 1000)
    cell({"cost_usd": 0.5}, {T.KIND: "sweep"})  # the parent
    cell({"cost_usd": 0.25, "cost_list_estimate_usd": 0.3})
    cell({"cost_list_estimate_usd": 1.0}, {"platbench.stopped_by": "budget"})
    ledger = Ledger(5.0)
    ledger.count_sweep(name, since_ms)
    assert ledger.spent == pytest.approx(1.25) and ledger.left() == pytest.approx(3.75)
    assert ledger.stopped.startswith(f"a cell of sweep {name}")
    said: list[str] = []
    assert execute.run(plan, None, ledger, said.append) == 1
    assert said == [f"budget: sweep {name} not started, nor any later sweep, endpoint or pipeline: the budget "
                    f"stopped {ledger.stopped}"]
    assert pipeline.run(plan, None, ledger, said.append) == 1 and len(said) == 1  # said once for the command
    assert Ledger(None).refuses("anything", said.append) is False
    assert not Ledger(0.0).refuses("a local sweep", said.append)  # nothing spent: a free plan runs
    spent = Ledger(1.0, spent=1.0)
    assert spent.refuses("the pipeline on sagemaker", said.append) and "--max-usd 1 is spent" in said[-1]


def test_the_plans_budget_holds_its_endpoints_too(digits_data, tmp_path, monkeypatch):
    """The dry run's cost plan under --max-usd counts the pipeline's endpoints: priced, each is watched against
    what is left of the one budget (said); with no price, the plan is refused in one line, nothing created."""
    from platforms.errors import UserError

    for name in [k for k in __import__("os").environ if k.startswith(("AWS_", "AZURE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    proto = protocol.load("aws-azure")
    plan = plan_mod.make(proto, ["sagemaker"], digits_data)
    text = plan_mod.text(plan, max_usd=1e6)
    assert "endpoints: 1 deployment(s) on sagemaker" in text and "the watch stops each" in text
    plan = plan_mod.make(proto, ["sagemaker"], digits_data, settings={"sagemaker": {"endpoint.instance_type": "ml.bogus"}})
    with pytest.raises(UserError, match=r"--max-usd 1e\+06: the sagemaker endpoint has no price"):
        plan_mod.text(plan, max_usd=1e6)
    assert "no price" in plan_mod.text(plan)  # without a budget the dry run says so and goes on
    with pytest.raises(UserError, match=r"--max-usd 0: the plan deploys an endpoint on sagemaker, which bills"):
        plan_mod.text(plan_mod.make(proto, ["sagemaker"], digits_data), max_usd=0)
    assert list(tmp_path.iterdir()) == []


def test_dry_run_on_the_studys_platforms_needs_no_credentials(digits_data, tmp_path, monkeypatch):
    """The pipeline's part of `reproduce aws-azure --dry-run --platform sagemaker,azureml`: the batches, each
    platform's store and endpoint with its price; no credentials in the environment, nothing created."""
    for name in [k for k in __import__("os").environ if k.startswith(("AWS_", "AZURE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    plan = plan_mod.make(protocol.load("aws-azure"), ["sagemaker", "azureml", "local"], digits_data)
    text = "\n".join(pipeline_plan.plan_lines(plan))
    assert "355 test images in 6 batch(es) of up to 64" in text
    assert "sagemaker: store s3://BUCKET/platbench/reproduce/<id>/ (removed after); endpoint" in text
    assert "azureml: store az://platbench/platbench/reproduce/<id>/" in text
    assert "local: store a folder on this machine's disk (not a cloud store)" in text
    assert text.count("Cost plan: the endpoint at ") == 2 and "USD/h" in text
    assert list(tmp_path.iterdir()) == []
