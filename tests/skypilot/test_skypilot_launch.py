"""`platbench launch skypilot` through SkyPilot's real API server, with AWS played by moto on loopback.

What runs for real: platbench's client (SkyPilot 0.9.2 in .venv) talks to SkyPilot 0.9.2's own API server
(`python -m sky.server.server`, from the side environment .venv-sky: scripts/skypilot-server-env, because
the server does not start with the lock's FastAPI); `sky check`, as SkyPilot's setup asks, checks the AWS
credentials (STS) and enables the cloud; the server runs its optimizer over the catalog, and its AWS
provisioner makes the real EC2/IAM calls (security group, subnets, RunInstances, TerminateInstances) against
moto, reached through boto3's AWS_ENDPOINT_URL.

Test fixtures, not SkyPilot's data (no internet here: SkyPilot downloads its catalogs from GitHub on first
use, and reads a catalog file it finds in ~/.sky/catalogs/<schema version>/ as "manually populated" instead):
- common/accelerators.csv (AcceleratorName, Clouds), aws/vms.csv (InstanceType, AcceleratorName,
  AcceleratorCount, vCPUs, MemoryGiB, GpuInfo, Price, SpotPrice, Region, AvailabilityZone — a zone ID),
  aws/images.csv (Tag, Region, OS, OSVersion, ImageId, CreationDate) and aws/instance_quota_mapping.csv
  (InstanceType, OnDemandInstanceCode, SpotInstanceCode), with one GPU row: g4dn.xlarge, T4:1, us-east-1,
  at AWS's on-demand list price; the image is the Deep Learning AMI in moto's own image list.
- aws/az_mappings-<user hash>.csv, the account's zone IDs → zone names that SkyPilot fetches on first use
  (DescribeAvailabilityZones in every enabled region: 22 against moto, most of `sky check`'s seconds): the
  catalog's one region's, from moto, as SkyPilot writes it.
- the AWS account as AWS makes it and SkyPilot leaves it: the default VPC routed to an internet gateway
  (moto's has none; SkyPilot only uses public subnets), and SkyPilot's instance profile `skypilot-v1` already
  there (as after a first launch: moto refuses the role policy SkyPilot writes, which has no "Version").

What cannot run here: the instance moto creates has no machine behind it, so SkyPilot's wait for SSH (10
minutes, not configurable) never succeeds; nothing after it (the container, the file mounts, the trainer,
the log tail, collect, the cost) runs. The test presses Ctrl-C during that wait. On the server's PATH, `ssh`
is a stand-in that fails as SSH to such an instance does, at once instead of after SkyPilot's 30-s connect
timeout (no_route_ssh; SkyPilot's own ssh_proxy_command would do it, but SkyPilot refuses docker images
with a proxy command on AWS).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Optional

import pytest
import yaml
from conftest import wait_for
from conftest_clouds import Proxy, free_port, moto_server, new_bucket_name  # noqa: F401 (fixtures)

pytest.importorskip("sky")

REPO = Path(__file__).resolve().parents[2]
SERVER_PY = Path(os.environ.get("PLATBENCH_SKYPILOT_SERVER_ENV", REPO / ".venv-sky")) / "bin" / "python"
CATALOG_VERSION = "v6"  # sky.clouds.service_catalog.constants.CATALOG_SCHEMA_VERSION of SkyPilot 0.9.2
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/platbench@sha256:" + "0123456789abcdef" * 4
GPU_INFO = ("{'Gpus': [{'Name': 'T4', 'Manufacturer': 'NVIDIA', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 16384}}], "
            "'TotalGpuMemoryInMiB': 16384}")

pytestmark = [
    pytest.mark.skipif(not SERVER_PY.is_file(), reason=f"no SkyPilot API server environment at {SERVER_PY.parent.parent}"
                                                       " (scripts/skypilot-server-env makes it)"),
    pytest.mark.skipif(shutil.which("rsync") is None, reason="SkyPilot's provisioner needs rsync (apt-get install rsync)"),
]


def write_catalog(home: Path, ami: str) -> None:
    root = home / ".sky" / "catalogs" / CATALOG_VERSION
    (root / "common").mkdir(parents=True)
    (root / "aws").mkdir()
    (root / "common" / "accelerators.csv").write_text("AcceleratorName,Clouds\nT4,\"['AWS']\"\n")
    (root / "aws" / "vms.csv").write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone\n"
        f"g4dn.xlarge,T4,1.0,4.0,16.0,\"{GPU_INFO}\",0.526,0.2104,us-east-1,use1-az1\n"
        "m6i.2xlarge,,,8.0,32.0,,0.384,0.1536,us-east-1,use1-az1\n"
        "r6i.xlarge,,,4.0,32.0,,0.252,0.1008,us-east-1,use1-az1\n")  # a managed-jobs controller: cpus 4+, mem 8x
    (root / "aws" / "images.csv").write_text(
        "Tag,Region,OS,OSVersion,ImageId,CreationDate\n"
        f"skypilot:custom-gpu-ubuntu,us-east-1,ubuntu,22.04,{ami},20250101\n"
        f"skypilot:custom-cpu-ubuntu,us-east-1,ubuntu,22.04,{ami},20250101\n")
    (root / "aws" / "instance_quota_mapping.csv").write_text(
        "InstanceType,OnDemandInstanceCode,SpotInstanceCode\ng4dn.xlarge,L-DB2E81BA,L-3819A6DF\n")


def write_az_mappings(home: Path, aws) -> None:
    """The file SkyPilot's AWS catalog (aws_catalog._get_az_mappings) fetches when it lacks it, for the one region
    the catalog has: named by the first 8 hex digits of the MD5 of the caller's STS UserId (its user hash)."""
    import hashlib

    user = aws("sts").get_caller_identity()["UserId"]
    zones = aws("ec2").describe_availability_zones()["AvailabilityZones"]  # us-east-1's, moto's zone IDs
    name = f"az_mappings-{hashlib.md5(user.encode()).hexdigest()[:8]}.csv"
    (home / ".sky" / "catalogs" / CATALOG_VERSION / "aws" / name).write_text(
        "AvailabilityZone,AvailabilityZoneName\n" + "".join(f"{z['ZoneId']},{z['ZoneName']}\n" for z in zones))


def no_route_ssh(folder: Path) -> Path:
    """A folder with an `ssh` that fails as SSH to a moto instance does (there is no machine behind it: exit
    255), at once: SkyPilot's `sky down` first runs `ray stop` on the head node over SSH, and waited out its
    30-s ConnectTimeout there, the longest wait of both Ctrl-C tests."""
    folder.mkdir()
    ssh = folder / "ssh"
    ssh.write_text("#!/bin/sh\necho 'ssh: connect to host port 22: No route to host (a moto instance)' >&2\nexit 255\n")
    ssh.chmod(0o755)
    return folder


def prepare_account(aws) -> str:
    """The account state SkyPilot expects of AWS (see the module's note); returns the GPU image's id."""
    ec2, iam = aws("ec2"), aws("iam")
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"])
    if not ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        (main,) = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                     {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
        ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    if not iam.list_instance_profiles()["InstanceProfiles"]:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                         "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName="skypilot-v1", AssumeRolePolicyDocument=json.dumps(trust))
        iam.create_instance_profile(InstanceProfileName="skypilot-v1")
        iam.add_role_to_instance_profile(InstanceProfileName="skypilot-v1", RoleName="skypilot-v1")
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Deep Learning AMI Ubuntu*"]}])["Images"]
    return images[0]["ImageId"]


class SkyClient:
    """SkyPilot client code run against the server, in one client process for the module (a process of its
    own: the client keeps its state under the HOME it imported with; one process: its imports cost seconds):
    each call evaluates a Python expression there (`sky` imported) and returns its value through JSON."""

    REPLY = "platbench-test-reply: "  # a reply's line; any other line on stdout is the SDK's own
    LOOP = ("import json, sys, traceback\nimport sky\n"
            "for line in sys.stdin:\n"
            "    try:\n"
            "        reply = {'value': eval(json.loads(line))}\n"
            "    except Exception:\n"
            "        reply = {'error': traceback.format_exc()[-3000:]}\n"
            f"    print({REPLY!r} + json.dumps(reply, default=str), flush=True)\n")

    def __init__(self, env: dict, log: Path):
        self.log_path, self.log = log, log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", self.LOOP], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the process ended

    def __call__(self, code: str, timeout: float = 120) -> object:
        self.proc.stdin.write(json.dumps(code) + "\n")
        self.proc.stdin.flush()
        deadline = time.time() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.time()))
            assert line is not None, self.log_path.read_text()[-3000:]
            if line.startswith(self.REPLY):
                reply = json.loads(line[len(self.REPLY):])
                assert "error" not in reply, reply.get("error")
                return reply["value"]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Sky:
    """The server's environment (what a client process needs too), the recording proxy in front of moto, the
    module's SkyPilot client, and boto3 clients on moto for the test's own look."""

    def __init__(self, env: dict, proxy: Proxy, client: Optional[SkyClient]):
        self.env, self.proxy, self.client = env, proxy, client

    def aws(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.proxy.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def sky_server(moto_server, tmp_path_factory):
    """SkyPilot's API server on a free loopback port, HOME and AWS endpoint shared with the client (as with
    the local server SkyPilot starts itself), for the module's tests."""
    root = tmp_path_factory.mktemp("sky")
    home = root / "home"
    proxy = Proxy(moto_server)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SKYPILOT_", "MLFLOW_", "GOOGLE_", "CLOUDSDK_", "AWS_"))}
    env.update(HOME=str(home), PATH=os.pathsep.join([str(no_route_ssh(root / "bin")), str(SERVER_PY.parent),
                                                     env.get("PATH", "")]),
               AWS_ENDPOINT_URL=proxy.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_SHARED_CREDENTIALS_FILE=str(root / "no-credentials"),
               AWS_CONFIG_FILE=str(root / "no-config"),
               SKYPILOT_DISABLE_USAGE_COLLECTION="1", SKYPILOT_API_SERVER_ENDPOINT=f"http://127.0.0.1:{port}")
    sky = Sky(env, proxy, None)
    write_catalog(home, prepare_account(sky.aws))
    write_az_mappings(home, sky.aws)
    # the client's imports while the server starts; after the catalog, whose folders importing sky makes
    sky.client = SkyClient(env, root / "sky-client.log")
    log_path = root / "sky-server.log"
    log = log_path.open("w")
    server = subprocess.Popen([str(SERVER_PY), "-m", "sky.server.server", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)

    def healthy():
        assert server.poll() is None, log_path.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                return json.load(r).get("status") == "healthy"
        except OSError:
            return False

    try:
        wait_for(healthy, 90, "SkyPilot's API server")
        # `sky check` first, as SkyPilot's setup asks: the managed-job launch needs the cloud's storage enabled
        assert sky.client("sorted(sky.check.check(clouds=('aws',), verbose=False))") == ["AWS"]
        yield sky
    finally:  # the server forks request workers: its whole process group goes
        sky.client.close()
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:  # what ignores SIGTERM (multiprocessing's resource tracker) or outlived the grace period
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(10)
        log.close()
        proxy.close()


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory) -> Path:
    """An empty MLflow store with its schema made (seconds of migrations, once per module)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def launch_env(sky: Sky, store: Path, tmp_path: Path) -> dict:
    """The server's environment and a fresh MLflow store of the test's own (a copy of the migrated one)."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(store, db)
    return {**sky.env, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}


def instances(sky: Sky, name_prefix: str) -> list[dict]:
    return [i for r in sky.aws("ec2").describe_instances()["Reservations"] for i in r["Instances"]
            if any(t["Key"] == "skypilot-cluster-name" and t["Value"].startswith(name_prefix) for t in i.get("Tags", []))]


def ec2_actions(proxy) -> list[str]:
    from urllib.parse import parse_qs

    return [parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
            for method, _path, _headers, body in proxy.requests if method == "POST" and b"Action=" in body]


def launch_args(digits_data, bucket: str, run_name: str, accelerators: str = "T4:1") -> list[str]:
    sets = {"cloud": "aws", "accelerators": accelerators, "image": IMAGE, "bucket": f"s3://{bucket}",
            "run_name": run_name}
    return [sys.executable, "-m", "platforms", "launch", "skypilot", "--data", str(digits_data),
            *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]



def interrupt_once_running(sky, args, cwd, env, err: Path, prefix: str, timeout: float, what: str):
    """Start `platbench launch …`, Ctrl-C it once one instance named `prefix…` runs in moto; (that instance,
    the exit status, the launch's stderr). `timeout` is a bound, not a measure: at load 35 on two cores the
    launch's imports and optimize alone took over 150 s."""
    with err.open("w") as stderr:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            def running():
                assert proc.poll() is None, err.read_text()[-3000:]
                return [i for i in instances(sky, prefix) if i["State"]["Name"] == "running"]

            (instance,) = wait_for(running, timeout, what, interval=1)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
    return instance, proc.returncode, err.read_text()

def test_ctrl_c_while_provisioning_terminates_the_instance(sky_server, migrated_store, digits_data, tmp_path):
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    work = tmp_path / "work"
    work.mkdir()
    env = launch_env(sky, migrated_store, tmp_path)
    instance, returncode, log = interrupt_once_running(
        sky, launch_args(digits_data, bucket, "pb-ctrlc"), work, env, tmp_path / "launch.log", "pb-ctrlc", 300,
        "the instance SkyPilot launches")
    assert returncode != 0 and "Traceback" not in log, log[-3000:]
    assert "platbench: tore down SkyPilot pb-ctrlc" in log, log[-3000:]
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs([e.experiment_id for e in mlflow.search_experiments()])
    assert run.info.status == "KILLED" and run.data.tags["platbench.status"] == "killed"
    # the optimizer chose the catalog's instance for T4:1 in the catalog's region
    assert instance["InstanceType"] == "g4dn.xlarge" and instance["Placement"]["AvailabilityZone"].startswith("us-east-1")
    (after,) = instances(sky, "pb-ctrlc")
    assert after["State"]["Name"] == "terminated", after["State"]
    actions = ec2_actions(sky.proxy)
    assert "RunInstances" in actions and "TerminateInstances" in actions, actions
    # nothing is left on the server: no cluster, and the launch request is not left provisioning
    clusters, requests = sky.client("[sky.get(sky.status()), "
                                    "[(r.name, r.status, r.request_body) for r in sky.api_status(all_status=True)]]")
    assert clusters == []
    (launch,) = [(status, json.loads(body)) for name, status, body in requests if name == "sky.launch"]
    assert launch[0] == "CANCELLED", requests
    # the task the server received: the image, and the login SkyPilot pulls it with (an ECR token from moto)
    envs = next(doc["envs"] for doc in yaml.safe_load_all(launch[1]["task"]) if doc and "envs" in doc)
    assert envs["SKYPILOT_DOCKER_USERNAME"] == "AWS" and envs["SKYPILOT_DOCKER_PASSWORD"]
    assert envs["SKYPILOT_DOCKER_SERVER"] == IMAGE.split("/", 1)[0] and "GetAuthorizationToken" in str(sky.proxy.requests)
    # the data was staged before the launch, and stays for the next one (content-addressed shards)
    assert sky.aws("s3").list_objects_v2(Bucket=bucket, Prefix="platbench/shards/")["KeyCount"] > 0


def test_an_accelerator_the_catalog_lacks_is_refused_before_the_upload(sky_server, migrated_store, digits_data,
                                                                        tmp_path):
    """SkyPilot's optimizer on the server is asked before anything is staged: AWS offers A100 only eight to an
    instance (p4d.24xlarge), so A100:1 on AWS is refused by the real catalog as by this one. One line, exit 2,
    nothing uploaded, no instance."""
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    env = launch_env(sky, migrated_store, tmp_path)
    r = subprocess.run(launch_args(digits_data, bucket, "pb-no-gpu", accelerators="A100:1"), cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line, line
    assert line.startswith("platbench: error: skypilot: SkyPilot finds no A100:1 on aws: "), line
    assert sky.aws("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert instances(sky, "pb-no-gpu") == []


def test_ctrl_c_before_the_jobs_controller_is_up_names_the_controller(sky_server, migrated_store, digits_data,
                                                                       tmp_path):
    """use_spot=true is a managed job: SkyPilot first provisions its jobs controller (a CPU VM from the catalog,
    here r6i.xlarge), which never comes up here (no SSH). Ctrl-C then: the jobs.launch request is cancelled,
    there is no managed job to cancel, and the controller VM, SkyPilot's and shared by every managed job, is
    named with the command that removes it; that command, run by the test, terminates it."""
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    env = launch_env(sky, migrated_store, tmp_path)
    vm, returncode, log = interrupt_once_running(
        sky, launch_args(digits_data, bucket, "pb-spot") + ["--set", "use_spot=true"], tmp_path, env,
        tmp_path / "launch.log", "sky-jobs-controller-", 300, "SkyPilot's jobs controller VM")
    assert returncode != 0 and "Traceback" not in log, log[-3000:]
    assert vm["InstanceType"] == "r6i.xlarge"
    line = next((ln for ln in log.splitlines() if ln.startswith("platbench: no managed job pb-spot to cancel")), "")
    assert "SkyPilot's jobs controller sky-jobs-controller-" in line, log[-3000:]
    controller_name = line.split("`sky down ", 1)[1].split("`", 1)[0]
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs([e.experiment_id for e in mlflow.search_experiments()])
    assert run.info.status == "KILLED"
    assert [i["State"]["Name"] for i in instances(sky, "sky-jobs-controller-")] == ["running"]
    # the server's requests, then the command the line gives, which removes the controller VM
    requests, _ = sky.client("[[(r.name, r.status) for r in sky.api_status(all_status=True)], "
                             f"sky.get(sky.down({controller_name!r}))]")
    assert [status for name, status in requests if name == "sky.jobs.launch"] == ["CANCELLED"], requests
    assert [i["State"]["Name"] for i in instances(sky, "sky-jobs-controller-")] == ["terminated"]
