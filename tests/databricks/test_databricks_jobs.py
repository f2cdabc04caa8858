"""The loopback workspace's job side (job_cluster.py) against what Databricks documents, with small tasks
instead of the trainer: the parameters as the Python file's arguments, the wheel from the volume installed in the
cluster's environment (python_wheel_task's entry point), /Volumes as the cluster sees it, spark_env_vars and
DATABRICKS_RUNTIME_VERSION and nothing of the test's environment, the failure reason in runs/get-output, a
library that fails to install, a timeout; every runs/get and get-output answer is one the SDK's dataclasses
accept."""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from databricks_server import DatabricksServer
from job_cluster import mount_namespace_problem

pytestmark = pytest.mark.xdist_group("databricks-jobs")

VOLUME = "main.jobs.files"
ROOT = "/Volumes/main/jobs/files"
CLUSTER = {"spark_version": "15.4.x-gpu-ml-scala2.12", "node_type_id": "g4dn.xlarge", "num_workers": 0,
           "spark_env_vars": {"PLATBENCH_PLATFORM": "databricks", "FROM_SPEC": "yes"}}
PROBE = f"""import json, os, sys
os.makedirs("{ROOT}/probe", exist_ok=True)
with open("{ROOT}/probe/" + sys.argv[1] + ".json", "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "volumes": sorted(
        os.path.relpath(os.path.join(d, n), "/Volumes") for d, ds, _ in os.walk("/Volumes") for n in ds
        if d.count("/") < 4), "hello": __import__("importlib.util").util.find_spec("hello_dbx") is not None}}, f)
if sys.argv[2:] == ["fail"]:
    raise ValueError("the probe was told to fail")
if sys.argv[2:] == ["append"]:
    open("{ROOT}/probe/append.log", "a").write("a line")
if sys.argv[2:] == ["sleep"]:
    __import__("time").sleep(600)
"""
HELLO = f"""import json, sys
def main():
    with open("{ROOT}/probe/" + ("named" if "=" in sys.argv[-1] else "wheel") + ".json", "w") as f:
        json.dump({{"argv": sys.argv}}, f)
"""


def tiny_wheel() -> bytes:
    """A pure-Python wheel with one console_scripts entry point (PEP 427 layout)."""
    files = {"hello_dbx/__init__.py": HELLO,
             "hello_dbx-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hello-dbx\nVersion: 1.0\n",
             "hello_dbx-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: platbench-tests\nRoot-Is-Purelib: true\n"
                                              "Tag: py3-none-any\n",
             "hello_dbx-1.0.dist-info/entry_points.txt": "[console_scripts]\nhello-dbx = hello_dbx:main\n"}
    files["hello_dbx-1.0.dist-info/RECORD"] = "".join(f"{k},,\n" for k in files) + "hello_dbx-1.0.dist-info/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    problem = mount_namespace_problem()
    if problem:
        pytest.skip(f"the loopback job cluster mounts /Volumes in a private namespace: {problem}")
    s = DatabricksServer(tmp_path_factory.mktemp("dbx-ws"))
    s.create_volume(VOLUME)
    s.create_volume("main.jobs.other")
    s.files[f"{ROOT}/probe.py"] = PROBE.encode()
    s.files[f"{ROOT}/wheels/hello_dbx-1.0-py3-none-any.whl"] = tiny_wheel()
    yield s
    s.close()


@pytest.fixture(scope="module")
def finished(server):
    """Every run of this module, submitted together (they run side by side) and waited for."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import SubmitTask

    w = WorkspaceClient(host=server.url, token=server.token)
    wheel = {"whl": f"{ROOT}/wheels/hello_dbx-1.0-py3-none-any.whl"}
    tasks = {
        "ok": ({"libraries": [wheel], "spark_python_task": {"python_file": f"{ROOT}/probe.py",
                                                            "parameters": ["ok", "--data", f"{ROOT}/x y"]}}, 0),
        "fail": ({"spark_python_task": {"python_file": f"{ROOT}/probe.py", "parameters": ["fail", "fail"]}}, 0),
        "append": ({"spark_python_task": {"python_file": f"{ROOT}/probe.py", "parameters": ["append", "append"]}},
                   0),
        "sleep": ({"spark_python_task": {"python_file": f"{ROOT}/probe.py", "parameters": ["sleep", "sleep"]}}, 1),
        "nolib": ({"libraries": [{"whl": f"{ROOT}/wheels/missing-1.0-py3-none-any.whl"}],
                   "spark_python_task": {"python_file": f"{ROOT}/probe.py", "parameters": ["nolib"]}}, 0),
        "wheel": ({"libraries": [wheel], "python_wheel_task": {"package_name": "hello_dbx", "entry_point": "hello-dbx",
                                                               "parameters": ["--epochs", "1"]}}, 0),
        "named": ({"libraries": [wheel], "python_wheel_task": {"package_name": "hello_dbx", "entry_point": "hello-dbx",
                                                               "named_parameters": {"epochs": "1"}}}, 0),
    }
    waiters = {k: w.jobs.submit(run_name=k, timeout_seconds=timeout, tasks=[SubmitTask.from_dict(
        {"task_key": k, "new_cluster": CLUSTER, **task})]) for k, (task, timeout) in tasks.items()}
    runs = {k: until_ended(w, waiter.run_id) for k, waiter in waiters.items()}
    return {k: (run, w.jobs.get_run_output(run.tasks[0].run_id)) for k, run in runs.items()}


def until_ended(w, run_id: int):
    """runs/get until the run is TERMINATED or INTERNAL_ERROR (the SDK's own waiter raises on the latter)."""
    while True:
        run = w.jobs.get_run(run_id)
        if run.state.life_cycle_state.value in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED"):
            return run
        time.sleep(0.2)


def probe(server, name: str) -> dict:
    return json.loads(server.files[f"{ROOT}/probe/{name}.json"])


def test_the_task_runs_with_its_parameters_and_the_documented_environment(server, finished):
    run, out = finished["ok"]
    assert (run.state.life_cycle_state.value, run.state.result_state.value) == ("TERMINATED", "SUCCESS")
    seen = probe(server, "ok")  # written by the task to /Volumes, read back through the Files API
    assert seen["argv"] == ["ok", "--data", f"{ROOT}/x y"]  # the parameters as they are, one argument each
    env = seen["env"]
    assert env["DATABRICKS_RUNTIME_VERSION"] == "15.4" and env["FROM_SPEC"] == "yes"
    assert env["PLATBENCH_PLATFORM"] == "databricks"
    # nothing of the test process: no credentials, no pytest, no platbench settings the spec did not pass
    assert not [k for k in env if k.startswith(("DATABRICKS_HOST", "DATABRICKS_TOKEN", "PYTEST", "MLFLOW"))]
    assert seen["volumes"] == ["main", "main/jobs", "main/jobs/files", "main/jobs/other"]  # this workspace's only
    assert seen["hello"]  # the library is installed in the cluster's environment
    (task,) = run.tasks  # a runs/submit with tasks[] is multitask: the durations are the task's
    assert task.setup_duration > 0 and task.execution_duration > 0


def test_a_multitask_run_reports_its_durations_on_its_tasks_only(finished):
    """Run.setup/execution/cleanup_duration: "set to 0 for multitask job runs. The total duration of a multitask
    job run is the value of the run_duration field" (databricks-sdk jobs.py; .../api/workspace/jobs/getrun)."""
    run, _ = finished["ok"]
    assert (run.setup_duration, run.execution_duration, run.cleanup_duration) == (0, 0, 0)
    task = run.tasks[0]
    assert task.setup_duration > 0 and task.execution_duration > 0
    assert run.run_duration >= task.setup_duration + task.execution_duration + task.cleanup_duration


def test_a_volume_takes_no_appends(server, finished):
    """The volume's FUSE mount refuses direct appends (docs.databricks.com/en/volumes/volume-files.html); a
    whole-file write is what it takes (the probe's own json)."""
    run, out = finished["append"]
    assert run.state.result_state.value == "FAILED"
    assert out.error.startswith("OSError: [Errno 95]") and "/probe/append.log" in out.error
    assert f"{ROOT}/probe/append.log" not in server.files and probe(server, "append")["argv"] == ["append", "append"]


def test_python_wheel_task_calls_the_entry_point_with_the_parameters(server, finished):
    run, _ = finished["wheel"]
    assert run.state.result_state.value == "SUCCESS", finished["wheel"][1].error
    assert probe(server, "wheel")["argv"][1:] == ["--epochs", "1"]
    run, _ = finished["named"]  # named_parameters: --key=value arguments
    assert run.state.result_state.value == "SUCCESS" and probe(server, "named")["argv"][1:] == ["--epochs=1"]


def test_a_failed_task_says_why_in_its_run_output_not_its_state(finished):
    run, out = finished["fail"]
    assert (run.state.life_cycle_state.value, run.state.result_state.value) == ("TERMINATED", "FAILED")
    assert "Workload failed, see run output for details" in run.state.state_message
    assert out.error == "ValueError: the probe was told to fail"
    assert "Traceback" in out.error_trace and "the probe was told to fail" in out.logs


def test_timeout_and_a_missing_library(finished):
    run, _ = finished["sleep"]
    assert run.state.result_state.value == "TIMEDOUT" and run.state.user_cancelled_or_timedout
    run, out = finished["nolib"]
    assert (run.state.life_cycle_state.value, run.state.result_state.value) == ("INTERNAL_ERROR", "FAILED")
    assert run.state.state_message.startswith("Library installation failed for library")
    assert out.error.startswith("Library installation failed") and not out.logs


def test_answers_are_what_the_sdk_reads(server, finished):
    from databricks.sdk.service.jobs import Run, RunOutput
    from request_checks import dataclass_problems

    for name, (run, _) in finished.items():
        assert dataclass_problems(Run, server.get_run(run.run_id), "run") == [], name
        assert dataclass_problems(RunOutput, server.output(run.tasks[0].run_id), "output") == [], name
    with pytest.raises(Exception, match="multiple tasks is not supported"):
        server.output(finished["ok"][0].run_id)  # the parent run's id: get-output takes the task's


def test_the_job_side_imports_nothing_of_platbench():
    import ast

    tree = ast.parse((Path(__file__).parent / "job_cluster.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported and not [m for m in imported if m.split(".")[0] in ("platforms", "trainer")]
