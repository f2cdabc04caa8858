"""What SageMaker does with a training job, written from its documentation (not from platbench's local-mode
emulator), for the loopback control plane (sagemaker_server.py). It imports nothing from platforms.

Per job (per host of ResourceConfig.InstanceCount, named algo-1 … algo-N):
- a private /opt/ml (and /tmp): the image's entry runs as root in its own mount namespace with a scratch
  folder bind-mounted at /opt/ml, so jobs running at once, or tests in parallel, never share it;
- /opt/ml/input/config/hyperparameters.json (the request's HyperParameters, string values),
  inputdataconfig.json (per channel: TrainingInputMode, S3DistributionType, RecordWrapperType, ContentType),
  resourceconfig.json (current_host, hosts, network_interface_name, instance groups); each channel's S3
  objects under /opt/ml/input/data/<channel>/; TRAINING_JOB_NAME, TRAINING_JOB_ARN and the request's
  Environment in the container's environment; started as `docker run IMAGE train` starts it (the image's
  entrypoint with the argument `train`, or ContainerEntrypoint / ContainerArguments):
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
- the sagemaker-training toolkit's SM_* variables only for an image that carries the toolkit (they are set
  by the toolkit inside the container, not by SageMaker):
  https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md
- channels: S3Prefix (every object under the prefix, at its key relative to the prefix) and ManifestFile
  (a JSON list: {"prefix": …} then keys relative to it), File input mode:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html
- outputs: /opt/ml/model → <S3OutputPath>/<job>/output/model.tar.gz, /opt/ml/output/data → output.tar.gz
  beside it, also for a stopped job; /opt/ml/output/failure → FailureReason (first 1024 characters); exit
  status 0 = Completed, otherwise Failed:
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-signal-success-failure.html
- checkpoints: objects under CheckpointConfig.S3Uri are copied into LocalPath (default /opt/ml/checkpoints)
  before the image starts, and files written there are copied back to S3Uri while it runs and at its end:
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
- StopTrainingJob and MaxRuntimeInSeconds: SIGTERM, then SIGKILL after 120 seconds (`stop_grace`); status
  Stopping → Stopped, SecondaryStatus Stopped or MaxRuntimeExceeded:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StoppingCondition.html
- DescribeTrainingJob: TrainingStartTime is when the job starts on its instances and TrainingEndTime when it
  ends there (after the artifacts are uploaded, or when a failure is detected), "you are billed for the time
  interval between" them; BillableTimeInSeconds is that wall-clock time (× InstanceCount = instance time);
  managed spot shows its discount as fewer billable seconds (savings = 1 − Billable / TrainingTime);
  FinalMetricDataList holds the last value each MetricDefinitions regex found in the log:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html
  https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html
What it does not do: pull real images (a test names the entrypoint each image URI stands for), spot
interruptions, network isolation, VPCs, FastFile/Pipe input modes."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

ACCOUNT = "123456789012"
OPT_ML = "/opt/ml"
# the namespace's mounts, then the image's entry: sh's $1/$2 are the scratch folders, the rest the command
_MOUNT = 'mount --bind "$1" /opt/ml && mount --bind "$2" /tmp && shift 2 && exec "$@"'


def unshare_works() -> str:
    """'' when this machine can give a job its own /opt/ml (root, mount namespaces), else why not."""
    if os.geteuid() != 0:
        return "the SageMaker job runner needs root (a private mount namespace for /opt/ml)"
    try:
        os.makedirs(OPT_ML, exist_ok=True)
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               'mount --bind "$1" /opt/ml', "sh", "/tmp"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare cannot run here: {exc}"
    return "" if done.returncode == 0 else f"unshare --mount failed: {done.stderr.strip()[:200]}"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


class JobFailed(Exception):
    """The job fails with this FailureReason."""


class TrainingJob:
    def __init__(self, request: dict, server):
        self.request, self.server = request, server
        self.name = request["TrainingJobName"]
        self.arn = f"arn:aws:sagemaker:{server.region}:{ACCOUNT}:training-job/{self.name.lower()}"
        self.status, self.secondary = "InProgress", "Starting"
        self.transitions: list[dict] = []
        self.created = time.time()
        self.modified = self.created
        self.started = self.ended = None
        self.failure = None
        self.metrics: list[dict] = []
        self.end_as = None          # the secondary status a stop ends in (Stopped, MaxRuntimeExceeded)
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.root = Path(server.workdir) / self.name
        n = request["ResourceConfig"].get("InstanceCount", 1)
        self.hosts = [f"algo-{i + 1}" for i in range(n)]
        self.thread = threading.Thread(target=self._run, name=f"sagemaker-job-{self.name}", daemon=True)
        self._s3 = None
        self._synced: dict[Path, tuple[int, int]] = {}  # checkpoint file → (size, mtime) last copied to S3

    # ------------------------------------------------------------------ state
    def start(self) -> None:
        self.enter("Starting", "Starting the training job")
        self.thread.start()

    def enter(self, secondary: str, message: str) -> None:
        with self.lock:
            now = time.time()
            if self.transitions:
                self.transitions[-1].setdefault("EndTime", now)
            self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
            self.secondary, self.modified = secondary, now

    def stop(self, end_as: str) -> bool:
        """StopTrainingJob (end_as Stopped) or the stopping condition (MaxRuntimeExceeded): False when the
        job is not in progress."""
        with self.lock:
            if self.status != "InProgress":
                return False
            self.status, self.end_as = "Stopping", end_as
        self.enter("Stopping", "Stopping the training job")
        return True  # the job's thread sends SIGTERM (_train), or starts nothing more

    @property
    def stopping(self) -> bool:
        return self.end_as is not None

    def describe(self) -> dict:
        r = self.request
        with self.lock:
            d = {"TrainingJobName": self.name, "TrainingJobArn": self.arn, "TrainingJobStatus": self.status,
                 "SecondaryStatus": self.secondary, "CreationTime": self.created, "LastModifiedTime": self.modified,
                 "ModelArtifacts": {"S3ModelArtifacts": f"{self._output_prefix()}/model.tar.gz"},
                 "SecondaryStatusTransitions": [dict(t) for t in self.transitions],
                 "AlgorithmSpecification": r["AlgorithmSpecification"], "RoleArn": r["RoleArn"],
                 "OutputDataConfig": r["OutputDataConfig"], "ResourceConfig": r["ResourceConfig"],
                 "StoppingCondition": r.get("StoppingCondition", {"MaxRuntimeInSeconds": 86400}),
                 "EnableManagedSpotTraining": bool(r.get("EnableManagedSpotTraining"))}
            for key in ("HyperParameters", "InputDataConfig", "CheckpointConfig", "Environment"):
                if key in r:
                    d[key] = r[key]
            if self.started is not None:
                d["TrainingStartTime"] = self.started
            if self.ended is not None:
                d["TrainingEndTime"] = self.ended
                d.update(self._billing())
            if self.failure:
                d["FailureReason"] = self.failure
            if self.metrics:
                d["FinalMetricDataList"] = self.metrics
        return d

    def _billing(self) -> dict:
        if self.started is None:
            return {}
        seconds = max(1, math.ceil(self.ended - self.started))
        billed = seconds
        if self.request.get("EnableManagedSpotTraining"):
            billed = max(1, math.ceil(seconds * (1 - self.server.spot_savings)))
        return {"TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": billed}

    def _output_prefix(self) -> str:
        return f"{self.request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{self.name}/output"

    # ------------------------------------------------------------------ the job
    def _run(self) -> None:
        ran = False
        try:
            self.enter("LaunchingMLInstances", "Launching requested ML instances")
            image = self._image()
            self.started = time.time()  # on its instances from here: the billed interval starts
            self.enter("Downloading", "Downloading input data")
            for host in self.hosts:
                self._prepare(host)
            self.enter("DownloadingTrainingImage", "Downloading the training image")
            if image is None:
                uri = self.request["AlgorithmSpecification"]["TrainingImage"]
                raise JobFailed(f"ClientError: the training image {uri} could not be pulled (not in this server's "
                                "registry)")
            if self.stopping:
                return
            self.enter("Training", "Training image download completed. Training in progress.")
            ran = True
            codes = self._train(image)
            self.enter("Uploading", "Uploading generated training model")
            self._upload()
            self._read_metrics()
            if not self.stopping and any(codes):
                failure = self._opt_ml(self.hosts[0]) / "output/failure"
                raise JobFailed(failure.read_text(errors="replace")[:1024] if failure.is_file() else
                                f"AlgorithmError: the training image exited with status {max(codes, key=abs)}")
        except JobFailed as exc:
            self.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - a server error fails the job, as InternalServerError would
            self.failure = f"InternalServerError: {type(exc).__name__}: {exc}"[:1024]
            if ran:
                try:
                    self._upload()
                except Exception:  # noqa: BLE001
                    pass
        finally:
            self._finish()

    def _finish(self) -> None:
        with self.lock:
            self.ended = time.time()
            if self.failure and not self.stopping:
                status, secondary, message = "Failed", "Failed", "Training job failed"
            elif self.stopping:
                status, secondary = "Stopped", self.end_as
                message = ("The job was stopped because it exceeded the maximum allowed runtime"
                           if self.end_as == "MaxRuntimeExceeded" else "Training job stopped")
                self.failure = None
            else:
                status, secondary, message = "Completed", "Completed", "Training job completed"
        self.enter(secondary, message)
        with self.lock:
            self.transitions[-1]["EndTime"] = self.ended
            self.status = status

    def _image(self):
        spec = self.request["AlgorithmSpecification"]
        return self.server.images.get(spec.get("TrainingImage"))

    def _opt_ml(self, host: str) -> Path:
        return self.root / host / "opt_ml"

    def _checkpoint_dir(self, host: str):
        """LocalPath inside this host's /opt/ml (other paths are refused at create time)."""
        cfg = self.request.get("CheckpointConfig")
        if not cfg:
            return None
        local = cfg.get("LocalPath", f"{OPT_ML}/checkpoints")
        return self._opt_ml(host) / os.path.relpath(local, OPT_ML)

    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.session.Session().client(
                "s3", endpoint_url=self.server.s3_endpoint, region_name=self.server.region,
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._s3

    def _prepare(self, host: str) -> None:
        r, opt_ml = self.request, self._opt_ml(host)
        for d in ("input/config", "model", "output/data", "code"):
            (opt_ml / d).mkdir(parents=True, exist_ok=True)
        for d in ("tmp", "work"):
            (self.root / host / d).mkdir(parents=True, exist_ok=True)
        channels = r.get("InputDataConfig", [])
        config = opt_ml / "input/config"
        (config / "hyperparameters.json").write_text(json.dumps(r.get("HyperParameters", {})))
        (config / "inputdataconfig.json").write_text(json.dumps({
            c["ChannelName"]: {"TrainingInputMode": c.get("InputMode") or r["AlgorithmSpecification"]
                               .get("TrainingInputMode", "File"),
                               "S3DistributionType": c["DataSource"]["S3DataSource"].get("S3DataDistributionType",
                                                                                         "FullyReplicated"),
                               "RecordWrapperType": c.get("RecordWrapperType", "None"),
                               **({"ContentType": c["ContentType"]} if "ContentType" in c else {})}
            for c in channels}))
        res = r["ResourceConfig"]
        (config / "resourceconfig.json").write_text(json.dumps({
            "current_host": host, "current_instance_type": res["InstanceType"],
            "current_group_name": "homogeneousCluster",
            "hosts": self.hosts, "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                                      "instance_type": res["InstanceType"], "hosts": self.hosts}],
            "network_interface_name": "eth0"}))
        for c in channels:
            self._download(c, opt_ml / "input/data" / c["ChannelName"])
        checkpoints = self._checkpoint_dir(host)
        if checkpoints is not None:
            checkpoints.mkdir(parents=True, exist_ok=True)
            bucket, prefix = _split(r["CheckpointConfig"]["S3Uri"].rstrip("/") + "/")
            for key in self._keys(bucket, prefix):
                self._get(bucket, key, checkpoints / key[len(prefix):])

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]

    def _get(self, bucket: str, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.s3().download_file(bucket, key, str(dest))
        except Exception as exc:  # noqa: BLE001
            raise JobFailed(f"ClientError: Data download failed: could not download s3://{bucket}/{key} ({exc})")

    def _download(self, channel: dict, dest: Path) -> None:
        src = channel["DataSource"].get("S3DataSource")
        if src is None:
            raise JobFailed("ClientError: this server reads S3 channels only")
        dest.mkdir(parents=True, exist_ok=True)
        bucket, prefix = _split(src["S3Uri"])
        if src["S3DataType"] == "S3Prefix":
            keys = self._keys(bucket, prefix)
            if not keys:
                raise JobFailed(f"ClientError: No S3 objects found under S3 URL \"{src['S3Uri']}\" given in input "
                                "data source. Please ensure that the bucket exists in the selected region "
                                f"({self.server.region}), that objects exist under that S3 prefix, and that the role "
                                "has access to them.")
            for key in keys:
                self._get(bucket, key, dest / key[len(prefix):].lstrip("/"))
        elif src["S3DataType"] == "ManifestFile":
            tmp = dest.parent / f".{channel['ChannelName']}.manifest"
            self._get(bucket, prefix, tmp)
            try:
                entries = json.loads(tmp.read_text())
                root = entries[0]["prefix"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise JobFailed(f"ClientError: the manifest {src['S3Uri']} is not a JSON list starting with "
                                "{\"prefix\": …}") from None
            finally:
                tmp.unlink(missing_ok=True)
            for rel in entries[1:]:
                b, k = _split(root + rel)
                self._get(b, k, dest / rel)
        else:
            raise JobFailed(f"ClientError: S3DataType {src['S3DataType']} is not served by this loopback server")

    def _environment(self, image: dict, host: str) -> dict:
        r = self.request
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/root", "LANG": "C.UTF-8",
               **image.get("env", {}), **r.get("Environment", {}),
               "TRAINING_JOB_NAME": self.name, "TRAINING_JOB_ARN": self.arn, **self.server.runtime_env}
        if image.get("toolkit"):  # what the toolkit would export inside the container
            config = self._opt_ml(host) / "input/config"
            channels = [c["ChannelName"] for c in r.get("InputDataConfig", [])]
            hps = r.get("HyperParameters", {})
            env.update({
                "SM_MODEL_DIR": f"{OPT_ML}/model", "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_HPS": json.dumps(hps), "SM_CURRENT_HOST": host, "SM_HOSTS": json.dumps(self.hosts),
                "SM_NUM_GPUS": "0", "SM_NUM_CPUS": str(os.cpu_count() or 1), "SM_NETWORK_INTERFACE_NAME": "eth0",
                "SM_INPUT_DIR": f"{OPT_ML}/input", "SM_INPUT_CONFIG_DIR": f"{OPT_ML}/input/config",
                "SM_OUTPUT_DIR": f"{OPT_ML}/output", "SM_OUTPUT_DATA_DIR": f"{OPT_ML}/output/data",
                "SM_RESOURCE_CONFIG": (config / "resourceconfig.json").read_text(),
                "SM_INPUT_DATA_CONFIG": (config / "inputdataconfig.json").read_text(),
                **{f"SM_CHANNEL_{c.upper()}": f"{OPT_ML}/input/data/{c}" for c in channels},
                **{f"SM_HP_{k.upper()}": v for k, v in hps.items()}})
        return env

    def _train(self, image: dict) -> list[int]:
        spec = self.request["AlgorithmSpecification"]
        # `docker run IMAGE train`: the argument follows the image's ENTRYPOINT, or is the command itself
        command = list(spec.get("ContainerEntrypoint") or image.get("entrypoint", [])) + list(
            spec.get("ContainerArguments") or ["train"])
        for host in self.hosts:
            base = self.root / host
            log = open(base / "job.log", "wb")  # closed when the process ends
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT, "sh",
                 str(self._opt_ml(host)), str(base / "tmp"), *command],
                env=self._environment(image, host), cwd=base / "work", stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            log.close()
            self.procs.append(proc)
        limit = self.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        deadline, killed_at, synced = time.monotonic() + limit, None, 0.0
        while any(p.poll() is None for p in self.procs):
            now = time.monotonic()
            if now > deadline and not self.stopping:
                self.stop("MaxRuntimeExceeded")
            if self.stopping and killed_at is None:
                for p in self.procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                killed_at = now + self.server.stop_grace
            if killed_at is not None and now > killed_at:
                for p in self.procs:
                    if p.poll() is None:
                        os.killpg(p.pid, signal.SIGKILL)
            if now - synced > 0.5:
                self._sync_checkpoints()
                synced = now
            time.sleep(0.05)
        return [p.returncode for p in self.procs]

    def _sync_checkpoints(self) -> None:
        """Copy new or changed files under LocalPath (the first host's) to CheckpointConfig.S3Uri."""
        local = self._checkpoint_dir(self.hosts[0])
        if local is None or not local.is_dir():
            return
        bucket, prefix = _split(self.request["CheckpointConfig"]["S3Uri"].rstrip("/") + "/")
        seen = self._synced
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            try:
                st = path.stat()
            except FileNotFoundError:  # the trainer replaced it meanwhile: the next pass sends the new one
                continue
            if seen.get(path) != (st.st_size, st.st_mtime_ns):
                try:
                    self.s3().upload_file(str(path), bucket, prefix + path.relative_to(local).as_posix())
                except FileNotFoundError:  # an atomic write's temporary file, renamed between stat and upload
                    continue
                seen[path] = (st.st_size, st.st_mtime_ns)

    def _upload(self) -> None:
        """The first host's /opt/ml/model and /opt/ml/output/data, as model.tar.gz and output.tar.gz (the pages
        do not say how several hosts' folders combine; the trainer writes its outputs on rank 0 alone)."""
        bucket, prefix = _split(self._output_prefix())
        opt_ml = self._opt_ml(self.hosts[0])
        for folder, name in ((opt_ml / "model", "model.tar.gz"), (opt_ml / "output/data", "output.tar.gz")):
            tar_path = self.root / name
            with tarfile.open(tar_path, "w:gz") as tar:
                for path in sorted(folder.rglob("*")):
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
            self.s3().upload_file(str(tar_path), bucket, f"{prefix}/{name}")
        self._sync_checkpoints()

    def _read_metrics(self) -> None:
        log = self.root / self.hosts[0] / "job.log"
        text = log.read_text(errors="replace") if log.is_file() else ""
        now = time.time()
        for d in self.request["AlgorithmSpecification"].get("MetricDefinitions", []):
            found = re.findall(d["Regex"], text)
            if found:
                value = found[-1][0] if isinstance(found[-1], tuple) else found[-1]
                try:
                    self.metrics.append({"MetricName": d["Name"], "Value": float(value), "Timestamp": now})
                except ValueError:
                    pass

    def log(self, host: str = "algo-1") -> str:
        path = self.root / host / "job.log"
        return path.read_text(errors="replace") if path.is_file() else ""
