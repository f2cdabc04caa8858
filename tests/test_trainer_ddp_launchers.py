"""The cloud launchers' multi-node settings, validated and shown in their dry-run plans (no credentials,
nothing created): SageMaker instance_count + distribution torch_distributed, Vertex AI worker pools. In this
process (tests/stand_in/cli.py), but the first SageMaker plan through the real entry point."""
from __future__ import annotations

import json
import re

from stand_in.cli import platbench_here
from conftest import assert_one_line_error, platbench


def _json_after(text: str, marker: str) -> dict:
    start = text.index(marker) + len(marker)
    return json.JSONDecoder().raw_decode(text[start:].lstrip(" '"))[0]


def test_sagemaker_two_instances_plan(color_data, tmp_path):
    proc = platbench("launch", "sagemaker", "--data", str(color_data), "--devices", "2", "--set", "bucket=bench-bucket",
                     "--set", "instance_count=2", "--set", "distribution=torch_distributed", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    request = _json_after(proc.stdout, "--cli-input-json")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["HyperParameters"]["devices"] == "2"
    # every instance gets the whole dataset; each rank trains its slice of every batch
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    assert "torchrun --nnodes 2" in proc.stdout and "--nproc-per-node 2" in proc.stdout
    assert "resourceconfig.json" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_sagemaker_several_instances_need_the_distribution(color_data, tmp_path):
    proc = platbench_here("launch", "sagemaker", "--data", str(color_data), "--set", "bucket=bench-bucket", "--set",
                          "instance_count=2", "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and "distribution=torch_distributed" in proc.stderr
    proc = platbench_here("launch", "sagemaker", "--data", str(color_data), "--set", "bucket=bench-bucket", "--set",
                          "instance_count=2", "--set", "distribution=mpi", "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc)
    proc = platbench_here("launch", "sagemaker", "--data", str(color_data), "--nodes", "2", "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--set instance_count=2 distribution=torch_distributed" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_vertex_worker_pools_plan(color_data, tmp_path):
    proc = platbench_here("launch", "vertex", "--data", str(color_data), "--set", "project=p", "--set",
                          "bucket=bench-bucket", "--set", "replica_count=3", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = _json_after(proc.stdout, "# job.yaml:")
    pools = spec["workerPoolSpecs"]
    # workerpool0: the primary replica only (replicaCount 1); workerpool1: the others, the same container
    assert [p["replicaCount"] for p in pools] == ["1", "2"]
    assert pools[0]["containerSpec"] == pools[1]["containerSpec"] and pools[0]["machineSpec"] == pools[1]["machineSpec"]
    assert "CLUSTER_SPEC" in proc.stdout and re.search(r"torchrun --nnodes 3 ", proc.stdout)
    proc = platbench_here("launch", "vertex", "--data", str(color_data), "--set", "project=p", "--set",
                          "bucket=bench-bucket", "--set", "replica_count=2", "--set", "local=true", "--dry-run",
                          cwd=tmp_path)
    assert_one_line_error(proc)
    assert list(tmp_path.iterdir()) == []


def test_azureml_pytorch_distribution_plan(color_data, tmp_path):
    proc = platbench_here("launch", "azureml", "--data", str(color_data), "--devices", "2", "--set",
                          "storage_account=acct", "--set", "instance_type=Standard_NC24ads_A100_v4", "--set",
                          "instance_count=3", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = _json_after(proc.stdout, "job.yml:")
    assert spec["resources"] == {"instance_type": "Standard_NC24ads_A100_v4", "instance_count": 3}
    # Azure ML starts the ranks (process_count_per_instance from --devices): no torchrun in the command
    assert spec["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    assert spec["environment_variables"]["PLATBENCH_PROCESS_COUNT_PER_INSTANCE"] == "2"
    assert "torchrun" not in spec["command"] and "3 node(s) x 2 process(es)" in proc.stdout
    assert "NODE_RANK" in proc.stdout and "multi-node" not in proc.stdout
    # every node is priced: 3 x the A100 size's 3.673 USD/h
    assert f"({3 * 3.673:.4f} USD/h" in proc.stdout
    proc = platbench_here("launch", "azureml", "--data", str(color_data), "--set", "compute=gpu-cluster",
                          "--set", "instance_count=2", "--set", "process_count_per_instance=1", "--dry-run",
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = _json_after(proc.stdout, "job.yml:")
    assert spec["resources"] == {"instance_count": 2} and spec["compute"] == "azureml:gpu-cluster"
    assert "max_instances" in proc.stdout  # the plan names the cluster's node limit it checks
    assert list(tmp_path.iterdir()) == []


def test_azureml_multi_node_settings_refused(color_data, tmp_path):
    for bad, says in ((["instance_count=0"], "instance_count"), (["process_count_per_instance=0"], "process_count"),
                      (["instance_count=2", "local=true"], "local=true"),
                      (["process_count_per_instance=2"], "disagree")):
        extra = ["--devices", "3"] if says == "disagree" else []
        proc = platbench_here("launch", "azureml", "--data", str(color_data), *extra,
                              *(a for s in bad for a in ("--set", s)), "--dry-run", cwd=tmp_path)
        assert_one_line_error(proc)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    proc = platbench_here("launch", "azureml", "--data", str(color_data), "--nodes", "2", "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "--set instance_count=2" in proc.stderr
    assert list(tmp_path.iterdir()) == []
