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


def collect_tarballs(store, key_prefix: str, dest: Path, fingerprint: str, what: str) -> dict:
    """SageMaker's outputs: output.tar.gz → dest/, model.tar.gz → dest/model/; then check that the
    trainer read the dataset that was staged (results.json's fingerprint)."""
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    got = 0
    with tempfile.TemporaryDirectory() as tmp:
        for tar_name, target in (("output.tar.gz", dest), ("model.tar.gz", dest / "model")):
            key = f"{key_prefix.rstrip('/')}/{tar_name}"
            if store.size(key) is None:
                raise UserError(f"{what} finished but wrote no {tar_name} at {store.uri(key)}")
            path = Path(tmp) / tar_name
            got += store.get_file(key, path)
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:
                    tar.extractall(target)
    check_fingerprint(dest, fingerprint, what)
    seconds = time.perf_counter() - t0
    return {"collect_seconds": seconds, "collect_mb": got / (1024 * 1024)}
