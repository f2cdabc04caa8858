"""Where things are on each platform: one table resolving data, output, model and checkpoint
directories and hyperparameters from the environment of whichever platform the trainer runs on.

Explicit CLI flags always win; then the platform's own channel; then local defaults.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

# SageMaker, bring-your-own training container: SageMaker runs `docker run IMAGE train`, mounts /opt/ml
# (input/config/hyperparameters.json with every value a string, input/data/<channel>/, model/,
# output/data/, output/failure → FailureReason) and sets TRAINING_JOB_NAME and TRAINING_JOB_ARN. The SM_*
# variables come only from the sagemaker-training toolkit, so they are read when present, with the
# /opt/ml paths as the contract underneath. Checkpoints: /opt/ml/checkpoints is CheckpointConfig's
# default LocalPath, synced to S3 when the job sets CheckpointConfig.
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-signal-success-failure.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
# https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md
# PLATBENCH_OPT_ML moves the root, for running the same contract natively (launchers' local mode, tests).
SAGEMAKER_ROOT = Path("/opt/ml")


def sagemaker_root(env: Mapping[str, str]) -> Path:
    return Path(env.get("PLATBENCH_OPT_ML") or SAGEMAKER_ROOT)

# Vertex AI custom training sets AIP_MODEL_DIR / AIP_CHECKPOINT_DIR / AIP_TENSORBOARD_LOG_DIR (gs:// URIs
# ending in model/, checkpoints/, logs/) only when the job has a baseOutputDirectory; AIP_TRAINING_DATA_URI
# only for managed datasets (otherwise the launcher passes --data). Cloud Storage is mounted read-write at
# /gcs/BUCKET. There is no hyperparameter file: the container gets args. CLOUD_ML_JOB_ID is read by Google's
# SDK but not documented, so it is used only as an identity when present.
# https://cloud.google.com/vertex-ai/docs/training/code-requirements#environment-variables
# https://cloud.google.com/vertex-ai/docs/training/cloud-storage-file-system
# https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec#ContainerSpec
VERTEX_GCSFUSE_ROOT = Path("/gcs")


def gcsfuse_root(env: Mapping[str, str]) -> Path:
    """PLATBENCH_GCS_ROOT moves /gcs, for running the Vertex contract natively (launchers' local mode)."""
    return Path(env.get("PLATBENCH_GCS_ROOT") or VERTEX_GCSFUSE_ROOT)

# Azure ML command jobs hand inputs and outputs to the script as paths on the command line
# (`--data ${{inputs.data}} --out ${{outputs.results}}`; ro_mount / rw_mount by default) — no documented
# environment variable carries them — and upload ./outputs and ./logs. AZUREML_RUN_ID is not documented
# either; it is used only as an identity when present.
# https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2
# https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
# https://learn.microsoft.com/azure/machine-learning/v1/how-to-save-write-experiment-files
AZUREML_OUTPUTS = Path("outputs")


@dataclass(frozen=True)
class Placement:
    """The directories one run reads from and writes to, and the hyperparameters its platform passed."""

    platform: str
    data_dir: Path | None
    output_dir: Path
    model_dir: Path
    checkpoint_dir: Path | None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None


def detect(env: Mapping[str, str] | None = None) -> str:
    """Name the platform this process runs on, from its environment alone."""
    env = os.environ if env is None else env
    if env.get("PLATBENCH_PLATFORM"):
        return env["PLATBENCH_PLATFORM"]
    if "TRAINING_JOB_NAME" in env or "SM_MODEL_DIR" in env or (sagemaker_root(env) / "input/config").is_dir():
        return "sagemaker"
    if "AIP_MODEL_DIR" in env or "CLOUD_ML_JOB_ID" in env:
        return "vertex"
    if "AZUREML_RUN_ID" in env:
        return "azureml"
    return "local"


def gcs_to_fuse(uri: str, env: Mapping[str, str] | None = None) -> Path:
    """Vertex hands out gs:// URIs; the same objects are files under /gcs/BUCKET/… in the job."""
    if uri.startswith("gs://"):
        return gcsfuse_root(os.environ if env is None else env) / uri[len("gs://"):]
    return Path(uri)


def _sagemaker(env: Mapping[str, str], root: Path) -> Placement:
    hp_file = root / "input/config/hyperparameters.json"
    hps: dict[str, str] = {}
    if hp_file.is_file():
        # SageMaker passes every hyperparameter value as a string; the trainer's parser converts them.
        hps = {k: str(v) for k, v in json.loads(hp_file.read_text()).items()}
    channel = env.get("SM_CHANNEL_TRAINING") or str(root / "input/data/training")
    return Placement(
        platform="sagemaker",
        data_dir=Path(channel),
        output_dir=Path(env.get("SM_OUTPUT_DATA_DIR", root / "output/data")),
        model_dir=Path(env.get("SM_MODEL_DIR", root / "model")),
        checkpoint_dir=root / "checkpoints",
        hyperparameters=hps,
        job_id=env.get("TRAINING_JOB_NAME"),
    )


def _vertex(env: Mapping[str, str]) -> Placement:
    model_dir = gcs_to_fuse(env["AIP_MODEL_DIR"], env) if env.get("AIP_MODEL_DIR") else Path("model")
    # PLATBENCH_DATA (set by platbench's launcher in the job's env) or a managed dataset's URI.
    data = env.get("PLATBENCH_DATA") or env.get("AIP_TRAINING_DATA_URI")
    return Placement(
        platform="vertex",
        data_dir=gcs_to_fuse(data, env) if data else None,
        # Vertex has no separate output channel: results live beside the model, under the base output dir.
        output_dir=model_dir.parent / "output" if env.get("AIP_MODEL_DIR") else Path("output"),
        model_dir=model_dir,
        checkpoint_dir=gcs_to_fuse(env["AIP_CHECKPOINT_DIR"], env) if env.get("AIP_CHECKPOINT_DIR") else None,
        job_id=env.get("CLOUD_ML_JOB_ID"),
    )


def _azureml(env: Mapping[str, str]) -> Placement:
    return Placement(
        platform="azureml",
        data_dir=None,  # always passed as --data ${{inputs.data}}
        output_dir=AZUREML_OUTPUTS,
        model_dir=AZUREML_OUTPUTS / "model",
        checkpoint_dir=AZUREML_OUTPUTS / "checkpoints",
        job_id=env.get("AZUREML_RUN_ID"),
    )


def _local(env: Mapping[str, str], name: str = "local") -> Placement:
    out = Path(env.get("PLATBENCH_OUT", "runs/latest"))
    return Placement(
        platform=name,
        data_dir=Path(env["PLATBENCH_DATA"]) if env.get("PLATBENCH_DATA") else None,
        output_dir=out,
        model_dir=out / "model",
        checkpoint_dir=out / "checkpoints",
    )


def resolve(env: Mapping[str, str] | None = None) -> Placement:
    env = os.environ if env is None else env
    platform = detect(env)
    if platform == "sagemaker":
        return _sagemaker(env, sagemaker_root(env))
    if platform == "vertex":
        return _vertex(env)
    if platform == "azureml":
        return _azureml(env)
    return _local(env, platform)


# ---- how many processes one run spans, and which one this is (DDP: torchrun ranks across nodes)
# torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT and
# TORCHELASTIC_RUN_ID in every process it starts:
# https://docs.pytorch.org/docs/stable/elastic/run.html#environment-variables
# SageMaker: every instance of a multi-instance job gets /opt/ml/input/config/resourceconfig.json
# ({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"], ...}); the training toolkit mirrors it in
# SM_CURRENT_HOST / SM_HOSTS. Hosts resolve by name inside the job's network.
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html#your-algorithms-training-algo-running-container-dist-training
# https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md
# Vertex AI: CLUSTER_SPEC = {"cluster": {"workerpool0": ["host:port"], "workerpool1": [...]}, "task":
# {"type": "workerpool0", "index": 0}, ...}; workerpool0 is the primary replica (replicaCount 1).
# https://cloud.google.com/vertex-ai/docs/training/distributed-training#cluster-variables
# Azure ML, command job with distribution type pytorch: Azure ML itself starts process_count_per_instance
# processes on each of the instance_count nodes (no launcher such as torchrun in the command) and sets
# MASTER_ADDR, MASTER_PORT, WORLD_SIZE (all processes) and NODE_RANK per node, RANK and LOCAL_RANK per
# process. The processes per node are not among the documented variables: platbench's launcher passes its
# setting as PLATBENCH_PROCESS_COUNT_PER_INSTANCE (LOCAL_WORLD_SIZE wins where present).
# https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu#pytorch
# https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command#distribution-configurations
DEFAULT_MASTER_PORT = 29500  # torchrun's default --master-port


@dataclass(frozen=True)
class Topology:
    """Nodes of the job and this node's place; `launched` when a torchrun agent already started this
    process as one rank (then rank/local_rank/world_size are set)."""

    nodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT
    source: str = "single"          # single | torchrun | sagemaker | vertex | azureml
    launched: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.nodes > 1


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        raise ValueError(f"{name}={env.get(name)!r} is not an integer") from None


def topology(env: Mapping[str, str] | None = None) -> Topology:
    """Read from the environment only; a malformed platform variable raises ValueError naming it."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" not in env and "NODE_RANK" in env and "RANK" in env and detect(env) == "azureml":
        return _azureml_ranks(env)
    if "TORCHELASTIC_RUN_ID" in env or ("LOCAL_WORLD_SIZE" in env and "RANK" in env):
        world, local_world = _int(env, "WORLD_SIZE"), _int(env, "LOCAL_WORLD_SIZE")
        return Topology(nodes=max(1, world // max(1, local_world)), node_rank=int(env.get("GROUP_RANK", 0)),
                        master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
                        master_port=int(env.get("MASTER_PORT", DEFAULT_MASTER_PORT)), source="torchrun",
                        launched=True, rank=_int(env, "RANK"), local_rank=_int(env, "LOCAL_RANK"),
                        world_size=world, local_world_size=local_world)
    platform = detect(env)
    if platform == "sagemaker":
        config = sagemaker_root(env) / "input/config/resourceconfig.json"
        if env.get("SM_HOSTS") and env.get("SM_CURRENT_HOST"):
            hosts, current = json.loads(env["SM_HOSTS"]), env["SM_CURRENT_HOST"]
        elif config.is_file():
            doc = json.loads(config.read_text())
            hosts, current = doc["hosts"], doc["current_host"]
        else:
            return Topology()
        hosts = sorted(hosts)  # every instance must agree on the order, whatever order it was given in
        if current not in hosts:
            raise ValueError(f"SageMaker current host {current!r} is not among its hosts {hosts}")
        return Topology(nodes=len(hosts), node_rank=hosts.index(current), master_addr=hosts[0], source="sagemaker")
    if platform == "vertex" and env.get("CLUSTER_SPEC"):
        spec = json.loads(env["CLUSTER_SPEC"])
        cluster, task = spec.get("cluster", {}), spec.get("task", {})
        pools = [cluster.get(f"workerpool{i}", []) for i in (0, 1)]  # pools 2 and 3 (servers, evaluators): unused
        members = pools[0] + pools[1]
        if not members:
            return Topology()
        kind, index = task.get("type", "workerpool0"), int(task.get("index", 0))
        node_rank = index if kind == "workerpool0" else len(pools[0]) + index
        host, _, port = members[0].rpartition(":")
        return Topology(nodes=len(members), node_rank=node_rank, master_addr=host or members[0],
                        master_port=int(port) if port.isdigit() else DEFAULT_MASTER_PORT, source="vertex")
    return Topology()


def _azureml_ranks(env: Mapping[str, str]) -> Topology:
    """One process Azure ML's PyTorch distribution started (already a rank: the trainer starts no torchrun)."""
    world = _int(env, "WORLD_SIZE")
    key = "LOCAL_WORLD_SIZE" if "LOCAL_WORLD_SIZE" in env else "PLATBENCH_PROCESS_COUNT_PER_INSTANCE"
    local_world = _int(env, key) if key in env else 1
    if local_world < 1 or world % local_world:
        raise ValueError(f"WORLD_SIZE={world} is not a multiple of {key}={local_world}")
    return Topology(nodes=world // local_world, node_rank=_int(env, "NODE_RANK"),
                    master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
                    master_port=int(env.get("MASTER_PORT", DEFAULT_MASTER_PORT)), source="azureml", launched=True,
                    rank=_int(env, "RANK"), local_rank=_int(env, "LOCAL_RANK"), world_size=world,
                    local_world_size=local_world)
