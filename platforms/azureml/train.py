"""Azure Machine Learning: a command job running the platbench image, through azure-ai-ml (SDK v2) and
azure-storage-blob, with the dataset staged into Blob Storage and a local mode.

Platform contracts relied on (official pages):
- Command jobs (`azure.ai.ml.command`: command, environment, compute, inputs/outputs, environment_variables,
  resources.instance_type for serverless compute, queue_settings.job_tier, limits.timeout):
  https://learn.microsoft.com/azure/machine-learning/how-to-train-model
  https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
  https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml#azure-ai-ml-command
- Inputs and outputs as paths on the command line (`${{inputs.data}}`, `${{outputs.results}}`), uri_folder
  at `azureml://datastores/NAME/paths/PATH`, input ro_mount or download, output rw_mount:
  https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2
- The Blob container as an identity-based datastore (`az ml datastore create`, AzureBlobDatastore without
  credentials): https://learn.microsoft.com/azure/machine-learning/how-to-datastore
- The workspace, compute and VM sizes asked before anything is uploaded (Workspaces - Get, Compute - Get,
  Virtual Machine Sizes - List): https://learn.microsoft.com/rest/api/azureml/
- A custom image as the environment (`image: REGISTRY/IMAGE@sha256:…`):
  https://learn.microsoft.com/azure/machine-learning/how-to-manage-environments-v2
- Serverless compute (instance_type, job_tier Spot/Standard) and low-priority VMs:
  https://learn.microsoft.com/azure/machine-learning/how-to-use-serverless-compute
  https://learn.microsoft.com/azure/machine-learning/how-to-use-low-priority-batch
- Several nodes: resources.instance_count and distribution {type: pytorch, process_count_per_instance}
  (azure.ai.ml.PyTorchDistribution). Azure ML starts process_count_per_instance processes on every node
  itself and gives each MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, RANK and LOCAL_RANK, so the
  command starts no torchrun (trainer/environment.py reads them):
  https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu#pytorch
  https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command#distribution-configurations
  https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.pytorchdistribution
  A compute cluster runs at most its max_instances nodes (AmlCompute scale settings), a VM size has the
  GPUs Virtual Machine Sizes - List reports.
- Job statuses (NotStarted, Queued, Preparing, Provisioning, Running, Finalizing, Completed, Failed,
  Canceled …): https://learn.microsoft.com/rest/api/azureml/jobs/get
- The CLI equivalents: https://learn.microsoft.com/cli/azure/ml/job (`az ml job create/show/cancel`)
  and https://learn.microsoft.com/cli/azure/storage/blob (`az storage blob upload-batch`)
- Credentials: DefaultAzureCredential (platforms/azureml/credentials.py)

Azure ML reports no billed seconds per job: cost is the job's running seconds × the VM's list price ×
instance_count (every node is billed while the job runs), labelled as an estimate. Phases come from the statuses seen while polling (each status's first sighting;
resolution poll_seconds). The control-plane calls sit behind `ControlPlane` (its job calls are core/cloud_job.py's
CloudJobs seam); local mode replaces them with a native run of the same command job (emulator.py); polling,
Ctrl-C and teardown are the cloud-job template's (platforms/core/cloud_job.py). Pointing the SDK elsewhere (a sovereign
cloud, or the tests' loopback server) is the SDK's own setting: ARM_CLOUD_METADATA_URL and
AZUREML_CURRENT_CLOUD (azure/ai/ml/_azure_environments.py), nothing in platbench.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platforms.azureml import SPEC
from platforms.azureml.phases import PHASES, TERMINAL
from platforms.core import pricing, tracking
from platforms.core.api import Job, Outcome, PlanStep
from platforms.core.cloud_settings import CloudJobSettings, LocalMode, TimeLimit
from platforms.core.container_env import container_env, pinned_digest
from platforms.core.names import NameRule
from platforms.core.retry import retried
from platforms.core.run_tags import image_tags, price_tags
from platforms.core.staging_plan import closing_steps, staging_steps
from platforms.core.cloud_job import CloudJob, CloudJobPlatform, CloudJobs, seen_timeline, timeline_phases, timestamp
from platforms.core.sdk import require
from platforms.core.settings import validate_job
from platforms.errors import UserError

VM_SIZE_RE = re.compile(r"^Standard_[A-Z]+[0-9]+[a-z]*(_[A-Za-z0-9]+)*$")
# storage account names: 3-24 lowercase letters and digits; container names: 3-63, lowercase, digits, '-'
# https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class AzureMLWorkspace(BaseModel):
    """The settings `launch azureml` and `endpoint azureml` share: the workspace, the image, and the Blob
    container (registered in the workspace as a datastore) that holds data, checkpoints and models."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: Optional[str] = Field(default_factory=lambda: os.environ.get("AZURE_SUBSCRIPTION_ID"))
    resource_group: Optional[str] = None
    workspace: Optional[str] = None
    region: str = "eastus"                         # before the workspace is asked: prices are looked up there
    image: Optional[str] = None                    # REGISTRY/platbench@sha256:…
    storage_account: Optional[str] = Field(default_factory=lambda: os.environ.get("AZURE_STORAGE_ACCOUNT"))
    container: str = "platbench"
    datastore: str = "platbench"                   # the workspace's name for that container (created if absent)
    prefix: str = "platbench"
    instance_type: str = "Standard_NC4as_T4_v3"

    @model_validator(mode="after")
    def _names(self):
        if not VM_SIZE_RE.match(self.instance_type):
            raise ValueError(f"unknown VM size {self.instance_type!r} (e.g. Standard_NC4as_T4_v3, "
                             "Standard_NV36ads_A10_v5, Standard_NC24ads_A100_v4, Standard_D4s_v3)")
        if self.storage_account is not None and not ACCOUNT_RE.match(self.storage_account):
            raise ValueError(f"storage_account {self.storage_account!r} is not a storage account name "
                             "(3-24 lowercase letters and digits)")
        if not CONTAINER_RE.match(self.container):
            raise ValueError(f"container {self.container!r} is not a Blob container name (3-63 lowercase "
                             "letters, digits and single hyphens)")
        if not re.match(r"^[A-Za-z0-9_]{1,255}$", self.datastore):
            raise ValueError(f"datastore {self.datastore!r}: letters, digits and '_' only")
        return self


# a job's name (Jobs - Create Or Update: the job id in the URL); run_name is a folder in the container
JOB_NAME = NameRule(255, chars="a-zA-Z0-9_", title="a valid Azure ML job name", hint="letters, digits, '-' and '_'")


class AzureMLSettings(AzureMLWorkspace, CloudJobSettings, TimeLimit, LocalMode):
    """`--set KEY=VALUE` for `platbench launch azureml`; job_name (unique in the workspace: by default a new one
    per launch, stem run_name), run_name (the job's output folder is jobs/<run_name>/outputs: a job of the run
    sees the checkpoints an interrupted one left), staging, prefix,
    poll_seconds, max_run and local as every cloud job has them (core/cloud_settings.py)."""

    JOB_NAME: ClassVar[NameRule] = JOB_NAME
    RUN_NAME: ClassVar[NameRule] = JOB_NAME
    MAX_RUN_LIMIT: ClassVar[int] = 30 * 24 * 3600

    compute: Optional[str] = None                  # a compute cluster's name; none: serverless compute
    instance_type: str = "Standard_NC4as_T4_v3"    # serverless VM size, or the cluster's size (for the price)
    tier: Literal["dedicated", "low_priority"] = "dedicated"
    input_mode: Literal["ro_mount", "download"] = "ro_mount"
    experiment: str = "platbench"
    # several nodes: one DDP run over instance_count nodes x process_count_per_instance processes (Azure ML's
    # PyTorch distribution; process_count_per_instance defaults to --devices)
    instance_count: int = Field(1, ge=1, le=100)
    process_count_per_instance: Optional[int] = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def _consistent(self):
        if self.compute and self.tier == "low_priority":
            raise ValueError("tier=low_priority applies to serverless compute; a compute cluster's tier is set on "
                             "the cluster (az ml compute create --tier low_priority)")
        if self.local and (self.instance_count > 1 or (self.process_count_per_instance or 1) > 1):
            raise ValueError("local=true runs the job's command once on this machine: use instance_count=1 and "
                             "process_count_per_instance=1 (or platbench launch local --devices N)")
        return self


def _reason(exc) -> str:
    """One line from an ARM error ({"error": {"code", "message"}}) the SDK raised."""
    err = getattr(exc, "error", None)
    text = f"{err.code}: {err.message}" if err is not None and getattr(err, "code", None) else (
        getattr(exc, "message", None) or str(exc))
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


class ControlPlane(CloudJobs):
    """The seam around Azure ML's control plane (MLClient): the workspace, its computes, VM sizes and
    datastores, and the job operations (create, get status, cancel). Every SDK error becomes one line."""

    def __init__(self, cfg: AzureMLSettings):
        ml = require("azure.ai.ml", "azureml", "the Azure ML SDK (azure-ai-ml)")
        identity = require("azure.identity", "azureml", "the Azure identity library (azure-identity)")
        self.ml, self.cfg = ml, cfg
        self.client = ml.MLClient(identity.DefaultAzureCredential(), cfg.subscription_id, cfg.resource_group,
                                  cfg.workspace)

    def call(self, what: str, fn, *args, **kwargs):
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        try:
            return fn(*args, **kwargs)
        except ResourceNotFoundError as exc:
            raise UserError(f"azureml: {what}: not found ({_reason(exc)})") from None
        except ClientAuthenticationError as exc:
            raise UserError(f"azureml: {what}: no Azure token ({_reason(exc)})") from None
        except HttpResponseError as exc:
            raise UserError(f"azureml: {what}: {_reason(exc)}") from None

    def workspace_location(self) -> str:
        c = self.cfg
        ws = self.call(f"workspace {c.workspace!r} in resource group {c.resource_group!r}",
                       self.client.workspaces.get, c.workspace)
        return (ws.location or c.region).replace(" ", "").lower()

    def compute_size(self, name: str) -> str:
        return getattr(self.compute(name), "size", None) or self.cfg.instance_type

    def compute(self, name: str):
        return self.call(f"compute {name!r} in workspace {self.cfg.workspace!r}", self.client.compute.get, name)

    def vm_sizes(self, location: str) -> dict:
        """VM size name → the SDK's VmSize (vcpus, gpus) offered in the region."""
        sizes = self.call(f"VM sizes in {location}", lambda: list(self.client.compute.list_sizes(location=location)))
        return {s.name: s for s in sizes}

    def offered(self, size: str, region: str):
        found = self.vm_sizes(region).get(size)
        if found is None:
            raise UserError(f"azureml: unknown VM size {size!r}: not offered in {region} "
                            f"(az ml compute list-sizes --location {region})")
        return found

    def check_datastore(self, name: str, account: str, container: str) -> None:
        ds = self.datastore(name)
        if ds is not None and ds != (account, container):
            raise UserError(f"azureml: datastore {name!r} points at {ds[0]}/{ds[1]}, not at {account}/{container}: "
                            "pick another --set datastore=NAME")

    def ensure_datastore(self, name: str, account: str, container: str) -> None:
        if self.datastore(name) is None:
            self.create_datastore(name, account, container)

    def datastore(self, name: str) -> Optional[tuple[str, str]]:
        """(account, container) of a Blob datastore; None when the workspace has none by that name."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            ds = self.client.datastores.get(name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            raise UserError(f"azureml: datastore {name!r}: {_reason(exc)}") from None
        return getattr(ds, "account_name", None), getattr(ds, "container_name", None)

    def create_datastore(self, name: str, account: str, container: str) -> None:
        """An identity-based Blob datastore (no key stored: jobs reach it with their identity)."""
        from azure.ai.ml.entities import AzureBlobDatastore

        self.call(f"create datastore {name!r}", self.client.datastores.create_or_update,
                  AzureBlobDatastore(name=name, account_name=account, container_name=container,
                                     description="platbench staging, checkpoints and outputs"))

    def create(self, spec: dict) -> str:
        return self.call(f"create job {spec['name']!r}", self.client.jobs.create_or_update, command_job(spec)).name

    def exists(self, name: str) -> bool:
        """Whether the workspace has a job of this name (Jobs - Get)."""
        from azure.core.exceptions import ResourceNotFoundError

        def get():
            try:
                return self.client.jobs.get(name)
            except ResourceNotFoundError:
                return None

        return self.call(f"job {name!r}", get) is not None

    def get(self, name: str) -> dict:
        job = self.call(f"job {name!r}", self.client.jobs.get, name)
        ctx = job.creation_context
        return {"name": job.name, "status": job.status,
                "created_at": ctx.created_at.isoformat() if ctx and ctx.created_at else None}

    def cancel(self, name: str) -> None:
        # azure-core retries a POST only on a status with Retry-After, never after a reset: a cancel is
        # idempotent, so platbench retries it (bounded), else the job keeps running after Ctrl-C. Bounded too:
        # a cancel the service never confirms must not hold the user's terminal
        self.call(f"cancel job {name!r}",
                  lambda: retried(lambda: self.client.jobs.begin_cancel(name).result(timeout=600), _transient))


def _transient(exc: BaseException) -> bool:
    """A fault that passes: no answer (a reset, a timeout) or the service's 429 / 503."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in (429, 503)


def require_settings(cfg: AzureMLWorkspace, who: str, image_hint: str = "") -> None:
    for key, what in (("subscription_id", "--set subscription_id=ID (or set AZURE_SUBSCRIPTION_ID)"),
                      ("resource_group", "--set resource_group=RG"), ("workspace", "--set workspace=NAME"),
                      ("image", f"--set image=REGISTRY/platbench@sha256:… {image_hint}".rstrip())):
        if not getattr(cfg, key):
            raise UserError(f"{who}: no {key.replace('_', ' ')}: add {what}")


def open_container(cfg: AzureMLWorkspace, who: str, credentials_needed: bool = True):
    """The Blob container, after the offline credential lookup; one line when either is missing. With
    AZURE_STORAGE_CONNECTION_STRING (Azurite, or a key) the blobs need no Azure login, the workspace does."""
    from platforms.clouds.azure import credentials
    from platforms.clouds.azure.blob import BlobStore

    emulated = bool(os.environ.get("AZURE_STORAGE_CONNECTION_STRING"))
    if credentials_needed or not emulated:
        found, where = credentials.find()
        if not found:
            raise UserError(f"{who}: no Azure credentials found: {where}")
    if not emulated and not cfg.storage_account:
        raise UserError(f"{who}: no storage account: add --set storage_account=NAME (or set "
                        "AZURE_STORAGE_ACCOUNT) for the dataset, checkpoints, outputs and models")
    store = BlobStore(cfg.container, account=cfg.storage_account)
    if not store.bucket_exists():
        raise UserError(f"{who}: container {cfg.container!r} does not exist in storage account "
                        f"{store.account!r} or is not reachable with these credentials")
    return store


def command_job(spec: dict):
    """The SDK's command job from platbench's job spec (the `az ml job create` YAML's shape)."""
    ml = require("azure.ai.ml", "azureml", "the Azure ML SDK (azure-ai-ml)")
    from azure.ai.ml.entities import QueueSettings

    kwargs: dict[str, Any] = {}
    if spec.get("compute"):  # the YAML's `azureml:NAME`; the SDK takes the name and makes the ARM id
        kwargs["compute"] = spec["compute"].removeprefix("azureml:")
    resources = spec.get("resources") or {}
    if resources.get("instance_type"):
        kwargs["instance_type"] = resources["instance_type"]
    if resources.get("instance_count", 1) > 1:
        kwargs["instance_count"] = resources["instance_count"]
    if spec.get("distribution"):
        kwargs["distribution"] = ml.PyTorchDistribution(
            process_count_per_instance=spec["distribution"]["process_count_per_instance"])
    if spec.get("queue_settings"):
        kwargs["queue_settings"] = QueueSettings(job_tier=spec["queue_settings"]["job_tier"])
    return ml.command(
        name=spec["name"], display_name=spec["display_name"], experiment_name=spec["experiment_name"],
        command=spec["command"], environment=_environment(spec["environment"]["image"]),
        inputs={k: ml.Input(type=v["type"], path=v["path"], mode=v["mode"]) for k, v in spec["inputs"].items()},
        outputs={k: ml.Output(type=v["type"], path=v["path"], mode=v["mode"]) for k, v in spec["outputs"].items()},
        environment_variables=spec["environment_variables"], timeout=spec["limits"]["timeout"],
        tags=spec.get("tags"), **kwargs)


def _environment(image: str):
    from azure.ai.ml.entities import Environment

    return Environment(image=image)


@dataclass(kw_only=True)
class AzureMLHandle(CloudJob):
    """job_id: the job's name."""

    outputs_key: str                    # the job's output folder (outputs.results) in the container


class AzureMLPlatform(CloudJobPlatform):
    nodes_setting = "instance_count={n}"  # what --nodes N means here (core/launch.py refuse_nodes)
    spec = SPEC
    settings_model = AzureMLSettings
    PHASES, TERMINAL = PHASES, TERMINAL
    job_noun = "Azure ML job"
    _where: Optional[tuple[str, str]] = None  # (region, VM size) as the workspace reports them, once checked

    def where(self) -> tuple[str, str]:
        """(region, VM size): the workspace's location and the cluster's size once check() asked the
        service, the settings before."""
        cfg = self.parsed()
        return self._where or (cfg.region, cfg.instance_type)

    def _price(self, cfg) -> Optional[pricing.Quote]:
        region, size = self.where()
        return pricing.training_quote("azureml", region, [(size, cfg.instance_count)], cfg.tier == "low_priority")

    # ------------------------------------------------------------------ check
    def preflight(self, job: Job) -> list[str]:
        from platforms.clouds.azure import credentials

        cfg = self.parsed()
        validate_job(job)
        self._quote = self._price(cfg)
        missing = {} if os.environ.get("AZURE_STORAGE_CONNECTION_STRING") else {
            "storage_account": f"--set storage_account=NAME (a storage account with container {cfg.container!r})"}
        if not cfg.local:
            missing.update(subscription_id="--set subscription_id=ID (or AZURE_SUBSCRIPTION_ID)",
                           resource_group="--set resource_group=RG", workspace="--set workspace=NAME",
                           image="--set image=REGISTRY/platbench@sha256:… (the image in a container registry)")
        return self.needs(credentials.find(), "Azure", missing, f"{cfg.instance_type} in {cfg.region}")

    def check(self, job: Job) -> None:
        cfg = self.parsed()
        validate_job(job)
        if not cfg.local:
            require_settings(cfg, "azureml", "(or --set local=true to run here)")
            from platforms.image import pinning

            # the job runs REGISTRY/IMAGE@sha256:…: a tag resolved from the push record / the registry (issue 18)
            cfg = self.cfg = pinning.pinned_settings(cfg, "image", "azureml")
        self._store = open_container(cfg, "azureml", credentials_needed=not cfg.local)
        if not cfg.local:
            self.jobs = ControlPlane(cfg)
            region = self.jobs.workspace_location()
            if cfg.compute:
                compute = self.jobs.compute(cfg.compute)
                size = getattr(compute, "size", None) or cfg.instance_type
                most = getattr(compute, "max_instances", None)
                if most is not None and cfg.instance_count > most:
                    raise UserError(f"azureml: instance_count {cfg.instance_count}: compute cluster {cfg.compute!r} "
                                    f"scales to at most {most} nodes (az ml compute update --name {cfg.compute} "
                                    f"--max-instances {cfg.instance_count}, or a smaller instance_count)")
                vm = self.jobs.vm_sizes(region).get(size)
            else:
                vm = self.jobs.offered(cfg.instance_type, region)
                size = cfg.instance_type
            self._refuse_processes(job, size, vm)
            job.on_hardware(getattr(vm, "gpus", None))  # a GPU size: the trainer must use its GPU (--device cuda)
            self._where = (region, size)
            self.jobs.check_datastore(cfg.datastore, self._store.account, cfg.container)
            if cfg.job_name and self.jobs.exists(cfg.job_name):
                # a job name is used once in a workspace (reference-yaml-job-command: "must be unique across all
                # jobs in the workspace"); the run, and its checkpoints, are named by run_name
                raise UserError(f"azureml: job {cfg.job_name!r} already exists in workspace {cfg.workspace!r} and a "
                                f"job name is used once; to resume its run, launch with --set "
                                f"run_name={cfg.run_key(cfg.job_name)} and no job_name (each job gets a new name)")
        self._quote = self._price(cfg)

    def processes(self, job: Job) -> int:
        """Processes Azure ML starts on each node: process_count_per_instance, else --devices."""
        cfg = self.parsed()
        if cfg.process_count_per_instance is not None and job.devices not in (1, cfg.process_count_per_instance):
            raise UserError(f"azureml: --devices {job.devices} and process_count_per_instance "
                            f"{cfg.process_count_per_instance} disagree: give one of them")
        return cfg.process_count_per_instance or job.devices

    def _refuse_processes(self, job: Job, size: str, vm) -> None:
        """More processes per node than the VM size has GPUs (or vCPUs, for a CPU size): one line."""
        n = self.processes(job)
        gpus, vcpus = getattr(vm, "gpus", None), getattr(vm, "v_cp_us", None)
        if n > 1 and gpus and n > gpus:
            raise UserError(f"azureml: process_count_per_instance {n}: {size} has {gpus} GPU(s); one process per GPU")
        if n > 1 and gpus == 0 and vcpus and n > vcpus:
            raise UserError(f"azureml: process_count_per_instance {n}: {size} has {vcpus} vCPUs")

    def run_tags(self, job: Job) -> dict[str, str]:
        cfg = self.parsed()
        region, size = self.where()
        tags = {tracking.Tag.REGION: region, tracking.Tag.INSTANCE_TYPE: size,
                tracking.Tag.LOCAL_MODE: str(cfg.local).lower(), tracking.Tag.STAGING: cfg.staging,
                "platbench.spot": str(cfg.tier == "low_priority").lower(),
                "platbench.azureml.compute": cfg.compute or "serverless",
                "platbench.instance_count": str(cfg.instance_count)}
        if cfg.image:
            tags["platbench.image_uri"] = cfg.image
        return {**tags, **image_tags(pinned_digest(cfg.image)), **price_tags(self._quote)}

    # ------------------------------------------------------------------ the request
    def _job_name(self, job: Job) -> str:
        cfg = self.parsed()
        return cfg.job_name or cfg.JOB_NAME.unique(cfg.run_name or f"platbench-{job.model}")

    def outputs_key(self, name: str) -> str:
        """The job's output folder in the container: fixed by its run (run_name, else the job's name), so a
        job of the same run sees the checkpoints an interrupted one left (rw_mount) and resumes."""
        cfg = self.parsed()
        return f"{cfg.prefix.strip('/')}/jobs/{cfg.run_key(name)}/outputs/"

    def staging_prefix(self, fingerprint: str) -> str:
        """Where a sharded dataset is staged: inputs/<fingerprint>/ holds its manifest and shards and nothing
        else, and is the job's input. A download-mode input is copied whole onto the node before the command
        starts (https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2), and the staging
        root also holds every other dataset, the runs' outputs and checkpoints, and models."""
        return f"{self.parsed().prefix.strip('/')}/inputs/{fingerprint}"

    def job_spec(self, job: Job, name: str, data_key: str, dataset_name: str, data_root: str = "") -> dict:
        """The command job in `az ml job create --file job.yml`'s shape (reference-yaml-job-command). Input
        and output are paths in the datastore that names platbench's Blob container; the trainer writes
        results, model and checkpoints into the output (--out). data_root: the sharded staging prefix."""
        cfg = self.parsed()
        store = f"azureml://datastores/{cfg.datastore}/paths/"
        if cfg.staging == "sharded":
            # the dataset's staging folder is the input; its manifest names the shards relative to that folder
            root = data_root.strip("/")
            data_path, data_arg = f"{store}{root}/", "${{inputs.data}}/" + data_key[len(root) + 1:]
        else:
            data_path, data_arg = f"{store}{data_key}", "${{inputs.data}}"
        from platforms.image import pinning

        env = container_env("azureml", pinning.image_env(cfg.image))  # its digest, and its image ID where known
        command = " ".join(["train", "--data", data_arg, "--out", "${{outputs.results}}",
                            "--dataset-name", shlex.quote(dataset_name),
                            *(shlex.quote(a) for a in job.trainer_args())])
        spec: dict[str, Any] = {
            "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
            "type": "command", "name": name, "display_name": name, "experiment_name": cfg.experiment,
            "command": command,
            "environment": {"image": cfg.image or "IMAGE"},
            "inputs": {"data": {"type": "uri_folder", "path": data_path, "mode": cfg.input_mode}},
            "outputs": {"results": {"type": "uri_folder", "path": store + self.outputs_key(name),
                                    "mode": "rw_mount"}},
            "environment_variables": env,
            "limits": {"timeout": cfg.max_run},
            "tags": {"platbench": "true", "model": job.model},
        }
        if cfg.compute:
            spec["compute"] = f"azureml:{cfg.compute}"
            if cfg.instance_count > 1:
                spec["resources"] = {"instance_count": cfg.instance_count}
        else:  # serverless compute
            spec["resources"] = {"instance_type": cfg.instance_type, "instance_count": cfg.instance_count}
            spec["queue_settings"] = {"job_tier": "spot" if cfg.tier == "low_priority" else "standard"}
        processes = self.processes(job)
        if cfg.instance_count > 1 or processes > 1:
            # Azure ML starts the ranks (no torchrun in the command); the processes per node are not among the
            # variables it documents, so the trainer gets them here (trainer/environment.py)
            spec["distribution"] = {"type": "pytorch", "process_count_per_instance": processes}
            env["PLATBENCH_PROCESS_COUNT_PER_INSTANCE"] = str(processes)
        return spec

    # ------------------------------------------------------------------ plan
    def plan(self, job: Job) -> list[PlanStep]:
        cfg = self.parsed()
        account = cfg.storage_account or "ACCOUNT"
        prefix = cfg.prefix.strip("/")
        name = cfg.job_name or cfg.JOB_NAME.placeholder(cfg.run_name or f"platbench-{job.model}")
        data_root = self.staging_prefix("<fingerprint>")
        data_key = (f"{data_root}/datasets/<fingerprint>/platbench-manifest.json" if cfg.staging == "sharded"
                    else f"{prefix}/naive/{Path(job.data).resolve().name}/")
        spec = self.job_spec(job, name, data_key, Path(job.data).resolve().name, data_root)
        ws = (f"--subscription {cfg.subscription_id or 'SUBSCRIPTION'} --resource-group "
              f"{cfg.resource_group or 'RG'} --workspace-name {cfg.workspace or 'WORKSPACE'}")
        blob = f"--account-name {account} --container-name {cfg.container} --auth-mode login"
        check = (f"az account show && az storage container exists --account-name {account} --name "
                 f"{cfg.container} --auth-mode login")
        if not cfg.local:
            check += (f" && az ml workspace show --name {cfg.workspace or 'WORKSPACE'} --resource-group "
                      f"{cfg.resource_group or 'RG'} && " + (
                          f"az ml compute show --name {cfg.compute} {ws}" if cfg.compute else
                          f"az ml compute list-sizes --location {cfg.region} {ws}")
                      + f" && az ml datastore show --name {cfg.datastore} {ws}")
        steps = [PlanStep("check credentials, the Blob container" + ("" if cfg.local else
                          ", the workspace, the compute or VM size and the datastore") + " before anything is uploaded",
                          check)]
        if not cfg.local:
            steps.append(PlanStep(f"register the container as datastore {cfg.datastore!r} if the workspace lacks it "
                                  "(identity-based: no key stored)",
                                  f"az ml datastore create --name {cfg.datastore} --type azure_blob --account-name "
                                  f"{account} --container-name {cfg.container} {ws}"))
            from platforms.image import pinning

            steps += pinning.plan_steps(cfg.image, "image")
        steps += staging_steps(job.data, cfg.staging, data_root if cfg.staging == "sharded" else prefix, lambda what, to: f"az storage blob upload {blob} --file "
                               f"{what} --name {to}", lambda what, to: f"az storage blob upload-batch {blob} --source "
                               f"{what} --destination-path {to}", store="the container", unit="blob",
                               resumable="Put Block / Put Block List, resumable, If-None-Match",
                               reads="the job's uri_folder input is inputs/<fingerprint>/: this dataset's manifest "
                                     "and shards, nothing else of the container")
        download = (f"az storage blob download-batch {blob.replace('--container-name', '--source')} "
                    f"--pattern '{self.outputs_key(name)}*' --destination .")
        if cfg.local:
            steps += [
                PlanStep(f"local mode: the input is downloaded into a temporary folder ({cfg.input_mode} stands in "
                         "for the mount) and ${{inputs.data}} is replaced by its path",
                         f"az storage blob download-batch {blob.replace('--container-name', '--source')} "
                         f"--pattern '{prefix}/*' --destination INPUTS/"),
                PlanStep("run the trainer natively with the job's command and environment variables; "
                         "${{outputs.results}} is a folder that first receives what the job's output path holds "
                         "(checkpoints of an interrupted run, as rw_mount shows them)",
                         "AZUREML_RUN_ID=" + name + " python -m trainer " + spec["command"].removeprefix("train ")),
                PlanStep("upload the output folder to the job's output path, as the rw_mount writes it",
                         f"az storage blob upload-batch {blob} --source OUTPUTS --destination-path "
                         + self.outputs_key(name).rstrip("/")),
            ]
        else:
            where = (f"on compute cluster {cfg.compute}" if cfg.compute else
                     f"on serverless {cfg.instance_type}, {'low priority' if cfg.tier == 'low_priority' else 'dedicated'}")
            if "distribution" in spec:
                k = spec["distribution"]["process_count_per_instance"]
                where += f", {cfg.instance_count} node(s) x {k} process(es)"
                steps.append(PlanStep(
                    f"one DDP run over {cfg.instance_count} node(s) x {k} process(es) (distribution pytorch): Azure ML "
                    "starts every process and sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, RANK, LOCAL_RANK; "
                    "the trainer reads them and starts no torchrun; cost counts every node"
                    + (f"; compute cluster {cfg.compute} must scale to {cfg.instance_count} nodes" if cfg.compute else ""),
                    f"az ml compute show --name {cfg.compute} {ws} --query max_instances" if cfg.compute else None))
            steps += [
                PlanStep(f"create the command job {where} (timeout {cfg.max_run}s) through azure-ai-ml; a VM size "
                         "with GPUs (list-sizes: gpus) adds --device cuda to the command, so a GPU CUDA cannot use "
                         "fails the job in one line instead of training on the CPU; job.yml: "
                         + json.dumps(spec), f"az ml job create --file job.yml {ws}"),
                PlanStep("wait, reporting the job's statuses (Queued, Preparing, Running, Finalizing) and times",
                         f"az ml job show --name {name} {ws} --query status"),
            ]
        return steps + closing_steps(
            download, "region, VM size, image, running-time cost at list price (an estimate: Azure ML reports no "
            "billed seconds)" + (f" ({self._quote.usd_per_hour:.4f} USD/h, {self._quote.basis})" if self._quote else ""),
            None if cfg.local else f"az ml job cancel --name {name} {ws}", what="the job's outputs (results.json, "
            "metrics.jsonl, train.log, model/) from its datastore path")

    # ------------------------------------------------------------------ stage / submit and the job's states
    def stage(self, job: Job) -> dict[str, Any]:
        cfg = self.parsed()
        if self.jobs is not None:
            self.jobs.ensure_datastore(cfg.datastore, self._store.account, cfg.container)
        if cfg.staging != "sharded":
            return super().stage(job)
        from platforms.core import staging

        # the fingerprint names the folder; the hashes are cached, so the upload's own scan only stats the files
        found = staging.scan(job.data)
        self._staged = staging.upload(job.data, self._store, "sharded", self.staging_prefix(found.fingerprint))
        figures = {**self._staged.figures, "staging": "sharded", tracking.Tag.DATASET_FINGERPRINT: found.fingerprint}
        figures["upload_scan_seconds"] = figures.get("upload_scan_seconds", 0.0) + found.seconds
        figures["upload_files_hashed"] = found.hashed
        return figures

    def submit(self, job: Job, staged: dict[str, Any]) -> AzureMLHandle:
        name = self._job_name(job)
        spec = self.job_spec(job, name, self._staged.data_key, self._staged.name, self._staged.prefix)
        outputs_key = self.outputs_key(name)
        handle = AzureMLHandle(job_id=name, spec=spec, staged=self._staged, outputs_key=outputs_key)
        if self.parsed().local:
            from platforms.azureml.emulator import local_run

            handle.local_run = local_run(spec, self._store, self._staged, outputs_key)
            handle.local_run.start()
        else:
            handle.job_id = self.jobs.create(spec)
        return handle

    def job_state(self, described: dict) -> str:
        return described.get("status") or "NotStarted"

    def job_outcome(self, handle: AzureMLHandle, d: dict) -> Outcome:
        status = d.get("status")
        result = {"Completed": "finished", "Canceled": "killed"}.get(status, "failed")
        points = [(s, timestamp(t)) for s, t in d.get("status_timeline") or seen_timeline(handle)]
        phases = timeline_phases(points, timestamp(d.get("end_time")) or datetime.now(timezone.utc), PHASES)
        running = phases.get("training")
        cfg = self.parsed()
        region, size = self.where()  # a compute cluster's own VM size, not the serverless instance_type setting
        on_demand = pricing.quote("azureml", region, [(size, cfg.instance_count)])
        tags = {tracking.Tag.JOB_ID: handle.job_id, "platbench.azureml.status": status or "",
                "platbench.run_name": cfg.run_key(handle.job_id),
                "platbench.cost_basis": "running seconds x the VM's list price (an estimate); Azure ML reports "
                                        "no billed seconds per job"}
        return Outcome(result, None, phases=phases, billed_seconds=None, **self.costs(running, on_demand),
                       tags=tags, message=d.get("error") or f"job {handle.job_id} {status}")

    # ------------------------------------------------------------------ collect
    def collect(self, handle: AzureMLHandle, outcome: Outcome, dest: Path) -> Path:
        # the job's output folder (outputs.results) is a path in platbench's own container, in both modes
        return self.collect_folders(handle, outcome, dest, [(handle.outputs_key, "")], f"azureml job {handle.job_id}",
                                    f"its output {self._store.uri(handle.outputs_key)}")
