"""The loopback workspace refuses malformed requests as Databricks does (400 INVALID_PARAMETER_VALUE, which
databricks-sdk raises as InvalidParameterValue), from the SDK's own annotations: wrong scalar types, enum values
the API lacks, missing required fields and unknown fields, in runs/submit, the Files API and serving-endpoints
create bodies and in query strings. Several of these bodies survive the SDK's from_dict → as_dict round trip
unchanged, which is what the server checked before (issue 29)."""
from __future__ import annotations

import copy
import re

import pytest
from dbx_workspace import workspace_server

VOLUME = "main.platbench.checks"
GOOD_TASK = {"task_key": "train",
             "new_cluster": {"spark_version": "16.4.x-gpu-ml-scala2.12", "node_type_id": "g4dn.xlarge",
                             "num_workers": 0, "data_security_mode": "SINGLE_USER", "spark_env_vars": {"A": "b"}},
             "libraries": [{"whl": "/Volumes/main/platbench/checks/x.whl"}],
             "spark_python_task": {"python_file": "/Volumes/main/platbench/checks/x.py", "parameters": ["train"]}}


server = workspace_server(VOLUME)


@pytest.fixture(scope="module")
def client(server):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=server.url, token=server.token)


def with_change(path: tuple, value) -> dict:
    """GOOD_TASK with the value at `path` replaced (value DELETE: the key removed)."""
    task = copy.deepcopy(GOOD_TASK)
    *parents, last = path
    node = task
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return task


DELETE = object()


@pytest.mark.parametrize("path, value, message, round_trip_keeps_it", [
    (("new_cluster", "num_workers"), "zero", "tasks[0].new_cluster.num_workers: 'zero' is not an integer", True),
    (("new_cluster", "spark_env_vars"), {"A": 1}, "tasks[0].new_cluster.spark_env_vars.A: 1 is not a string", True),
    (("spark_python_task", "parameters"), ["--epochs", 2], "spark_python_task.parameters[1]: 2 is not a string",
     True),
    (("task_key",), DELETE, "tasks[0].task_key: required", True),
    (("spark_python_task", "python_file"), DELETE, "tasks[0].spark_python_task.python_file: required", True),
    (("new_cluster", "data_security_mode"), "SINGLE_USERS",
     "tasks[0].new_cluster.data_security_mode: 'SINGLE_USERS' is not one of", False),
    (("new_cluster", "gpu_count"), 1, "tasks[0].new_cluster.gpu_count: not a field the API knows", False),
])
def test_runs_submit_refuses_a_malformed_task(server, client, path, value, message, round_trip_keeps_it):
    from databricks.sdk.errors import InvalidParameterValue
    from databricks.sdk.service.jobs import SubmitTask

    task = with_change(path, value)
    # the round trip the server relied on before keeps these bodies as they are: it could not refuse them
    assert (SubmitTask.from_dict(task).as_dict() == task) is round_trip_keeps_it
    runs = dict(server.runs)
    with pytest.raises(InvalidParameterValue, match=re.escape(message)):
        client.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"run_name": "bad", "tasks": [task]})
    assert server.runs == runs  # nothing started


def test_runs_submit_refuses_top_level_scalars_of_the_wrong_type(server, client):
    from databricks.sdk.errors import InvalidParameterValue

    runs = dict(server.runs)
    for body, message in [({"timeout_seconds": "an hour"}, "timeout_seconds: 'an hour' is not an integer"),
                          ({"run_name": 7}, "run_name: 7 is not a string"),
                          ({"tasks": {"task_key": "train"}}, "tasks: {'task_key': 'train'} is not an array")]:
        with pytest.raises(InvalidParameterValue, match=re.escape(message)):
            client.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"tasks": [GOOD_TASK], **body})
    assert server.runs == runs
    # proto3's JSON reads an int64 from a decimal string too, so that one is not refused: the body gets to the
    # next check (the wheel it names does not exist in the volume, which only the run itself finds out)
    assert client.api_client.do("POST", "/api/2.2/jobs/runs/submit",
                                body={"timeout_seconds": "60", "tasks": [GOOD_TASK]})["run_id"] in server.runs


def test_a_wheel_task_takes_parameters_or_named_parameters_not_both(server, client):
    from databricks.sdk.errors import InvalidParameterValue

    task = {**{k: v for k, v in GOOD_TASK.items() if k != "spark_python_task"},
            "python_wheel_task": {"package_name": "p", "entry_point": "e", "parameters": ["--a=1"],
                                  "named_parameters": {"a": "1"}}}
    with pytest.raises(InvalidParameterValue, match="parameters and named_parameters cannot both be set"):
        client.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"tasks": [task]})


def test_query_strings_and_other_bodies_are_checked_too(server, client):
    from databricks.sdk.errors import InvalidParameterValue

    cases = [
        ("GET", "/api/2.2/jobs/runs/get", {"run_id": "latest"}, None, "run_id: 'latest' is not an integer"),
        ("GET", "/api/2.2/jobs/runs/get", {}, None, "run_id: required"),
        ("POST", "/api/2.2/jobs/runs/cancel", None, {"run_id": "one"}, "run_id: 'one' is not an integer"),
        ("POST", "/api/2.1/clusters/events", None, {"cluster_id": "c", "order": "SIDEWAYS"},
         "order: 'SIDEWAYS' is not one of"),
        ("PUT", "/api/2.0/fs/files/Volumes/main/platbench/checks/a.txt", {"overwrite": "maybe"}, None,
         "overwrite: 'maybe' is not a boolean"),
        ("GET", "/api/2.0/fs/directories/Volumes/main/platbench/checks", {"page_size": "ten"}, None,
         "page_size: 'ten' is not an integer"),
        ("POST", "/api/2.0/serving-endpoints", None,
         {"name": "e", "config": {"served_entities": [{"entity_name": "m.s.x", "scale_to_zero_enabled": "yes"}]}},
         "config.served_entities[0].scale_to_zero_enabled: 'yes' is not a boolean"),
        ("POST", "/api/2.0/serving-endpoints", None, {"config": {"served_entities": []}}, "name: required"),
    ]
    for method, path, query, body, message in cases:
        with pytest.raises(InvalidParameterValue, match=re.escape(message)):
            client.api_client.do(method, path, query=query, body=body)
    assert "a.txt" not in str(list(server.files)) and server.endpoints == {}


def test_a_request_without_the_token_is_refused(server):
    from databricks.sdk import WorkspaceClient

    with pytest.raises(Exception, match="Invalid access token"):
        WorkspaceClient(host=server.url, token="dapi-wrong").volumes.read(VOLUME)
