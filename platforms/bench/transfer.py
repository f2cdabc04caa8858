"""`platbench transfer PLATFORM --data DIR --repeats N`: how fast a dataset goes into and comes out of a
platform's object store, measured cold, the same way for every platform.

Each repeat works in a fresh prefix of the store (nothing of an earlier repeat or run can be reused) and
measures two things:

- **batches of 1,024 images**, one object per image, the unit of the AWS-vs-Azure study that platbench
  grew from (../shared/references/aws-vs-azure-object-detection-deployment-paper.txt, "Upload latency",
  "Download latency": seconds per MiB of each batch of 1024 images through the platform's Python SDK, and
  the distribution over batches). Each batch's s/MiB is logged as a step metric; the repeat's median,
  IQR, min and max over batches as summary metrics.
- **the whole dataset as platbench stages it** (content-addressed tar shards, platforms/core/staging.py):
  upload_s_per_mb / download_s_per_mb over the bytes actually moved — the same metric names a training
  run logs, so the report reads both alike.

One MLflow run per repeat (kind `transfer`): the repeat is the unit of observation, one figure per run,
as the report's tests expect (platforms/core/stats.py works on one value per run). The repeats of one
command share the `transfer_id` param. The prefix is removed at the end of every repeat, also on an error
or Ctrl-C, and unfinished multipart uploads of this process under it are aborted first.

Settings are the platform's own (`--set bucket=… --set region=…`, validated by its launcher's settings
model); the store is the one the platform registers for its URI scheme. Nothing here names a platform."""
from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from platforms.core import registry
from platforms.core.api import Feature
from platforms.core.timed import without_gc
from platforms.errors import UserError

BATCH_IMAGES = 1024  # the study's unit
WORKERS = 10         # objects in flight at once per batch: the AWS CLI's default concurrency, as staging's naive mode
MB = 1024 * 1024     # MiB, as staging counts
KIND = "transfer"


@dataclass
class Target:
    platform: str
    scheme: str
    bucket: Optional[str]
    prefix: str                                  # the platform's staging root; repeats go under <prefix>/transfer/
    store_kwargs: dict = field(default_factory=dict)

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket or 'BUCKET'}/{key}"


def target_for(platform: str, settings: dict[str, str]) -> Target:
    """The platform's settings, parsed by its own launcher's model (one-line errors), and which store."""
    spec = registry.spec(platform)
    spec.require(Feature.REMOTE_STORAGE)
    launcher = registry.get(platform)(settings)
    cfg = launcher.parsed() if hasattr(launcher, "parsed") else None
    scheme = next(iter(spec.stores))
    kwargs = {k: getattr(cfg, k) for k in ("region", "project") if getattr(cfg, k, None) is not None}
    if getattr(cfg, "storage_account", None):  # Azure's: the Blob account the container is in
        kwargs["account"] = cfg.storage_account
    # Azure ML names its store's bucket `container` (the Blob container its jobs and endpoints use)
    bucket = getattr(cfg, "bucket", None) or getattr(cfg, "container", None) or settings.get("bucket")
    return Target(platform, scheme, bucket, (getattr(cfg, "prefix", None) or "platbench").strip("/"), kwargs)


def open_store(target: Target):
    """The registered store class for the scheme, given only the constructor arguments it takes."""
    import inspect

    from platforms.core.registry import open_store as open_uri

    if not target.bucket:
        raise UserError(f"{target.platform}: no bucket: add --set bucket=NAME")
    cls = registry.store_class(target.scheme)
    accepted = inspect.signature(cls.__init__).parameters
    return open_uri(target.uri(), **{k: v for k, v in target.store_kwargs.items() if k in accepted})


def batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def spread(values: list[float]) -> dict[str, float]:
    """median, IQR (inclusive quartiles), min, max, mean of per-batch figures."""
    if not values:
        return {}
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "iqr": q3 - q1, "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}


# ---------------------------------------------------------------- one batch (also reproduce's pipeline)

def batch_keys(root: str, base: Path, files: list[Path]) -> list[str]:
    """One object per image, under `root`, named by its path in the dataset."""
    return [root + p.relative_to(base).as_posix() for p in files]


def put_batch(store, pool: ThreadPoolExecutor, keys: list[str], files: list[Path]) -> float:
    """Seconds to upload the batch, `pool`'s workers in flight at once (no collector pause in them)."""
    with without_gc():
        t0 = time.perf_counter()
        list(pool.map(store.put_file, keys, files))
        return time.perf_counter() - t0


def get_batch(store, pool: ThreadPoolExecutor, keys: list[str], dests: list[Path]) -> float:
    """Seconds to download the batch's objects to `dests` (no collector pause in them)."""
    with without_gc():
        t0 = time.perf_counter()
        list(pool.map(store.get_file, keys, dests))
        return time.perf_counter() - t0


# ---------------------------------------------------------------- one repeat

def run_repeat(store, data: Path, prefix: str, batch_images: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Cold batch upload + download, then cold sharded staging + download, all under `prefix` (fresh)."""
    from platforms.core import staging

    base, _, files = staging.dataset_files(data)
    sizes = {p: p.stat().st_size for p in files}
    up, down = [], []
    batch_root = f"{prefix}/batches/"
    with tempfile.TemporaryDirectory(prefix="platbench-transfer-") as tmp:
        groups = batches(files, batch_images)
        with ThreadPoolExecutor(WORKERS) as pool:
            for i, group in enumerate(groups):
                mb = sum(sizes[p] for p in group) / MB
                up.append(put_batch(store, pool, batch_keys(batch_root, base, group), group) / mb)
                say(f"batch {i + 1}/{len(groups)} up: {up[-1]:.4f} s/MiB")
            for i, group in enumerate(groups):
                mb = sum(sizes[p] for p in group) / MB
                dests = [Path(tmp) / "batches" / f"{i}" / f"{n}" for n in range(len(group))]
                down.append(get_batch(store, pool, batch_keys(batch_root, base, group), dests) / mb)
                say(f"batch {i + 1}/{len(groups)} down: {down[-1]:.4f} s/MiB")
        staged = staging.upload_sharded(data, store, prefix=f"{prefix}/staged")
        say(f"whole, sharded up: {staged.figures.get('upload_s_per_mb', float('nan')):.4f} s/MiB")
        got = staging.download_staged(staged, store, Path(tmp) / "staged")
        say(f"whole, sharded down: {got.get('download_s_per_mb', float('nan')):.4f} s/MiB")
    metrics: dict[str, Any] = {k: v for k, v in {**staged.figures, **got}.items() if isinstance(v, (int, float))}
    for side, values in (("upload", up), ("download", down)):
        for stat, value in spread(values).items():
            metrics[f"batch_{side}_s_per_mb_{stat}"] = value
    metrics.update(batches=len(up), files=len(files), dataset_mb=sum(sizes.values()) / MB)
    return {"metrics": metrics, "batch_upload_s_per_mb": up, "batch_download_s_per_mb": down,
            "fingerprint": staged.fingerprint, "name": staged.name}


def cleanup(store, prefix: str) -> int:
    """This process's unfinished uploads under the prefix first (by their ids), then every object in it."""
    try:
        store.abort_incomplete(prefix + "/")
    finally:
        removed = store.delete_prefix(prefix + "/")
    return removed


# ---------------------------------------------------------------- the command

def plan_text(target: Target, data: Path, repeats: int, batch_images: int) -> str:
    from platforms.core import staging

    _, _, files = staging.dataset_files(data)
    total = sum(p.stat().st_size for p in files)
    root = target.uri(f"{target.prefix}/transfer/<id>-<repeat>")
    lines = [f"transfer benchmark on {target.platform} ({target.scheme}://): {len(files)} files, {total / MB:.2f} MiB, "
             f"{len(batches(files, batch_images))} batch(es) of up to {batch_images} images, {repeats} repeat(s)",
             f"each repeat, in a fresh prefix {root}/:",
             f"  1. upload each batch, one object per image ({WORKERS} at once), timed per batch → {root}/batches/",
             "  2. download each batch, timed per batch",
             f"  3. stage the whole dataset as platbench does (content-addressed tar shards) → {root}/staged/",
             "  4. download it as a job's input channel does, checking each shard's SHA-256",
             "  5. remove the prefix (also on error or Ctrl-C)",
             "  6. record one MLflow run (kind transfer): upload/download s/MiB, per-batch median/IQR/min/max"]
    if not target.bucket:
        lines.append("a real run still needs: --set bucket=NAME")
    lines.append("dry run: nothing was created")
    return "\n".join(lines)


def run(platform: str, data: Path, settings: dict[str, str], repeats: int, batch_images: int = BATCH_IMAGES,
        track: bool = True, say: Callable[[str], None] = lambda s: None) -> list[dict]:
    target = target_for(platform, settings)
    store = open_store(target)
    from platforms.core import staging

    staging.dataset_files(data)  # a bad dataset is one line before anything is created
    if not sdk_call(store.bucket_exists, target):
        raise UserError(f"{target.platform}: bucket {target.bucket!r} does not exist or is not reachable")
    transfer_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    out = []
    for repeat in range(1, repeats + 1):
        prefix = f"{target.prefix}/transfer/{transfer_id}-{repeat}"
        say(f"repeat {repeat}/{repeats} in {target.uri(prefix)}/")
        try:
            result = sdk_call(lambda: run_repeat(store, Path(data), prefix, batch_images, say), target)
        finally:
            sdk_call(lambda: cleanup(store, prefix), target)
        result.update(repeat=repeat, prefix=prefix, transfer_id=transfer_id)
        if track:
            result["mlflow_run_id"] = record(target, result, repeats, batch_images)
        out.append(result)
    return out


def sdk_call(fn, target: Target, what: str = "transfer"):
    """An SDK error (no credentials, connection refused, access denied …) becomes one line."""
    try:
        return fn()
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every SDK's exceptions, reported as one line
        text = str(exc).strip().splitlines()
        raise UserError(f"{target.platform} {what}: {type(exc).__name__}: {text[0] if text else ''}"[:400]) from None


def record(target: Target, result: dict, repeats: int, batch_images: int) -> str:
    from platforms.core import tracking

    tags = {tracking.Tag.PLATFORM: target.platform, tracking.Tag.KIND: KIND, tracking.Tag.STAGING: "sharded",
            tracking.Tag.DATASET: result["name"], tracking.Tag.DATASET_FINGERPRINT: result["fingerprint"],
            tracking.Tag.REGION: target.store_kwargs.get("region"), tracking.Tag.STATUS: "finished"}
    params = {"transfer_id": result["transfer_id"], "repeat": result["repeat"], "repeats": repeats,
              "batch_images": batch_images, "workers": WORKERS, "scheme": target.scheme}
    with tracking.tracked_run(f"transfer-{target.platform}-{result['repeat']}", params, tags) as tr:
        tr.metrics(result["metrics"])
        for side in ("upload", "download"):
            for step, value in enumerate(result[f"batch_{side}_s_per_mb"]):
                tr.metrics({f"batch_{side}_s_per_mb": value}, step=step)
        tr.end("FINISHED")
        return tr.run_id


def summary_rows(results: list[dict]) -> list[tuple[str, str]]:
    def fmt(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        s = spread(values)
        return f"{s['median']:.4f} (IQR {s['iqr']:.4f}, {s['min']:.4f}–{s['max']:.4f})"

    m = [r["metrics"] for r in results]
    return [("batch upload s/MiB, median per repeat", fmt([x.get("batch_upload_s_per_mb_median") for x in m])),
            ("batch download s/MiB, median per repeat", fmt([x.get("batch_download_s_per_mb_median") for x in m])),
            ("whole (sharded) upload s/MiB", fmt([x.get("upload_s_per_mb") for x in m])),
            ("whole (sharded) download s/MiB", fmt([x.get("download_s_per_mb") for x in m]))]


def cli_main(platform: str, data: Path, repeats: int, batch_images: int, set_: list[str], dry_run: bool,
             as_json: bool, track: bool, console) -> None:
    from platforms.core.settings import parse_pairs

    settings = parse_pairs(set_, "--set")
    target = target_for(platform, settings)
    if dry_run:
        print(plan_text(target, Path(data), repeats, batch_images))
        return
    say = (lambda s: None) if as_json else (lambda s: console.print(s, highlight=False))
    try:
        results = run(platform, Path(data), settings, repeats, batch_images, track, say)
    except KeyboardInterrupt:
        raise UserError("interrupted; this repeat's prefix was removed") from None
    if as_json:
        print(json.dumps({"platform": platform, "repeats": results}, indent=1, default=str))
        return
    from rich.table import Table

    table = Table(title=f"transfer {platform}: {len(results)} repeat(s), cold, s/MiB over the bytes moved")
    table.add_column("figure")
    table.add_column("median over repeats (IQR, min–max)", justify="right")
    for label, value in summary_rows(results):
        table.add_row(label, value)
    console.print(table)
    if track:
        console.print("MLflow runs: " + ", ".join(r["mlflow_run_id"][:8] for r in results), highlight=False)
