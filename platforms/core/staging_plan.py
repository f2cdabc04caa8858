"""The dry-run plan's steps every cloud launcher shows the same way: staging the dataset (core/staging.py's
two modes, in the platform's own CLI) and the steps after the job (collect, record, cancel on Ctrl-C).
Nothing here runs a command: a plan only names them."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable

from platforms.core.api import PlanStep
from platforms.core.staging import MANIFEST_NAME

Copy = Callable[[str, str], str]  # (what, where) → the platform CLI's command that copies it there


def staging_steps(data: Path, mode: str, root: str, put: Copy, put_tree: Copy, *, store: str = "the bucket",
                  unit: str = "object", resumable: str = "resumable", reads: str = "") -> list[PlanStep]:
    """sharded: pack and upload the shards `store` lacks, then the manifest last (its presence means
    complete); naive: every file as its own `unit`. root: the staging root as the CLI names it; reads: how
    the job reads the staged dataset, said with the manifest step."""
    if mode == "sharded":
        return [
            PlanStep(f"fingerprint {data} (file hashes cached by size+mtime) and pack it into content-addressed tar "
                     f"shards, one per class folder; upload only the shards {store} lacks ({resumable})",
                     put("SHARD.tar", f"{root}/shards/<sha256>.tar") + "   # for each new shard"),
            PlanStep("write the dataset manifest last" + (f"; {reads}" if reads else ""),
                     put(MANIFEST_NAME, f"{root}/datasets/<fingerprint>/{MANIFEST_NAME}")),
        ]
    return [PlanStep(f"upload every file as its own {unit} (naive staging)",
                     put_tree(shlex.quote(str(data)), f"{root}/naive/{Path(data).resolve().name}/"))]


def closing_steps(collect: str, record: str, cancel: str, what: str = "results.json, metrics.jsonl, train.log "
                  "and model/", stop: str = "cancel the job") -> list[PlanStep]:
    """collect the outputs and check the fingerprint, record the MLflow run (`record`: what it holds beyond
    the shared figures), and on an error or Ctrl-C `stop` (the command `cancel`)."""
    return [
        PlanStep(f"collect {what}; check the dataset fingerprint the trainer read against the staged one", collect),
        PlanStep(f"record the MLflow run: {record}, upload/download s/MiB, phase seconds"),
        PlanStep(f"on an error or Ctrl-C while waiting: {stop}", cancel),
    ]
