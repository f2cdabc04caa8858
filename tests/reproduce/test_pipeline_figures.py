"""The AWS-vs-Azure pipeline's figures (platforms/reproduce/pipeline_figures.py) from pipeline runs recorded as
pipeline.run_platform records them (tests/reproduce/test_aws_azure.py's record_batches, with the batch size and the
endpoint as arguments): no training, no server. Unlike runs (another batch size, another endpoint) are never pooled,
and a batch with failed requests is left out of the inference and throughput figures."""
from __future__ import annotations


import pytest
from _mlflow_store import empty_store, here  # noqa: F401 (fixtures)
from _pipeline_runs import record_batches

from platforms.reproduce import pipeline, pipeline_figures, protocol


def batch(images: int, seconds: float, errors: int = 0) -> pipeline.Batch:
    """A batch of 1 MiB: its s/MiB are the seconds given (upload, download, inference alike)."""
    return pipeline.Batch(images, 1.0, seconds, seconds, seconds, errors)


def figure(quantity: str, platform: str):
    from platforms.report import data

    return pipeline_figures.measure(protocol.load("aws-azure"), quantity, data.gather(None), platform)


def test_runs_of_another_batch_size_are_not_pooled_only_counted(here):
    """Would catch a median over batches of 1,024 and of 64 images (finding 5): the newest run's batch size only."""
    record_batches("local", [batch(64, 9.0)] * 3, size=64)
    record_batches("local", [batch(1024, 1.0), batch(1024, 2.0)], size=1024)
    values, runs, note = figure("download_s_per_mb", "local")
    assert values == [1.0, 2.0] and len(runs) == 1
    assert "n = batches of 1024 images" in note and "1 run of another batch size left out" in note


def test_runs_on_another_endpoint_are_not_pooled_only_counted(here):
    """Each deployment has a name of its own (one run each): the endpoint's kind and its instance type are what
    make runs unlike, not the name."""
    from platforms.core.tags import Tag

    record_batches("sagemaker", [batch(1024, 5.0)] * 2, endpoint="sagemaker:platbench-a",
                   **{Tag.INSTANCE_TYPE: "ml.c5.large"})
    record_batches("sagemaker", [batch(1024, 2.0)] * 2, endpoint="sagemaker:platbench-b",
                   **{Tag.INSTANCE_TYPE: "ml.g4dn.xlarge"})
    record_batches("sagemaker", [batch(1024, 1.0)] * 2, endpoint="sagemaker:platbench-c",
                   **{Tag.INSTANCE_TYPE: "ml.g4dn.xlarge"})
    values, runs, note = figure("inference_s_per_mb", "sagemaker")
    assert sorted(values) == [1.0, 1.0, 2.0, 2.0] and len(runs) == 2
    assert "1 run on another endpoint left out" in note


def test_the_cost_is_the_newest_endpoints_not_a_median_over_instance_types(here):
    from platforms.core.tags import Tag

    record_batches("sagemaker", [batch(1024, 1.0)], endpoint="sagemaker:platbench-a", usd_per_hour=3.0,
                   **{Tag.INSTANCE_TYPE: "ml.g5.xlarge"})
    record_batches("sagemaker", [batch(1024, 1.0)], endpoint="sagemaker:platbench-b", usd_per_hour=0.1,
                   **{Tag.INSTANCE_TYPE: "ml.c5.large"})
    values, runs, note = figure("deployment_usd_per_hour", "sagemaker")
    assert values == [pytest.approx(0.1)] and len(runs) == 1 and "1 run on another endpoint left out" in note


def test_kruskal_wallis_compares_batches_of_the_same_size_only(here):
    """Would catch H over 1,024-image batches of one platform against 64-image batches of the other."""
    from scipy import stats

    record_batches("sagemaker", [batch(64, s) for s in (7.0, 8.0, 9.0)], size=64)
    record_batches("sagemaker", [batch(1024, s) for s in (1.0, 2.0, 3.0)])
    record_batches("azureml", [batch(1024, s) for s in (1.5, 2.5, 3.5, 4.5)])
    values, runs, note = figure("kruskal_wallis_h_download", "sagemaker")
    assert values == [pytest.approx(stats.kruskal([1.0, 2.0, 3.0], [1.5, 2.5, 3.5, 4.5]).statistic)]
    assert "3 + 4 batches (sagemaker vs azureml) of 1024 images" in note
    assert "1 run of another batch size left out" in note
    assert len(runs) == 2


def test_batches_with_failed_requests_leave_inference_and_throughput_not_transfer(here):
    """Would catch a batch whose requests failed fast counted as fast inference (finding 6); its upload and
    download succeeded and still count."""
    record_batches("local", [batch(1024, 1.0), batch(1024, 0.01, errors=5), batch(1024, 3.0)])
    for q in ("inference_s_per_mb", "throughput_mb_per_s"):
        values, _, note = figure(q, "local")
        assert len(values) == 2 and "1 batch with failed requests left out" in note
    assert figure("inference_s_per_mb", "local")[0] == [1.0, 3.0]
    assert figure("download_s_per_mb", "local")[0] == [1.0, 0.01, 3.0]
    assert figure("upload_s_per_mb", "local")[0] == [1.0, 0.01, 3.0]


def test_kruskal_wallis_on_inference_leaves_out_batches_with_failed_requests(here):
    from scipy import stats

    record_batches("sagemaker", [batch(1024, 1.0), batch(1024, 0.01, errors=1), batch(1024, 3.0)])
    record_batches("azureml", [batch(1024, s) for s in (1.5, 2.5, 3.5)])
    values, _, note = figure("kruskal_wallis_h_inference", "sagemaker")
    assert values == [pytest.approx(stats.kruskal([1.0, 3.0], [1.5, 2.5, 3.5]).statistic)]
    assert "1 batch with failed requests left out" in note
    values, _, _ = figure("kruskal_wallis_h_download", "sagemaker")
    assert values == [pytest.approx(stats.kruskal([1.0, 0.01, 3.0], [1.5, 2.5, 3.5]).statistic)]
