"""Where a rank learns its place: each platform's documented variables read by trainer/environment.py
(torchrun's, SageMaker's resourceconfig.json / SM_HOSTS, Vertex AI's CLUSTER_SPEC), and the torchrun
command each node runs."""
from __future__ import annotations

import json

import pytest

from trainer.distributed import torchrun_args
from trainer.environment import Topology, topology


def test_single_process_without_any_variable():
    assert topology({}) == Topology() and not Topology().distributed


def test_torchrun_ranks():
    env = {"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
           "GROUP_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
    t = topology(env)
    assert (t.launched, t.rank, t.local_rank, t.world_size, t.local_world_size, t.nodes, t.node_rank) == \
        (True, 3, 1, 4, 2, 2, 1)
    assert (t.master_addr, t.master_port, t.source) == ("10.0.0.1", 1234, "torchrun")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        topology({**env, "WORLD_SIZE": "four"})


def test_sagemaker_resourceconfig_and_toolkit_variables(tmp_path):
    config = tmp_path / "input/config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-2", "hosts": ["algo-2", "algo-1", "algo-3"], "network_interface_name": "eth0"}))
    t = topology({"PLATBENCH_OPT_ML": str(tmp_path), "TRAINING_JOB_NAME": "j"})
    # hosts sorted, so every instance agrees on who is node 0 and the master
    assert (t.nodes, t.node_rank, t.master_addr, t.source, t.launched) == (3, 1, "algo-1", "sagemaker", False)
    t = topology({"TRAINING_JOB_NAME": "j", "SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-1",
                  "PLATBENCH_OPT_ML": str(tmp_path / "none")})
    assert (t.nodes, t.node_rank, t.master_addr) == (2, 0, "algo-1")
    with pytest.raises(ValueError, match="algo-9"):
        topology({"TRAINING_JOB_NAME": "j", "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-9",
                  "PLATBENCH_OPT_ML": str(tmp_path / "none")})


def test_vertex_cluster_spec():
    spec = {"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
                        "workerpool1": ["cmle-training-workerpool1-ab-0:2222", "cmle-training-workerpool1-ab-1:2222"]},
            "environment": "cloud", "task": {"type": "workerpool1", "index": 1}}
    t = topology({"AIP_MODEL_DIR": "gs://b/model/", "CLUSTER_SPEC": json.dumps(spec)})
    assert (t.nodes, t.node_rank, t.master_addr, t.master_port, t.source) == \
        (3, 2, "cmle-training-workerpool0-ab-0", 2222, "vertex")
    spec["task"] = {"type": "workerpool0", "index": 0}
    assert topology({"AIP_MODEL_DIR": "gs://b/model/", "CLUSTER_SPEC": json.dumps(spec)}).node_rank == 0


def test_torchrun_command_per_node():
    one = torchrun_args(["--data", "d"], 2, Topology())
    assert one[:2] == ["--standalone", "--nnodes"] and "--nproc-per-node" in one
    many = torchrun_args(["--data", "d"], 8, Topology(nodes=2, node_rank=1, master_addr="algo-1", source="sagemaker"))
    assert many[:8] == ["--nnodes", "2", "--node-rank", "1", "--master-addr", "algo-1", "--master-port", "29500"]
    assert many[-5:] == ["-m", "trainer", "train", "--data", "d"]


def test_azureml_pytorch_distribution():
    """Azure ML starts every process itself (distribution type pytorch): each is already a rank, so the trainer
    starts no torchrun; the processes per node come from the launcher's PLATBENCH_PROCESS_COUNT_PER_INSTANCE."""
    env = {"PLATBENCH_PLATFORM": "azureml", "AZUREML_RUN_ID": "j", "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": "6105",
           "WORLD_SIZE": "4", "NODE_RANK": "1", "RANK": "3", "LOCAL_RANK": "1", "PLATBENCH_PROCESS_COUNT_PER_INSTANCE": "2"}
    t = topology(env)
    assert (t.launched, t.source, t.nodes, t.node_rank, t.rank, t.local_rank, t.world_size, t.local_world_size) == \
        (True, "azureml", 2, 1, 3, 1, 4, 2)
    assert (t.master_addr, t.master_port) == ("10.0.0.4", 6105)
    # one process per node (the default): as many nodes as processes
    one = {k: v for k, v in env.items() if k != "PLATBENCH_PROCESS_COUNT_PER_INSTANCE"}
    assert (topology({**one, "RANK": "1", "LOCAL_RANK": "0"}).nodes, topology(one).local_world_size) == (4, 1)
    with pytest.raises(ValueError, match="WORLD_SIZE=4 is not a multiple"):
        topology({**env, "PLATBENCH_PROCESS_COUNT_PER_INSTANCE": "3"})
    with pytest.raises(ValueError, match="NODE_RANK"):
        topology({**env, "NODE_RANK": "x"})
    # a single Azure ML job (no distribution) sets none of them: one process of its own
    assert topology({"PLATBENCH_PLATFORM": "azureml", "AZUREML_RUN_ID": "j"}) == Topology()
