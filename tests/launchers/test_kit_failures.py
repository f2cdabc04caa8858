"""Launcher conformance kit, refusals and failures (docs/design.md, "Testing without clouds"), for every
platform that runs our image: a refusal is one line, exit 2, before anything is created (no run folder, no
MLflow store, nothing on the platform's servers); a job that fails fails the run with its reason and nothing
is collected; an error in the launcher while the job runs cancels the job and fails the run; a step the
servers refuse fails the run in one line (the job API's transient faults: test_kit_faults.py). Jobs run the
stand-in trainer (tests/stand_in) failing on demand."""
from __future__ import annotations

import re

import pytest
from conftest import assert_one_line_error
from conftest_clouds import aws, gcs, gcs_server, moto_server  # noqa: F401 (fixtures)
from launcher_rigs import kit_store  # noqa: F401 (fixture)
from launcher_rigs import NOT_IN_THE_KIT, RIGS, RaiseInTraining, census, newest_run, open_rig, rigs, wait_gone
from azureml_server import azure_ml  # noqa: F401 (fixture)
from azurite_server import azurite, blob_env  # noqa: F401 (fixtures)
from _apolo_server import apolo_stand_in  # noqa: F401 (fixture)
from dbx_workspace import job_cluster, workspace, workspace_server  # noqa: F401 (fixtures)
from sagemaker_fixtures import job_runner, sagemaker_server, sm_api  # noqa: F401 (fixtures)
from stand_in import stand_in  # noqa: F401 (fixture)
from stand_in.cli import platbench_here
from vertex_fixtures import job_service  # noqa: F401 (fixture)

from platforms.core import launch, registry, tracking
from platforms.core.api import Job, Kind
from platforms.core.progress import JobProgress

server = workspace_server("main.platbench.runs")  # the Databricks workspace (dbx_workspace.workspace's)


def test_every_platform_that_runs_our_image_is_in_the_kit_or_says_where_it_is_proven():
    specs = [registry.spec(n) for n in registry.names()]
    training = {s.name for s in specs if s.kind == Kind.TRAINING and not s.not_measurable}
    assert training == set(RIGS) | set(NOT_IN_THE_KIT)
    assert not set(RIGS) & set(NOT_IN_THE_KIT)


@pytest.mark.parametrize("rig", rigs(lambda r: True))
def test_a_refusal_is_one_line_before_anything_is_created(rig, request, stand_in, tmp_path):
    """Through the CLI (in this process: tests/stand_in/cli.py): a setting the platform's servers refuse."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = rig.cli_env(ctx)
    before = sorted(work.rglob("*"))
    settings = {**(rig.remote(ctx) if rig.remote else {}), **rig.refusal[0]}
    args = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    proc = platbench_here("launch", rig.name, "--data", str(stand_in.data), *args, cwd=work, env=env)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and rig.refusal[1] in proc.stderr, proc.stderr
    assert sorted(work.rglob("*")) == before, "a refused launch wrote files (MLflow store, run folder)"
    assert rig.jobs(ctx) == [] and rig.stored(ctx) == [], "a refused launch created something on the servers"


@pytest.mark.parametrize("rig", rigs(lambda r: r.cloud))
def test_a_failed_job_fails_the_run_with_its_reason(rig, request, stand_in, tmp_path, monkeypatch, kit_store):
    """The stand-in raises in its second epoch: the job fails on the server, the outcome says so with the
    server's reason, the MLflow run is FAILED, nothing is collected and nothing is left running."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    rig.runtime(ctx, ctx.env(stand_in, fail="exit", fail_after=1))
    out = tmp_path / "out"
    outcome, run_id = launch.launch(rig.name, Job(data=stand_in.data, out=out, epochs=3), rig.remote(ctx),
                                    JobProgress(enabled=False))
    assert outcome.status == "failed", outcome.message
    assert re.search(rig.failure_says, outcome.message), outcome.message
    r = tracking.client().get_run(run_id)
    assert r.info.status == "FAILED" and r.data.tags[tracking.Tag.STATUS] == "failed"
    assert not (out / "results.json").exists()
    assert rig.jobs(ctx), "no job reached the server"


@pytest.mark.parametrize("rig", rigs(lambda r: r.cloud))
def test_an_error_while_waiting_cancels_the_job_and_fails_the_run(rig, request, stand_in, tmp_path, monkeypatch,
                                                                  kit_store):
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    monkeypatch.chdir(tmp_path)
    rig.runtime(ctx, ctx.env(stand_in, epoch_seconds=0.5))
    progress = RaiseInTraining(ctx.mark, RuntimeError("display broke"))  # the launcher's own code fails
    with pytest.raises(RuntimeError, match="display broke"):
        launch.launch(rig.name, Job(data=stand_in.data, out=tmp_path / "out", epochs=1000), rig.remote(ctx), progress)
    rig.cancelled(ctx)
    assert progress.procs and wait_gone(progress.procs) == []
    r = newest_run()
    assert r.info.status == "FAILED" and r.data.tags[tracking.Tag.STATUS] == "failed"


STEPS = [pytest.param(r, step, id=f"{r.name}-{step}") for r in RIGS.values() for step in r.step_faults]


@pytest.mark.parametrize("rig, step", STEPS)
def test_a_step_the_servers_refuse_is_one_line_fails_the_run_and_starts_no_job(rig, step, request, stand_in,
                                                                              tmp_path, kit_store):
    """Staging refused by the object store (403: no client retries it), the job refused by the job API, or
    its outputs refused when collected, through the CLI: the launch stops there in one line and a non-zero
    exit, no traceback; its MLflow run FAILED (never left RUNNING), no job submitted after a failed staging, no
    process of a job left running."""
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rig.runtime(ctx, ctx.env(stand_in))
    rig.step_faults[step](ctx)
    args = [a for k, v in rig.remote(ctx).items() for a in ("--set", f"{k}={v}")]
    proc = platbench_here("launch", rig.name, "--data", str(stand_in.data), "--epochs", "1", *args, cwd=work)
    assert_one_line_error(proc)
    r = newest_run()
    assert r.info.status == "FAILED"
    assert not (rig.jobs(ctx) and step == "staging"), "a job was submitted after staging failed"
    assert wait_gone(census(ctx.mark)) == []


def test_platbench_traceback_lets_a_refused_step_through(request, stand_in, tmp_path):
    """PLATBENCH_TRACEBACK=1: the same refusal is raised with its traceback (what a bug report needs),
    not turned into one line."""
    rig, step = STEPS[0].values
    ctx = open_rig(rig, request, tmp_path, stand_in.data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rig.step_faults[step](ctx)
    args = [a for k, v in rig.remote(ctx).items() for a in ("--set", f"{k}={v}")]
    with pytest.raises(Exception) as caught:
        platbench_here("launch", rig.name, "--data", str(stand_in.data), "--epochs", "1", *args, cwd=work,
                       env={"PLATBENCH_TRACEBACK": "1"})
    assert not isinstance(caught.value, SystemExit)
