"""Launcher conformance kit, the job API's transient faults (docs/design.md, "Testing without clouds"): for every
platform whose loopback job server takes faults (tests/_faults.py: a 503, throttling, a reset connection, each
as the service sends it), faults that pass are survived on each call the launcher makes (create, get, cancel:
the SDK's retry or the launcher's; the cancel call's: test_kit_ctrl_c.py), and faults that do not pass stop
the launch in one line, the job cancelled and nothing of it left running. Jobs run the stand-in trainer
(tests/stand_in)."""
from __future__ import annotations

import threading

import pytest
from conftest_clouds import aws, gcs, gcs_server, moto_server  # noqa: F401 (fixtures)
from launcher_rigs import kit_store  # noqa: F401 (fixture)
from launcher_rigs import TRANSIENT, census, open_rig, rigs, wait_for_census, wait_gone
from azureml_server import azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env  # noqa: F401 (fixtures)
from _apolo_server import apolo_stand_in  # noqa: F401 (fixture)
from dbx_workspace import job_cluster, workspace, workspace_server  # noqa: F401 (fixtures)
from sagemaker_fixtures import job_runner, sagemaker_server, sm_api  # noqa: F401 (fixtures)
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here
from vertex_fixtures import job_service  # noqa: F401 (fixture)

from platforms.core import launch, tracking
from platforms.core.api import Job
from platforms.core.progress import JobProgress

server = workspace_server("main.platbench.runs")  # the Databricks workspace (dbx_workspace.workspace's)

# Launchers the kit shows failing (a product bug, its fix named): strict, so the fix turns them green
BUGS: dict[tuple[str, str], str] = {}


def kit_rigs(test: str, where=lambda r: r.job_server != "") -> list:
    out = []
    for p in rigs(where):
        bug = BUGS.get((test, p.id))
        out.append(pytest.param(*p.values, id=p.id, marks=[pytest.mark.xfail(strict=True, reason=bug)] if bug else []))
    return out


@pytest.mark.parametrize("rig", kit_rigs("survived"))
def test_passing_faults_of_the_job_api_are_survived(rig, request, stand_in, tmp_path, monkeypatch, kit_store):
    """A 503, throttling and a reset connection while the launcher polls the job, and when it creates the job
    where creating is retried: retried, the job is followed to its end and collected as if nothing had
    happened. (One of each in a row: azure-core's default policy allows 3 status retries per call.)"""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    rig.runtime(ctx, ctx.env(stand_in))
    if rig.create_retried:
        rig.transient(ctx, "create", 1)
    rig.transient(ctx, "get", 1)
    out = tmp_path / "out"
    outcome, run_id = launch.launch(rig.name, Job(data=stand_in.data, out=out, epochs=2), rig.remote(ctx),
                                    JobProgress(enabled=False))
    assert outcome.status == "finished", outcome.message
    assert (out / "results.json").is_file()
    assert rig.faults_left(ctx) == 0, "a fault was never met: the launcher polled less than the faults need"
    assert tracking.client().get_run(run_id).info.status == "FINISHED"
    assert len(rig.jobs(ctx)) >= 1


@pytest.mark.parametrize("rig", kit_rigs("create", where=lambda r: r.job_server != "" and not r.create_retried))
@pytest.mark.parametrize("fault", TRANSIENT)
def test_a_fault_on_a_creation_not_retried_is_one_line_and_creates_nothing(rig, fault, request, stand_in, tmp_path,
                                                                          kit_store):
    """Where the job's creation is tried once (not idempotent, or no retry in the SDK): a transient fault on it is
    one error line and a non-zero exit, no job on the server, nothing running."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rig.runtime(ctx, ctx.env(stand_in))
    rig.fail(ctx, "create", fault, 1)
    args = [a for k, v in rig.remote(ctx).items() for a in ("--set", f"{k}={v}")]
    proc = platbench_here("launch", rig.name, "--data", str(stand_in.data), "--epochs", "2", *args, cwd=work)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("platbench: error")]) == 1, proc.stderr
    assert rig.faults_left(ctx) == 0 and rig.jobs(ctx) == []
    assert wait_gone(census(ctx.mark)) == []


@pytest.mark.parametrize("rig", kit_rigs("lasting", where=lambda r: r.job_server != "" and r.short_retries is not None))
def test_faults_that_do_not_pass_are_one_line_and_cancel_the_job(rig, request, stand_in, tmp_path, kit_store):
    """Once the job trains, the job API answers every poll with a 503: when the retries give up (bounded to
    seconds where the SDK has a knob for it), `platbench launch` says so in one error line (no traceback), exits
    non-zero, and the job is cancelled, none of its processes left."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rig.runtime(ctx, ctx.env(stand_in, epoch_seconds=0.5))
    settings = {**rig.remote(ctx), **rig.short_retries(ctx)}
    args = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    # from the job's first process on (the census sees it), in a thread: the launch runs in this one
    watcher = threading.Thread(target=lambda: (wait_for_census(ctx.mark), rig.fail(ctx, "get", "503", 10**6)),
                               daemon=True)
    watcher.start()
    proc = platbench_here("launch", rig.name, "--data", str(stand_in.data), "--epochs", "1000", *args, cwd=work,
                          env=rig.short_retries_env)
    watcher.join(5)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    # platbench's own lines: its news (the job started, cancelled) and one error (an SDK may add its own chatter)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("platbench: error")]
    assert len(errors) == 1 and "platbench: cancelled" in proc.stderr, proc.stderr
    rig.cancelled(ctx)
    assert wait_gone(census(ctx.mark)) == [], "a process of the job outlived the failed launch"
