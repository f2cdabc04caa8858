"""Azure ML multi-node: a command job over instance_count nodes with the PyTorch distribution, sent by the
real azure-ai-ml SDK to the loopback control plane (azureml_server.py), which checks the body against the
SDK's REST models and a compute cluster's node limit, and runs it as Azure ML documents: every node's
processes started with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, RANK and LOCAL_RANK (azureml_jobs.py,
written from how-to-train-distributed-gpu; each node a folder of its own on this machine). So the trainer's
reading of those variables (trainer/environment.py) trains one DDP run over two "nodes" here, for real."""
from __future__ import annotations

import pytest
from azureml_server import SUBSCRIPTION, azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env  # noqa: F401 (fixtures)
from test_azureml_cloud import (CPU_CLUSTER, IMAGE, dataset, refused_before_anything_is_created,  # noqa: F401
                                run, settings)

from platforms.core import tracking
from platforms.core.api import Job


def test_two_nodes_carry_instance_count_and_the_pytorch_distribution(dataset, tmp_path, monkeypatch, azure_ml,
                                                                     settings):
    monkeypatch.chdir(tmp_path)
    outcome, run_id = run(Job(data=dataset, out=tmp_path / "out", epochs=1),
                          {**settings, "compute": CPU_CLUSTER, "instance_count": "2", "job_name": "pb-2n"})
    assert outcome.status == "finished", outcome.message
    assert azure_ml.refusals == []
    # the body as the service receives it (validated by the server against the SDK's REST models)
    doc = azure_ml.resources[azure_ml.calls("PUT", r"/jobs/pb-2n$")[0].lower()]["properties"]
    assert doc["resources"]["instanceCount"] == 2 and doc["computeId"].endswith(f"/computes/{CPU_CLUSTER}")
    assert doc["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 1}
    assert doc["environmentVariables"]["PLATBENCH_PROCESS_COUNT_PER_INSTANCE"] == "1"
    assert "torchrun" not in doc["command"]  # Azure ML starts the ranks
    # the server started one process per node with the documented rank variables, and the trainer read them:
    # one DDP run over 2 nodes, written by rank 0 into the job's output
    job = azure_ml.jobs["pb-2n"]
    assert len(job.processes) == 2 and [p.returncode for p in job.processes] == [0, 0]
    import json

    hardware = json.loads((tmp_path / "out" / "results.json").read_text())["hardware"]
    assert (hardware["world_size"], hardware["nodes"]) == (2, 2)
    r = tracking.client().get_run(run_id)
    m = r.data.metrics
    # every node is billed while the job runs: running seconds x the cluster size's list price x 2 (its quote
    # and its list estimate alike: the cluster's size, not the serverless instance_type setting)
    assert m["phase_seconds_training"] > 0
    assert m["cost_usd"] == pytest.approx(m["phase_seconds_training"] / 3600 * 0.192 * 2, rel=0.05)
    assert m["cost_list_estimate_usd"] == pytest.approx(m["cost_usd"], rel=1e-6)
    assert r.data.tags["platbench.instance_count"] == "2"


@pytest.mark.parametrize("extra, message", [
    ({"compute": "gpu-cluster", "instance_count": "5"}, "compute cluster 'gpu-cluster' scales to at most 4 nodes"),
    ({"instance_type": "Standard_NC4as_T4_v3", "process_count_per_instance": "2"},
     "process_count_per_instance 2: Standard_NC4as_T4_v3 has 1 GPU(s)"),
    ({"compute": "gpu-cluster", "process_count_per_instance": "2"},
     "process_count_per_instance 2: Standard_NC4as_T4_v3 has 1 GPU(s)"),
])
def test_more_than_the_compute_offers_stops_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env,
                                                                       azure_ml, settings, extra, message):
    refused_before_anything_is_created(dataset, tmp_path, monkeypatch, blob_env, azure_ml, {**settings, **extra},
                                       message)


def test_the_server_refuses_more_nodes_than_the_cluster_has(azure_ml):
    """What the service would refuse even if the launcher's own check were skipped."""
    from azure.ai.ml import MLClient, PyTorchDistribution, command
    from azure.ai.ml.entities import Environment
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential

    azure_ml.computes["small-cluster"] = {"vmSize": "Standard_NC4as_T4_v3", "maxNodes": 2}
    client = MLClient(DefaultAzureCredential(), SUBSCRIPTION, "rg", "ws")
    assert client.compute.get("small-cluster").max_instances == 2
    job = command(name="pb-too-many", command="train", environment=Environment(image=IMAGE), compute="small-cluster",
                  instance_count=3, distribution=PyTorchDistribution(process_count_per_instance=1))
    with pytest.raises(HttpResponseError, match="Requested 3 nodes"):
        client.jobs.create_or_update(job)
    assert "pb-too-many" not in azure_ml.jobs
