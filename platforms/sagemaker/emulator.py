"""SageMaker local mode without Docker: the training container contract (/opt/ml moved to a temp dir by
PLATBENCH_OPT_ML, hyperparameters.json, inputdataconfig.json, resourceconfig.json, model.tar.gz and
output.tar.gz uploaded back) around `python -m trainer train`, on the shared LocalRun
(platforms/core/emulator.py). Contract:
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html"""
from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

from platforms.core.emulator import LocalRun, _now, check_fingerprint, preset_epochs, sync_up
from platforms.errors import UserError
from platforms.sagemaker.phases import PHASES


def local_run(request: dict, store, prefix: str, staged) -> LocalRun:
    """SageMaker's training container contract, with /opt/ml moved to a temp dir (PLATBENCH_OPT_ML)."""
    root = Path(tempfile.mkdtemp(prefix=f"platbench-{request['TrainingJobName']}-"))
    opt_ml = root / "opt_ml"
    name = request["TrainingJobName"]
    env = {**os.environ, **request.get("Environment", {}), "TRAINING_JOB_NAME": name,
           "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{name}",
           "PLATBENCH_OPT_ML": str(opt_ml), "PLATBENCH_UNPACK_DIR": str(root / "unpacked"),
           "PYTHONUNBUFFERED": "1"}
    checkpoint = request.get("CheckpointConfig", {}).get("S3Uri")
    bucket = store.bucket

    def key_of(uri: str) -> str:
        head = f"s3://{bucket}/"
        if not uri.startswith(head):
            raise UserError(f"local mode reads and writes bucket {bucket} only, not {uri}")
        return uri[len(head):]

    def prepare(run: LocalRun) -> None:
        run.enter("Starting")
        config = opt_ml / "input/config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(request["HyperParameters"]))
        (config / "inputdataconfig.json").write_text(json.dumps({
            c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"),
                               "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                               "RecordWrapperType": "None"} for c in request["InputDataConfig"]}))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
        for d in ("model", "output/data", "checkpoints"):
            (opt_ml / d).mkdir(parents=True, exist_ok=True)
        run.enter("Downloading")
        from platforms.core.staging import download_staged

        run.figures.update(download_staged(staged, store, opt_ml / "input/data" /
                                           request["InputDataConfig"][0]["ChannelName"]))
        if checkpoint:
            from platforms.core.staging import download_prefix

            download_prefix(store, key_of(checkpoint).rstrip("/") + "/", opt_ml / "checkpoints")

    def finalize(run: LocalRun, rc: Optional[int]) -> None:
        failure = opt_ml / "output/failure"
        if failure.is_file():
            run.failure = failure.read_text()[:1024]
        out = key_of(request["OutputDataConfig"]["S3OutputPath"]).rstrip("/") + f"/{name}/output"
        t0 = time.perf_counter()
        sent = 0
        for src, tar_name in ((opt_ml / "model", "model.tar.gz"), (opt_ml / "output/data", "output.tar.gz")):
            tar_path = root / tar_name
            with tarfile.open(tar_path, "w:gz") as tar:
                for p in sorted(src.rglob("*")):
                    tar.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
            store.put_file(f"{out}/{tar_name}", tar_path)
            sent += tar_path.stat().st_size
        if checkpoint:
            sync_up(store, opt_ml / "checkpoints", key_of(checkpoint).rstrip("/") + "/")
        run.figures["output_upload_seconds"] = time.perf_counter() - t0
        run.figures["output_upload_mb"] = sent / (1024 * 1024)

    def describe(run: LocalRun) -> dict:
        final = run.timeline[-1][0] if run.timeline else "Starting"
        status = {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped",
                  "MaxRuntimeExceeded": "Stopped"}.get(final, "InProgress")
        training = [t for t in run.timeline if t[0] == "Training"]
        d = {"TrainingJobName": name, "TrainingJobStatus": status, "SecondaryStatus": final,
             "SecondaryStatusTransitions": [{"Status": s, "StartTime": a, "EndTime": b or _now()}
                                            for s, a, b in run.timeline],
             "ResourceConfig": request["ResourceConfig"], "CreationTime": run.created,
             "ModelArtifacts": {"S3ModelArtifacts":
                                f"{request['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"}}
        if training:
            d["TrainingStartTime"] = training[0][1]
            if status != "InProgress":
                d["TrainingEndTime"] = run.timeline[-1][1]
        if run.failure and status != "Completed":
            d["FailureReason"] = run.failure
        return d

    epochs = request["HyperParameters"].get("epochs")

    return LocalRun("sagemaker", name, [sys.executable, "-m", "trainer", "train"], env, root,
               int(request["StoppingCondition"]["MaxRuntimeInSeconds"]), prepare, finalize, describe,
               epochs=int(epochs) if epochs else preset_epochs(request["HyperParameters"].get("model")),
               phase_names=PHASES)


def checked_members(tar: tarfile.TarFile, target: Path, what: str) -> list[tarfile.TarInfo]:
    """Every member of a tarball from the bucket, checked before a byte is written, on every Python the
    package allows (filter='data' exists only from 3.10.12 / 3.11.4; https://docs.python.org/3/library/
    tarfile.html#extraction-filters): no absolute name, no `..`, no device or fifo, and a symlink or hard
    link only when its target stays inside `target`, as seen through the links before it (a link to a
    folder, then a member written through it, is the classic escape)."""
    links: dict[str, str] = {}  # member name → its target, relative to root (symlinks resolved lexically)

    def resolve(rel: str) -> Optional[str]:
        """`rel` (relative to root) with earlier symlinks in the archive followed; None when it leaves root."""
        parts, out, hops = rel.split("/"), [], 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    return None
                out.pop()
                continue
            here = "/".join(out + [part])
            if here in links and hops < 40:
                hops += 1
                link = links[here]
                if link.startswith("/"):
                    return None
                parts = link.split("/") + parts
                continue
            out.append(part)
        return "/".join(out)

    def refuse(m: tarfile.TarInfo, why: str) -> UserError:
        return UserError(f"{what}: {m.name!r} in its tarball {why}; refusing to unpack it")

    members = tar.getmembers()
    for m in members:
        name = m.name
        if not name or name.startswith("/") or "\\" in name or "\0" in name or ".." in name.split("/") \
                or (len(name) > 1 and name[1] == ":"):
            raise refuse(m, "is not a plain relative path")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise refuse(m, "is a device or fifo")
        parent = resolve(name.rsplit("/", 1)[0] if "/" in name else "")
        if parent is None or resolve(name) is None:
            raise refuse(m, "is written through a link that leaves the folder")
        if m.issym():
            if m.linkname.startswith("/") or resolve(f"{parent}/{m.linkname}" if parent else m.linkname) is None:
                raise refuse(m, f"is a symlink to {m.linkname!r}, outside the folder")
            links[name.rstrip("/")] = f"{parent}/{m.linkname}" if parent else m.linkname
        elif m.islnk():  # a hard link's target is a member name, relative to the archive's root
            if m.linkname.startswith("/") or resolve(m.linkname) is None:
                raise refuse(m, f"is a hard link to {m.linkname!r}, outside the folder")
    return members


def collect_tarballs(store, key_prefix: str, dest: Path, fingerprint: str, what: str) -> dict:
    """SageMaker's outputs: output.tar.gz → dest/, model.tar.gz → dest/model/; then check that the
    trainer read the dataset that was staged (results.json's fingerprint). Both tarballs are downloaded
    and every member checked before anything is unpacked (nothing half-written on a refusal)."""
    t0 = time.perf_counter()
    got = 0
    with tempfile.TemporaryDirectory() as tmp:
        unpack = []
        for tar_name, target in (("output.tar.gz", dest), ("model.tar.gz", dest / "model")):
            key = f"{key_prefix.rstrip('/')}/{tar_name}"
            if store.size(key) is None:
                raise UserError(f"{what} finished but wrote no {tar_name} at {store.uri(key)}")
            path = Path(tmp) / tar_name
            got += store.get_file(key, path)
            try:
                with tarfile.open(path) as tar:
                    checked_members(tar, target, f"{what} {tar_name}")
            except tarfile.TarError as exc:
                raise UserError(f"{what}: {tar_name} is not a readable tarball ({exc})") from None
            unpack.append((path, target))
        for path, target in unpack:
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                members = checked_members(tar, target, what)
                if hasattr(tarfile, "data_filter"):  # tarfile's own guard as well, where it exists
                    tar.extractall(target, members=members, filter="data")
                else:
                    tar.extractall(target, members=members)
    check_fingerprint(dest, fingerprint, what)
    seconds = time.perf_counter() - t0
    return {"collect_seconds": seconds, "collect_mb": got / (1024 * 1024)}
