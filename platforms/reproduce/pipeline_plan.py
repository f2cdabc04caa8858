"""The AWS-vs-Azure pipeline's plan (pipeline.py runs it, pipeline_figures.py reads it back): the batch unit, which
platforms can run it (this machine, or one whose SPEC names an object store and an endpoint), what each batch
records, and the dry run's lines (store, endpoint and its price per platform; no credentials). Imports no other
reproduce module but pipeline_store, so plan.py can show it without a cycle."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

KIND = "pipeline"
STORE_TAG = "platbench.pipeline_store"         # where the batches went (a disk folder, or the bucket's prefix)
ENDPOINT_TAG = "platbench.pipeline_endpoint"   # what served the inference
LOCAL_SERVER = "the trainer's server (python -m trainer serve) on loopback"   # this machine's endpoint
CONCURRENCY = 4        # inference requests in flight: `platbench batch --endpoint`'s default
MIB = 2 ** 20
# the paper's per-batch figures → the step metric each batch logs (MiB: platbench's unit, 2^20 bytes)
METRICS = {"upload_s_per_mb": "pipeline_upload_s_per_mib", "download_s_per_mb": "pipeline_download_s_per_mib",
           "inference_s_per_mb": "pipeline_inference_s_per_mib", "throughput_mb_per_s": "pipeline_throughput_mib_per_s"}
EXTRA = ("pipeline_batch_mib", "pipeline_batch_images", "pipeline_errors")
# the paper's Kruskal–Wallis H per figure (Sections 4.1–4.4)
KW = {f"kruskal_wallis_h_{side}": q for side, q in (("download", "download_s_per_mb"), ("upload", "upload_s_per_mb"),
                                                     ("inference", "inference_s_per_mb"),
                                                     ("throughput", "throughput_mb_per_s"))}
COST = {"deployment_usd_per_hour": "hour", "deployment_usd_per_day": "day"}


def batch_images(plan) -> int:
    """The study's batch unit, or the local small version's (`local.batch_images`) unless --full."""
    local = plan.proto.local.batch_images
    return plan.proto.batch_unit.images if plan.full or not local else local


def batch_files(data: Path) -> list[Path]:
    """The test split's images, sorted: what the batches are cut from."""
    from platforms.bench.load_payloads import image_files

    return image_files([data / "test"]) if (data / "test").is_dir() else []


def on_this_machine(platform: str) -> bool:
    from platforms.core import registry

    return platform == registry.this_machine()


def cannot(platform: str) -> Optional[str]:
    """Why the platform cannot run the pipeline (None: it can): it needs an object store and an endpoint."""
    from platforms.core import registry

    if on_this_machine(platform):
        return None
    spec = registry.spec(platform)
    missing = [what for what, has in (("object store", spec.stores), ("endpoint", spec.endpoint)) if not has]
    return f"{platform} has no {' and no '.join(missing)}" if missing else None


def cloud_platforms(plan) -> list[str]:
    """The plan's platforms that run the pipeline on their own store and endpoint (not this machine)."""
    return [p for p in plan.platforms if not on_this_machine(p) and cannot(p) is None]


def plan_lines(plan) -> list[str]:
    """The dry run's part: batches, and per platform the store, the endpoint and its price; no credentials."""
    from platforms.reproduce.pipeline_store import DISK

    files = batch_files(plan.data)
    size = batch_images(plan)
    n = -(-len(files) // size) if files else 0
    out = [f"  pipeline (the paper's per-batch unit): {len(files)} test images in {n} batch(es) of up to {size}; per "
           f"batch: upload to the platform's store (one object per image), download, inference of every image "
           f"through its endpoint ({CONCURRENCY} at once); s/MiB each, throughput = batch MiB / (download + inference)"]
    for platform in plan.platforms:
        why = cannot(platform)
        if why:
            out.append(f"    {platform}: no pipeline ({why})")
        elif on_this_machine(platform):
            out.append(f"    {platform}: store {DISK}; endpoint {LOCAL_SERVER}; nothing billed")
        else:
            out += _cloud_lines(plan, platform, len(files))
    return out


def _cloud_lines(plan, platform: str, requests: int) -> list[str]:
    from platforms.bench import transfer
    from platforms.bench.endpoint import endpoint_for
    from platforms.core.cost_plan import endpoint_text

    settings = plan.settings.get(platform, {})
    target = transfer.target_for(platform, settings)
    ep = endpoint_for(platform, plan.endpoint_settings.get(platform, {}))
    store = target.uri(f"{target.prefix}/reproduce/<id>/")
    lines = [f"    {platform}: store {store} (removed after); endpoint {ep.target().describe()}, "
             "deleted after"]
    cost = ep.cost()
    lines.append("      " + (endpoint_text(platform, cost.usd_per_hour, cost.basis, requests) if cost else
                             f"no endpoint price in platforms/{platform}/prices.yaml: cost unknown"))
    return lines
