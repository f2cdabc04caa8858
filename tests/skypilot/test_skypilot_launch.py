"""`platbench launch skypilot` through SkyPilot's real API server, with AWS played by moto on loopback.

What runs for real: platbench's client (SkyPilot 0.9.2 in .venv) talks to SkyPilot 0.9.2's own API server
(`python -m sky.server.server`, from the side environment .venv-sky: scripts/skypilot-server-env, because
the server does not start with the lock's FastAPI); the server checks the AWS credentials (STS), runs its
optimizer over the catalog, and its AWS provisioner makes the real EC2/IAM calls (security group, subnets,
RunInstances, TerminateInstances) against moto, reached through boto3's AWS_ENDPOINT_URL.

Test fixtures, not SkyPilot's data (no internet here: SkyPilot downloads its catalogs from GitHub on first
use, and reads a catalog file it finds in ~/.sky/catalogs/<schema version>/ as "manually populated" instead):
- common/accelerators.csv (AcceleratorName, Clouds), aws/vms.csv (InstanceType, AcceleratorName,
  AcceleratorCount, vCPUs, MemoryGiB, GpuInfo, Price, SpotPrice, Region, AvailabilityZone — a zone ID),
  aws/images.csv (Tag, Region, OS, OSVersion, ImageId, CreationDate) and aws/instance_quota_mapping.csv
  (InstanceType, OnDemandInstanceCode, SpotInstanceCode), with one GPU row: g4dn.xlarge, T4:1, us-east-1,
  at AWS's on-demand list price; the image is the Deep Learning AMI in moto's own image list.
- the AWS account as AWS makes it and SkyPilot leaves it: the default VPC routed to an internet gateway
  (moto's has none; SkyPilot only uses public subnets), and SkyPilot's instance profile `skypilot-v1` already
  there (as after a first launch: moto refuses the role policy SkyPilot writes, which has no "Version").

What cannot run here: the instance moto creates has no machine behind it, so SkyPilot's wait for SSH (10
minutes, not configurable) never succeeds; nothing after it (the container, the file mounts, the trainer,
the log tail, collect, the cost) runs. The test presses Ctrl-C during that wait.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

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


class Sky:
    """The server's environment (what a client process needs too), the recording proxy in front of moto, and
    boto3 clients on moto for the test's own look."""

    def __init__(self, env: dict, proxy: Proxy):
        self.env, self.proxy = env, proxy

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
    env.update(HOME=str(home), PATH=f"{SERVER_PY.parent}{os.pathsep}{env.get('PATH', '')}",
               AWS_ENDPOINT_URL=proxy.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_SHARED_CREDENTIALS_FILE=str(root / "no-credentials"),
               AWS_CONFIG_FILE=str(root / "no-config"),
               SKYPILOT_DISABLE_USAGE_COLLECTION="1", SKYPILOT_API_SERVER_ENDPOINT=f"http://127.0.0.1:{port}")
    sky = Sky(env, proxy)
    write_catalog(home, prepare_account(sky.aws))
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
        yield sky
    finally:  # the server forks request workers: its whole process group goes
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


def sky_client(env: dict, code: str) -> object:
    """The result of SkyPilot client code run against the server (a separate process: the client keeps its
    state under the HOME it imported with)."""
    r = subprocess.run([sys.executable, "-c", f"import json, sky\nprint(json.dumps({code}, default=str))"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


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
    the exit status, the launch's stderr)."""
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

def test_ctrl_c_while_provisioning_terminates_the_instance(sky_server, digits_data, tmp_path):
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    work = tmp_path / "work"
    work.mkdir()
    env = {**sky.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    instance, returncode, log = interrupt_once_running(
        sky, launch_args(digits_data, bucket, "pb-ctrlc"), work, env, tmp_path / "launch.log", "pb-ctrlc", 150,
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
    assert sky_client(env, "sky.get(sky.status())") == []
    requests = sky_client(env, "[(r.name, r.status, r.request_body) for r in sky.api_status(all_status=True)]")
    (launch,) = [(status, json.loads(body)) for name, status, body in requests if name == "sky.launch"]
    assert launch[0] == "CANCELLED", requests
    # the task the server received: the image, and the login SkyPilot pulls it with (an ECR token from moto)
    envs = next(doc["envs"] for doc in yaml.safe_load_all(launch[1]["task"]) if doc and "envs" in doc)
    assert envs["SKYPILOT_DOCKER_USERNAME"] == "AWS" and envs["SKYPILOT_DOCKER_PASSWORD"]
    assert envs["SKYPILOT_DOCKER_SERVER"] == IMAGE.split("/", 1)[0] and "GetAuthorizationToken" in str(sky.proxy.requests)
    # the data was staged before the launch, and stays for the next one (content-addressed shards)
    assert sky.aws("s3").list_objects_v2(Bucket=bucket, Prefix="platbench/shards/")["KeyCount"] > 0


def test_an_accelerator_the_catalog_lacks_is_refused_before_the_upload(sky_server, digits_data, tmp_path):
    """SkyPilot's optimizer on the server is asked before anything is staged: AWS offers A100 only eight to an
    instance (p4d.24xlarge), so A100:1 on AWS is refused by the real catalog as by this one. One line, exit 2,
    nothing uploaded, no instance."""
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    env = {**sky.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    r = subprocess.run(launch_args(digits_data, bucket, "pb-no-gpu", accelerators="A100:1"), cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line, line
    assert line.startswith("platbench: error: skypilot: SkyPilot finds no A100:1 on aws: "), line
    assert sky.aws("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert instances(sky, "pb-no-gpu") == []


def test_ctrl_c_before_the_jobs_controller_is_up_names_the_controller(sky_server, digits_data, tmp_path):
    """use_spot=true is a managed job: SkyPilot first provisions its jobs controller (a CPU VM from the catalog,
    here r6i.xlarge), which never comes up here (no SSH). Ctrl-C then: the jobs.launch request is cancelled,
    there is no managed job to cancel, and the controller VM, SkyPilot's and shared by every managed job, is
    named with the command that removes it; that command, run by the test, terminates it."""
    sky = sky_server
    bucket = new_bucket_name()
    sky.aws("s3").create_bucket(Bucket=bucket)
    env = {**sky.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    # `sky check` first, as SkyPilot's setup asks: the managed-job launch needs the cloud's storage enabled
    assert sky_client(env, "sorted(sky.check.check(clouds=('aws',), verbose=False))") == ["AWS"]
    vm, returncode, log = interrupt_once_running(
        sky, launch_args(digits_data, bucket, "pb-spot") + ["--set", "use_spot=true"], tmp_path, env,
        tmp_path / "launch.log", "sky-jobs-controller-", 200, "SkyPilot's jobs controller VM")
    assert returncode != 0 and "Traceback" not in log, log[-3000:]
    assert vm["InstanceType"] == "r6i.xlarge"
    line = next((ln for ln in log.splitlines() if ln.startswith("platbench: no managed job pb-spot to cancel")), "")
    assert "SkyPilot's jobs controller sky-jobs-controller-" in line, log[-3000:]
    controller_name = line.split("`sky down ", 1)[1].split("`", 1)[0]
    requests = sky_client(env, "[(r.name, r.status) for r in sky.api_status(all_status=True)]")
    assert [status for name, status in requests if name == "sky.jobs.launch"] == ["CANCELLED"], requests
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs([e.experiment_id for e in mlflow.search_experiments()])
    assert run.info.status == "KILLED"
    # the command the line gives removes the controller VM
    assert [i["State"]["Name"] for i in instances(sky, "sky-jobs-controller-")] == ["running"]
    sky_client(env, f"sky.get(sky.down({controller_name!r}))")
    assert [i["State"]["Name"] for i in instances(sky, "sky-jobs-controller-")] == ["terminated"]
