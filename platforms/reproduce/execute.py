"""Running a plan with platbench's own machinery: each model/lr group is a sweep (platforms/bench/sweep.py: its
cells are the ladder and seeds, resumable), each request plan a load test (platforms/bench/loadtest.py) of the
group's trained model where its platform serves it: on this machine by the trainer's server at each deployment
target (torch on CPU or CUDA, ONNX by onnxruntime), elsewhere on the platform's endpoint through its SDK (deployed
once per model, every plan run, torn down always). Every run is tagged with the study, each load run with its
plan and target, so the study page finds them and never pools two targets."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from platforms.reproduce.ledger import Ledger
from platforms.reproduce.plan import Group, Plan, Serving, request_count
from platforms.reproduce.protocol import ENDPOINT

STUDY_TAG = "platbench.study"
PLAN_TAG = "platbench.study_plan"          # a load run: the study's request plan it followed
TARGET_TAG = "platbench.study_target"      # a load run: where it was served (protocol TARGETS, or endpoint)
LR_TAG = "platbench.study_lr_factor"       # a training run: its lr as a multiple of the preset's
DIGITS = Path("runs") / "reproduce" / "data" / "digits"


def bundled_digits(folder: Path = DIGITS) -> Path:
    """The bundled digits in the trainer's folder layout, written once (the local small version's data)."""
    if not (folder / "test").is_dir():
        from trainer.data import prepare

        classes, splits = prepare.digits()
        prepare.write_folder(folder, classes, splits)
    return folder


def group_hp(group: Group) -> dict[str, str]:
    hp = dict(group.hp)
    if group.lr_factor is not None:
        from trainer.models import PRESETS

        hp["lr"] = f"{PRESETS[group.model].hyperparameters.lr * group.lr_factor:g}"
    return hp


def run(plan: Plan, console, ledger: Optional[Ledger] = None, say: Callable[[str], None] = print) -> int:
    """Every sweep of the plan, then its request plans; returns the worst exit code (0: all finished; 1 when one
    could not run or the budget stopped it, as `platbench sweep` when its budget stops a cell)."""
    from platforms.bench import sweep as sweep_mod

    ledger = ledger or Ledger()
    code = 0
    set_ = [f"{p}:{k}={v}" for p, pairs in plan.settings.items() for k, v in pairs.items()]
    for group in plan.groups:
        name = plan.sweep_name(group)
        if ledger.refuses(f"sweep {name}", say):
            return max(code, 1)
        say(f"reproduce {plan.proto.study}: sweep {name} ({group.label})")
        hp = [f"{k}={v}" for k, v in group_hp(group).items()]
        ladder = [",".join("all" if n is None else str(n) for n in plan.ladder)]
        since_ms = int(time.time() * 1000)
        c = sweep_mod.cli_main(plan.data, plan.platforms, [group.model], ladder, [",".join(map(str, plan.seeds))],
                               plan.epochs, None, hp, set_, [], name, None, False, False, console,
                               max_usd=ledger.left())
        tag_sweep(name, plan.proto.study, group.lr_factor)
        ledger.count_sweep(name, since_ms)
        code = max(code, c)
    for where in plan.serving():
        code = max(code, serve_and_load(plan, where, ledger, say))
    return code


def serve_and_load(plan: Plan, where: Serving, ledger: Optional[Ledger], say: Callable[[str], None]) -> int:
    """Every request plan against each group's trained model served at `where`; 1 when one could not run."""
    from platforms.bench.endpoint import BudgetStopped

    study = plan.proto.study
    why = where.skipped or (_no_cuda() if where.target == "torch-gpu" else None)
    if why:
        say(f"reproduce {study}: requests on {where.label} skipped: {why}")
        return 0
    code = 0
    for group in plan.groups:
        served = trained_run(plan, group, where.platform)
        if served is None:
            say(f"reproduce {study}: no finished {group.label} run on {where.platform} to serve; requests on "
                f"{where.label} skipped")
            code = 1
            continue
        if ledger is not None and ledger.refuses(f"serving {group.label} on {where.label}", say):
            return 1
        try:
            with deployed_model(plan, where, served, say, ledger) as (target, transport, _endpoint):
                for rp in plan.proto.requests:
                    run_id = load_plan(plan, rp, target, transport, where, group.model)
                    say(f"reproduce {study}: requests {rp.id} on {where.label} ({group.label}): MLflow run {run_id}")
        except BudgetStopped as stop:  # as `platbench sweep` whose budget stopped a cell: one line, exit 1
            say(f"reproduce {study}: requests on {where.label} ({group.label}) killed: {stop}")
            return 1
    return code


def _no_cuda() -> Optional[str]:
    """Why torch here cannot serve on CUDA (a driver without a CUDA build of torch, or no usable device)."""
    import torch

    return None if torch.cuda.is_available() else f"torch {torch.__version__} here has no usable CUDA device"


@contextlib.contextmanager
def deployed_model(plan: Plan, where: Serving, mlflow_run, say, ledger: Optional[Ledger] = None,
                   concurrency: Optional[int] = None):
    """(the load tool's Target, a transport factory (concurrency, timeout_s), the deployed Endpoint — None on this
    machine, where nothing is billed) of the run's model served at `where`, answering its health check: this
    machine's server at its target, or the platform's endpoint (deployed for `concurrency`, else the busiest
    request plan's; torn down on leaving, given what is left of the ledger's budget and its spend counted there).
    The request plans and aws-azure's pipeline both serve through it."""
    from platforms.bench.loadtest import make_transport, parse_target

    if where.target != ENDPOINT:
        with served_model(mlflow_run, where.target) as url:
            target = parse_target(url)
            factory = lambda c, t: make_transport(target, c, t)  # noqa: E731
            wait_ready(factory)
            yield target, factory, None
        return
    from platforms.bench.endpoint import BudgetStopped, deployed
    from platforms.core.load_runner import LoadSettings

    ledger = ledger or Ledger()
    # a deployment that caps concurrency is made for the busiest request plan
    busiest = LoadSettings(concurrency=concurrency or max(rp.concurrency for rp in plan.proto.requests))
    ep, stopped = None, False
    try:
        with _model_dir(mlflow_run) as model_dir, deployed(where.platform, model_dir, plan.endpoint_settings.get(
                where.platform, {}), say, load_plan=busiest, max_usd=ledger.left()) as ep:
            yield ep.target(), ep.transport, ep
    except BudgetStopped as stop:
        ep, stopped = stop.endpoint, True
        raise
    finally:
        ledger.count_endpoint(ep, stopped)


def wait_ready(factory, seconds: float = 120.0) -> None:
    """Until the server answers its health check (one line when it does not within `seconds`)."""
    import asyncio

    from platforms.errors import UserError

    async def ready() -> bool:
        transport = factory(1, 30.0)
        try:
            return await transport.ready(seconds)
        finally:
            await transport.close()

    if not asyncio.run(ready()):
        raise UserError(f"the trainer's server did not answer its health check within {seconds:g} s")


@contextlib.contextmanager
def _model_dir(mlflow_run) -> Iterator[Path]:
    """The run's model (model.pt + model.json) downloaded to a folder removed on leaving."""
    from platforms.core import tracking

    tmp = Path(tempfile.mkdtemp(prefix="platbench-reproduce-"))
    try:
        yield Path(tracking.client().download_artifacts(mlflow_run.info.run_id, "model", str(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _client():
    from platforms.core import tracking

    c = tracking.client()
    return c, tracking.experiment_id(c)


def tag_sweep(name: str, study: str, lr_factor: Optional[float]) -> None:
    """The study's tag on the sweep's parent and every cell's run."""
    from platforms.bench.sweep import search_all
    from platforms.core.tracking import Tag

    c, exp = _client()
    for r in search_all(c, exp, f"tags.`{Tag.SWEEP}` = '{name}'"):
        c.set_tag(r.info.run_id, STUDY_TAG, study)
        if lr_factor is not None:
            c.set_tag(r.info.run_id, LR_TAG, f"{lr_factor:g}")


def trained_run(plan: Plan, group: Group, platform: str):
    """The finished run to serve: the group's largest ladder step, first seed."""
    from platforms.bench.sweep import search_all
    from platforms.core.tracking import Tag

    c, exp = _client()
    runs = [r for r in search_all(c, exp, f"tags.`{Tag.SWEEP}` = '{plan.sweep_name(group)}' and "
                                           f"tags.`{Tag.PLATFORM}` = '{platform}' and tags.`{Tag.STATUS}` = 'finished'")
            if r.data.tags.get(Tag.KIND) is None]

    def images(r) -> float:  # every image ("all": no per_class) is the largest step
        pc = r.data.params.get("per_class")
        return float("inf") if pc in (None, "", "None") else int(pc)

    runs.sort(key=lambda r: (images(r), -int(r.data.params.get("seed") or 0)), reverse=True)
    return runs[0] if runs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the trainer server's options for each of this machine's deployment targets
SERVE_ARGS = {"torch-cpu": ["--device", "cpu"], "torch-gpu": ["--device", "cuda"],
              "onnx-cpu": ["--runtime", "onnx", "--device", "cpu"]}


@contextlib.contextmanager
def served_model(mlflow_run, target: str = "torch-cpu") -> Iterator[str]:
    """The run's model served by `python -m trainer serve` at `target` on a loopback port; stopped on leaving."""
    proc = log = None
    with _model_dir(mlflow_run) as model_dir:
        try:
            port = _free_port()
            log = (model_dir.parent / "serve.log").open("w")
            proc = subprocess.Popen([sys.executable, "-m", "trainer", "serve", "--model-dir", str(model_dir),
                                     "--host", "127.0.0.1", "--port", str(port), *SERVE_ARGS[target]],
                                    stdout=log, stderr=subprocess.STDOUT)
            yield f"http://127.0.0.1:{port}"
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if log is not None:
                log.close()


def load_plan(plan: Plan, rp, target, transport, where: Serving, model: str) -> str:
    """One request plan against the served model through `transport` (concurrency, timeout_s → Transport),
    recorded as `platbench load` records it, tagged with the study, the plan and the target."""
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.bench.loadtest import log_to_mlflow
    from platforms.core.load_report import build_report
    from platforms.core.load_runner import LoadSettings, check_settings, run_with

    s = LoadSettings(requests=request_count(plan, rp.requests), concurrency=rp.concurrency, warmup=rp.warmup,
                     retries=rp.retries, wait_ready_s=120.0, probe=True)
    check_settings(s)
    test = plan.data / "test"
    payloads = make_payloads(load_images([test] if test.is_dir() else []), "image", 1)
    data = run_with(lambda: transport(s.concurrency, s.timeout_s), payloads, s)
    report = build_report(target, data, s, payloads, "image", model)
    run_id = log_to_mlflow(report, where.platform, f"load-{where.platform}-{plan.proto.study}-{rp.id}-{where.target}")
    c, _ = _client()
    c.set_tag(run_id, STUDY_TAG, plan.proto.study)
    c.set_tag(run_id, PLAN_TAG, rp.id)
    c.set_tag(run_id, TARGET_TAG, where.target)
    return run_id


