"""`platbench sweep`: a matrix of launches (platforms × model presets × images per class × seeds) with
bounded concurrency, recorded as one MLflow parent run per sweep with every launch nested under it.

Every cell of the matrix runs through the same `platforms.core.launch.launch()` as `platbench launch`, in a
worker process of its own (`python -m platforms.bench.sweep worker CELL_DIR`) started in a new session, so:

- the coordinator (this process) only schedules and watches: at most `--concurrency` jobs at once, and
  at most one at a time on this machine unless told otherwise (`local`, and cloud launchers in local
  mode, `--set P:local=true`, share it: one device, and two runs on it would distort each other's timings);
- Ctrl-C (or SIGTERM) on the coordinator is passed on to the running workers, which checkpoint (local
  trainer) or stop their cloud job (launch's teardown), and are marked KILLED/preempted in MLflow;
- if the coordinator itself dies (terminal closed, SIGKILL), its workers keep running; started again
  with the same arguments, the sweep finds its parent run by name, skips cells whose run FINISHED,
  re-attaches to the workers still running (pid recorded in CELL_DIR/worker.json, checked against
  /proc) and to runs still RUNNING on another host, and launches the rest. A cell whose earlier try
  failed, was killed or lost its process is launched again with the same checkpoint folder, so a
  local run resumes from its last epoch.

A sweep's name defaults to a hash of its definition (data folder, matrix, epochs, hyperparameters,
settings), so the same command resumes the same sweep; `--name` picks one (and may then grow the matrix
of an existing sweep, as long as data, epochs, hyperparameters and settings are the same).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from platforms.errors import UserError
from platforms.core.api import Kind
from platforms.core import cost_plan
# a cell folder's files (worker.json, worker-job.json, worker-result.json, launch.log): named beside the
# executors that run the workers
from platforms.bench.executors import JOB_FILE, LOG_FILE, RESULT_FILE, WORKER_FILE, ProcessExecutor, make
from platforms.core.tracking import process_alive

DEFAULT_PER_CLASS: tuple[Optional[int], ...] = (5, 20, 80, 320, 1280)


def default_seeds(platforms: int, alpha: float = 0.05) -> list[int]:
    """As many seeds as the report's tests need to be able to call a difference between `platforms`
    platforms at all (at least two are assumed: a sweep is compared with others), one run per seed:
    fewer runs could never show one, whatever the data (platforms/core/stats.py, min_runs_per_group)."""
    from platforms.core.stats import min_runs_per_group

    return list(range(min_runs_per_group(max(2, platforms), alpha)))
DEFAULT_CONCURRENCY = 4
KIND = "sweep"
SPEC_TAG = "platbench.sweep_spec"
SESSIONS_TAG = "platbench.sweep_sessions"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
POLL_SECONDS = 0.5


# ---------------------------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Cell:
    platform: str
    model: str
    per_class: Optional[int]  # None: every training image
    seed: int

    @property
    def key(self) -> str:
        return f"{self.platform}/{self.model}/pc{self.per_class if self.per_class is not None else 'all'}/seed{self.seed}"

    @property
    def dirname(self) -> str:
        return self.key.replace("/", "-")


@dataclass
class SweepSpec:
    data: str                                   # absolute path of the dataset folder
    platforms: list[str]
    models: list[str]
    per_class: list[Optional[int]]
    seeds: list[int]
    epochs: Optional[int] = None
    target_accuracy: Optional[float] = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, dict[str, str]] = field(default_factory=dict)  # platform → --set pairs

    def cells(self) -> list[Cell]:
        """Cheap cells first (fewest images per class), platforms interleaved, so that early results
        cover every platform and a slow cloud queue starts early."""
        per_class = sorted(self.per_class, key=lambda n: (n is None, n or 0))
        return [Cell(p, m, n, s) for n in per_class for s in self.seeds for m in self.models for p in self.platforms]

    def fixed(self) -> dict:
        """What every cell shares; a sweep name may not be reused with a different one."""
        return {"data": self.data, "epochs": self.epochs, "target_accuracy": self.target_accuracy,
                "hyperparameters": dict(sorted(self.hyperparameters.items())),
                "settings": {p: dict(sorted(s.items())) for p, s in sorted(self.settings.items())}}

    def default_name(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"sweep-{digest[:10]}"

    def describe(self) -> str:
        pcs = ", ".join("all" if n is None else str(n) for n in self.per_class)
        return (f"{len(self.platforms)} platform(s) [{', '.join(self.platforms)}] × {len(self.models)} model(s) "
                f"[{', '.join(self.models)}] × {len(self.per_class)} images/class [{pcs}] × {len(self.seeds)} seed(s) "
                f"[{', '.join(map(str, self.seeds))}]")


def parse_list(values: list[str], option: str, kind=str) -> list:
    """Repeated options and comma lists alike: --seeds 0,1 --seeds 2 → [0, 1, 2]; duplicates dropped."""
    out: list = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                item = kind(part)
            except ValueError:
                raise UserError(f"{option}: {part!r} is not a valid value") from None
            if item not in out:
                out.append(item)
    return out


def per_class_value(text: str) -> Optional[int]:
    if text.lower() in ("all", "full"):
        return None
    n = int(text)
    if n < 2:
        raise ValueError(text)
    return n


def in_process(platform: str) -> bool:
    from platforms.core import registry

    return registry.spec(platform).in_process


def this_machine() -> str:
    """The in-process platform's name: the default sweep, and the name this machine's device pool goes by
    (`--concurrency NAME=N`)."""
    from platforms.core import registry

    return registry.this_machine()


def runs_here(platform: str, settings: dict[str, str]) -> bool:
    """Whether a cell uses this machine's devices: the in-process platform's always, a cloud launcher's when its
    local mode (core/cloud_settings.py, LocalMode) is set true."""
    from platforms.core.cloud_settings import LocalMode

    return in_process(platform) or any(str(settings.get(key, "")).lower() in ("true", "1", "yes")
                                       for key in LocalMode.model_fields)


def parse_settings(pairs: list[str], platforms: list[str]) -> dict[str, dict[str, str]]:
    """--set PLATFORM:KEY=VALUE (or KEY=VALUE when the sweep has one platform that takes settings)."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        target, sep, rest = pair.partition(":")
        if sep and "=" not in target:
            platform = target.strip()
            if platform not in platforms:
                raise UserError(f"--set {pair!r}: {platform!r} is not one of this sweep's platforms ({', '.join(platforms)})")
        else:
            rest = pair
            takers = [p for p in platforms if not in_process(p)]  # an in-process platform takes no settings
            if len(takers) != 1:
                raise UserError(f"--set {pair!r}: say which platform it is for: --set PLATFORM:KEY=VALUE")
            platform = takers[0]
        key, eq, value = rest.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set takes [PLATFORM:]KEY=VALUE, got {pair!r}")
        out.setdefault(platform, {})[key.strip()] = value.strip()
    return out


def parse_concurrency(values: list[str], platforms: list[str]) -> tuple[int, dict[str, int]]:
    """--concurrency N (jobs in flight in all) and/or --concurrency PLATFORM=N (per platform)."""
    total = DEFAULT_CONCURRENCY
    # unless --concurrency PLATFORM=N says otherwise, the in-process platform runs one cell at a time: this
    # machine's one device (GPU, else the CPU) shared by two runs would make each time the other
    per = {p: 1 for p in platforms if in_process(p)}
    for value in values:
        name, sep, number = value.partition("=")
        text = number if sep else name
        try:
            n = int(text)
        except ValueError:
            raise UserError(f"--concurrency takes N or PLATFORM=N, got {value!r}") from None
        if n < 1:
            raise UserError(f"--concurrency {value!r}: must be at least 1")
        if sep:
            if name not in platforms:
                raise UserError(f"--concurrency {value!r}: {name!r} is not one of this sweep's platforms")
            per[name] = n
        else:
            total = n
    return total, per


def concurrency_text(total: int, per: dict[str, int]) -> str:
    parts = [f"at most {total} job(s) at once"]
    for p, n in sorted(per.items()):
        why = " (one device: runs sharing it would distort each other's timings)" if in_process(p) and n == 1 else ""
        parts.append(f"{p} {n}{why}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------- MLflow state
def _client_or_none(create: bool):
    from platforms.core import tracking

    if tracking._is_embedded() and not create and not (Path.cwd() / tracking.DB_FILE).exists():
        return None, None
    c = tracking.client()
    if create:
        return c, tracking.experiment_id(c)
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    return c, (exp.experiment_id if exp is not None else None)


def search_all(c, exp_id: str, filter_string: str) -> list:
    """Every run of the experiment matching `filter_string`, through all of MLflow's pages (reproduce reads its
    sweeps with it too)."""
    runs, token = [], None
    while True:
        page = c.search_runs([exp_id], filter_string=filter_string, max_results=1000, page_token=token,
                             order_by=["attributes.start_time DESC"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def find_parent(c, exp_id: str, name: str):
    from platforms.core.tracking import Tag

    runs = search_all(c, exp_id, f"tags.`{Tag.SWEEP}` = '{name}' and tags.`{Tag.KIND}` = '{KIND}'")
    return runs[-1] if runs else None  # the oldest, should two coordinators have raced


def children(c, exp_id: str, name: str) -> dict[str, list]:
    """cell key → that cell's runs, newest first; runs whose process died are reconciled as lost."""
    from platforms.core import tracking
    from platforms.core.tracking import Tag

    runs = [r for r in search_all(c, exp_id, f"tags.`{Tag.SWEEP}` = '{name}'") if r.data.tags.get(Tag.KIND) != KIND]
    runs = tracking.reconcile_lost(c, runs)
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(r.data.tags.get(Tag.SWEEP_CELL, ""), []).append(r)
    return out


def finished_run(runs: list):
    from platforms.core.tracking import Tag

    for r in runs:
        if r.info.status == "FINISHED" and r.data.tags.get(Tag.STATUS) == "finished":
            return r
    return None


# ---------------------------------------------------------------------------------------- workers
def live_worker(cell_dir: Path) -> Optional[int]:
    """The pid of a worker still running this cell on this host (pid reuse ruled out through
    /proc/PID/cmdline naming this cell's folder), else None."""
    try:
        info = json.loads((cell_dir / WORKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or not process_alive(pid):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return None
        if str(cell_dir.resolve()).encode() not in args:
            return None
    return pid


def worker_command(cell_dir: Path) -> list[str]:
    return [sys.executable, "-m", "platforms.bench.sweep", "worker", str(cell_dir.resolve())]


def run_worker(cell_dir: Path) -> int:
    """The worker: one launch, nested under the sweep's parent run. Exit 0 finished, 1 failed,
    130 killed, 143 preempted; the outcome is also written to RESULT_FILE."""
    from rich.console import Console

    from platforms.core import launch as launcher

    from platforms.core import tracking
    from platforms.core.api import Job
    from platforms.core.progress import JobProgress

    spec = json.loads((cell_dir / JOB_FILE).read_text())
    j = spec["job"]
    job = Job(data=Path(j["data"]), out=Path(j["out"]), model=j["model"], epochs=j["epochs"], per_class=j["per_class"],
              seed=j["seed"], target_accuracy=j["target_accuracy"], checkpoint_dir=Path(j["checkpoint_dir"]),
              hyperparameters=dict(j["hyperparameters"]))
    console = Console(stderr=True, width=160, force_terminal=False)
    result: dict[str, Any] = {"status": "failed", "run_id": None, "message": ""}
    code = 1
    try:
        with tracking.nested_under(spec["parent_run_id"], spec["tags"]):
            with JobProgress(console, enabled=False) as progress:
                outcome, run_id = launcher.launch(spec["platform"], job, spec["settings"], progress,
                                                  max_usd=spec.get("max_usd"))
        result = {"status": outcome.status, "run_id": run_id, "message": outcome.message}
        code = {"finished": 0, "preempted": 143, "killed": 130}.get(outcome.status, 1)
    except UserError as exc:
        result["message"] = str(exc)
        print(f"platbench: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        result.update(status="killed", message="interrupted")
        code = 130
    except Exception as exc:  # noqa: BLE001 - the coordinator reads the message; the traceback goes to the log
        import traceback

        traceback.print_exc()
        result["message"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    from trainer.results import atomic_write_text

    atomic_write_text(cell_dir / RESULT_FILE, json.dumps(result) + "\n")
    return code


# ---------------------------------------------------------------------------------------- the coordinator
@dataclass
class Active:
    cell: Cell
    how: str                      # launched | reattached | remote
    pid: Optional[int] = None
    popen: Optional[subprocess.Popen] = None
    run_id: Optional[str] = None  # remote: the RUNNING run being waited for
    started: float = field(default_factory=time.time)


@dataclass
class CellResult:
    cell: str
    how: str                      # skipped | launched | reattached | remote
    status: str                   # finished | failed | killed | preempted | lost | not started
    run_id: Optional[str] = None
    test_accuracy: Optional[float] = None
    seconds: Optional[float] = None
    message: str = ""


class Coordinator:
    def __init__(self, spec: SweepSpec, name: str, out: Path, total: int, per_platform: dict[str, int], console,
                 quiet: bool = False, executor=None):
        self.executor = executor or ProcessExecutor()  # where cells run: platforms/bench/executors.py
        self.spec, self.name, self.out = spec, name, out
        self.total, self.per_platform = total, per_platform
        self.console, self.quiet = console, quiet
        self.stop_signal: Optional[int] = None
        self.results: list[CellResult] = []
        self.parent_run_id: Optional[str] = None
        # --max-usd: the sweep's budget, each cell's upper bound (cost_plan), USD spent by ended cells
        self.max_usd: Optional[float] = None
        self.upper: dict[str, float] = {}
        self.spent = 0.0
        self.budget_stop = ""

    # -------------------------------------------------------------- output
    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    def cell_dir(self, cell: Cell) -> Path:
        return self.out / cell.dirname

    # -------------------------------------------------------------- planning
    def states(self, c=None, exp_id=None) -> list[tuple[Cell, str, Any]]:
        """(cell, finished | running | remote | launch, run or pid) for every cell."""
        from platforms.core.tracking import Tag

        by_cell = children(c, exp_id, self.name) if c is not None and exp_id is not None else {}
        host = socket.gethostname()
        out = []
        for cell in self.spec.cells():
            runs = by_cell.get(cell.key, [])
            done = finished_run(runs)
            if done is not None:
                out.append((cell, "finished", done))
                continue
            pid = live_worker(self.cell_dir(cell))
            if pid is None:  # a run still RUNNING from a live process here (reconcile_lost ended the dead ones)
                pid = next((int(r.data.tags[Tag.PID]) for r in runs if r.info.status == "RUNNING"
                            and r.data.tags.get(Tag.HOST) == host and r.data.tags.get(Tag.PID, "").isdigit()), None)
            if pid is not None:
                out.append((cell, "running", pid))
                continue
            remote = [r for r in runs if r.info.status == "RUNNING" and r.data.tags.get(Tag.HOST) not in (None, host)]
            if remote:
                out.append((cell, "remote", remote[0]))
                continue
            out.append((cell, "launch", runs[0] if runs else None))
        return out

    def preflight(self, platforms: Optional[list[str]] = None) -> None:
        """Each platform's own checks (settings, credentials, model, hyperparameters, dataset) once,
        before any run is created: a mistake fails the sweep here, not once per cell."""
        from platforms.core import registry

        for platform in self.spec.platforms if platforms is None else platforms:
            cls = registry.get(platform)
            for model in self.spec.models:
                job = self.job(Cell(platform, model, self.spec.per_class[0], self.spec.seeds[0]))
                if registry.spec(platform).kind == Kind.SERVICE:
                    # an AutoML service checks every subset it will get (too few images per label, too many)
                    from platforms.core.service_launch import check_job

                    for n in self.spec.per_class:
                        job.per_class = n
                        check_job(platform, job, self.spec.settings.get(platform, {}))
                else:
                    cls(self.spec.settings.get(platform, {})).check(job)

    def job(self, cell: Cell):
        from platforms.core.api import Job

        d = self.cell_dir(cell)
        return Job(data=Path(self.spec.data), out=d, model=cell.model, epochs=self.spec.epochs, per_class=cell.per_class,
                   seed=cell.seed, target_accuracy=self.spec.target_accuracy, checkpoint_dir=d / "checkpoints",
                   hyperparameters=dict(self.spec.hyperparameters))

    def dry_run(self) -> list[tuple[Cell, str, Any]]:
        c, exp_id = _client_or_none(create=False)
        parent = find_parent(c, exp_id, self.name) if c is not None and exp_id is not None else None
        states = self.states(c, exp_id) if parent is not None else [(cell, "launch", None) for cell in self.spec.cells()]
        return states

    # -------------------------------------------------------------- the parent run
    def open_parent(self, c, exp_id: str):
        from platforms.core import tracking
        from platforms.core.tracking import Tag

        parent = find_parent(c, exp_id, self.name)
        spec_json = json.dumps(asdict(self.spec), sort_keys=True)
        if parent is None:
            run = c.create_run(exp_id, run_name=self.name)
            tr = tracking.TrackedRun(c, run.info.run_id)
            tr.params({"data": self.spec.data, "epochs": self.spec.epochs, "target_accuracy": self.spec.target_accuracy,
                       **{f"hp.{k}": v for k, v in self.spec.hyperparameters.items()}})
            sessions = 1
        else:
            old = json.loads(parent.data.tags.get(SPEC_TAG, "{}") or "{}")
            if old and SweepSpec(**old).fixed() != self.spec.fixed():
                was, now = SweepSpec(**old).fixed(), self.spec.fixed()
                diff = ", ".join(f"{k}: {was[k]!r} → {now[k]!r}" for k in now if was.get(k) != now[k])
                raise UserError(f"sweep {self.name!r} already exists with a different definition ({diff}); "
                                "use another --name, or the same data, epochs, hyperparameters and settings")
            tr = tracking.TrackedRun(c, parent.info.run_id)
            c.update_run(parent.info.run_id, status="RUNNING")
            sessions = int(parent.data.tags.get(SESSIONS_TAG, "0") or 0) + 1
        tr.tags({Tag.KIND: KIND, Tag.SWEEP: self.name, SPEC_TAG: spec_json, SESSIONS_TAG: sessions,
                 Tag.GIT_COMMIT: tracking.code_commit(), Tag.HOST: socket.gethostname(), Tag.PID: os.getpid(),
                 Tag.STATUS: "running", "platbench.sweep_matrix": self.spec.describe(),
                 "platbench.sweep_out": str(self.out.resolve())})
        self.parent_run_id = tr.run_id
        self.sessions = sessions
        return tr

    # -------------------------------------------------------------- running
    def pool(self, platform: str) -> str:
        """Whose device a cell uses: the in-process platform, and a cloud launcher in local mode (--set
        P:local=true), run on this machine and share its limit, kept under the in-process platform's name; a
        cloud platform is its own pool."""
        return this_machine() if runs_here(platform, self.spec.settings.get(platform, {})) else platform

    def start(self, cell: Cell) -> Active:
        from platforms.core.tracking import Tag
        from trainer.results import atomic_write_text

        d = self.cell_dir(cell)
        d.mkdir(parents=True, exist_ok=True)
        job = self.job(cell)
        resume = (job.checkpoint_dir / "last.ckpt").exists()
        spec = {"platform": cell.platform, "settings": self.spec.settings.get(cell.platform, {}),
                "parent_run_id": self.parent_run_id,
                "tags": {Tag.SWEEP: self.name, Tag.SWEEP_CELL: cell.key},
                "job": {"data": str(job.data), "out": str(job.out.resolve()), "model": job.model, "epochs": job.epochs,
                        "per_class": job.per_class, "seed": job.seed, "target_accuracy": job.target_accuracy,
                        "checkpoint_dir": str(job.checkpoint_dir.resolve()), "hyperparameters": job.hyperparameters}}
        if self.max_usd is not None:
            spec["max_usd"] = self.budget_left(cell, [a.cell for a in getattr(self, "_active", [])])
        atomic_write_text(d / JOB_FILE, json.dumps(spec, indent=1) + "\n")
        (d / RESULT_FILE).unlink(missing_ok=True)
        log = open(d / LOG_FILE, "a")
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} sweep {self.name} launches {cell.key}\n")
        log.flush()
        popen = self.executor.start(worker_command(d), d, self.pool(cell.platform) == this_machine(), log)
        log.close()
        atomic_write_text(d / WORKER_FILE, json.dumps({"pid": popen.pid, "host": socket.gethostname(),
                                                       "started": time.time(), "cell": cell.key}) + "\n")
        self.say(f"start   {cell.key}" + ("  (resuming from its checkpoint)" if resume else "") + f"  log {d / LOG_FILE}")
        return Active(cell, "launched", pid=popen.pid, popen=popen)

    def budget_left(self, cell: Cell, running: list[Cell]) -> float:
        """The sweep's budget less what ended cells spent and the upper bounds of the other running cells."""
        return self.max_usd - self.spent - sum(self.upper.get(x.key, 0.0) for x in running if x.key != cell.key)

    def count_spend(self, res: "CellResult", c) -> None:
        """Add an ended cell's cost (billed, else its list estimate) to the spend; a cell its budget stopped
        stops the sweep from starting more."""
        if self.max_usd is None:
            return
        if res.run_id:
            m = c.get_run(res.run_id).data.metrics
            cost = m.get("cost_usd", m.get("cost_list_estimate_usd"))
            self.spent += cost if cost is not None else self.upper.get(res.cell, 0.0)
        if res.message.startswith("stopped by budget") and not self.budget_stop:
            self.budget_stop = f"{res.cell} was {res.message}"
            self.say(f"budget: {self.budget_stop}; no more cells start")

    def ended(self, a: Active, c) -> bool:
        if a.popen is not None:
            return a.popen.poll() is not None
        if a.how == "reattached":
            return not process_alive(a.pid)
        return c.get_run(a.run_id).info.status != "RUNNING"

    def result_of(self, a: Active, c, exp_id: str) -> CellResult:
        """The cell's outcome from MLflow: the run this worker made (launched), the cell's newest run
        (re-attached: its worker started before this session), or the run waited for (remote)."""
        from platforms.core.tracking import Tag

        if a.how == "remote":
            runs = [c.get_run(a.run_id)]
        else:
            runs = children(c, exp_id, self.name).get(a.cell.key, [])
            if a.how == "launched":
                runs = [r for r in runs if r.info.start_time >= (a.started - 5) * 1000]
        worker = {}
        try:
            worker = json.loads((self.cell_dir(a.cell) / RESULT_FILE).read_text())
        except (OSError, ValueError):
            pass
        if not runs:
            message = worker.get("message", "")
            if not message:
                try:
                    lines = [ln for ln in (self.cell_dir(a.cell) / LOG_FILE).read_text(errors="replace").splitlines()
                             if ln.strip()]
                    message = lines[-1] if lines else ""
                except OSError:
                    pass
            return CellResult(a.cell.key, a.how, "failed", message=message or "the worker ended before creating a run")
        r = runs[0]
        status = r.data.tags.get(Tag.STATUS) or r.info.status.lower()
        if status == "running":  # the worker died without ending its run (reconciled as lost on the next look)
            status = "lost"
        m = r.data.metrics
        return CellResult(a.cell.key, a.how, status, r.info.run_id, m.get("final_test_accuracy"), m.get("seconds_wall"),
                          "" if status == "finished" else worker.get("message", ""))

    def report_line(self, res: CellResult, done: int, total: int) -> None:
        acc = f"  acc {res.test_accuracy:.4f}" if res.test_accuracy is not None else ""
        secs = f"  {res.seconds:.1f} s" if res.seconds is not None else ""
        run = f"  run {res.run_id}" if res.run_id else ""
        msg = f"  {res.message}" if res.message and res.status != "finished" else ""
        if res.status in ("killed", "preempted", "lost"):
            msg = "  (its checkpoint stays: start the same sweep again to resume it)"
        self.say(f"[{done}/{total}] {res.status:<9} {res.cell}{acc}{secs}{run}{msg}")

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.say(f"\n{signal.Signals(signum).name}: stopping — passing it on to the running jobs "
                     "(they checkpoint or stop their cloud job); no new cells start")
        else:
            raise KeyboardInterrupt

    def run(self) -> list[CellResult]:
        from platforms.core import tracking
        from platforms.core.tracking import Tag

        c, exp_id = _client_or_none(create=True)
        parent = self.open_parent(c, exp_id)
        states = self.states(c, exp_id)
        cells_total = len(states)
        done_count = 0
        pending: list[Cell] = []
        active: list[Active] = []
        for cell, state, what in states:
            if state == "finished":
                m = what.data.metrics
                self.results.append(CellResult(cell.key, "skipped", "finished", what.info.run_id,
                                               m.get("final_test_accuracy"), m.get("seconds_wall")))
                done_count += 1
            elif state == "running":
                active.append(Active(cell, "reattached", pid=what))
            elif state == "remote":
                active.append(Active(cell, "remote", run_id=what.info.run_id))
            else:
                pending.append(cell)
        reattached = [a for a in active if a.how == "reattached"]
        remote = [a for a in active if a.how == "remote"]
        self.say(f"sweep {self.name}: {cells_total} cells = {self.spec.describe()}")
        self.say(f"  {done_count} finished earlier (skipped), {len(reattached)} still running here (re-attached), "
                 f"{len(remote)} running on another host (waited for), {len(pending)} to launch")
        self.say(f"  concurrency: {concurrency_text(self.total, self.per_platform)}")
        self.say(f"  executor: {self.executor.describe()}")
        self.say(f"  MLflow parent run {self.parent_run_id} in {tracking.tracking_uri()}; outputs in {self.out}")
        for a in reattached:
            self.say(f"attach  {a.cell.key}  (worker pid {a.pid})")
        for a in remote:
            self.say(f"wait    {a.cell.key}  (run {a.run_id} on {c.get_run(a.run_id).data.tags.get(Tag.HOST)})")

        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        forwarded = False
        try:
            while pending or active:
                if self.stop_signal is not None:
                    if not forwarded:
                        for a in active:
                            self.executor.forward(a.pid, a.popen, self.stop_signal)
                        forwarded = True
                    for cell in pending:
                        self.results.append(CellResult(cell.key, "launched", "not started"))
                    pending = []
                if self.budget_stop or (pending and self.max_usd is not None and self.budget_left(
                        pending[0], [a.cell for a in active]) < self.upper.get(pending[0].key, 0.0)):
                    for cell in pending:  # --max-usd: the budget is spent or stopped a cell
                        self.results.append(CellResult(cell.key, "launched", "not started", message="budget"))
                    pending = []
                self._active = active
                while pending and len(active) < self.total:
                    busy: dict[str, int] = {}
                    for a in active:
                        busy[self.pool(a.cell.platform)] = busy.get(self.pool(a.cell.platform), 0) + 1
                    pick = next((cell for cell in pending if busy.get(self.pool(cell.platform), 0)
                                 < self.per_platform.get(self.pool(cell.platform), self.total)), None)
                    if pick is None:
                        break
                    pending.remove(pick)
                    active.append(self.start(pick))
                for a in list(active):
                    if self.ended(a, c):
                        active.remove(a)
                        res = self.result_of(a, c, exp_id)
                        self.count_spend(res, c)
                        self.results.append(res)
                        done_count += 1
                        self.report_line(res, done_count, cells_total)
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting; the workers go on and are re-attached next time
            self.say("second interrupt: not waiting for the running jobs; run the same sweep again to re-attach")
            for a in active:
                self.results.append(CellResult(a.cell.key, a.how, "running", message=f"worker pid {a.pid}"))
            self._close(parent, "killed")
            raise
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        statuses = [r.status for r in self.results]
        status = "finished" if all(s == "finished" for s in statuses) else (
            "killed" if self.stop_signal is not None else "incomplete")
        self._close(parent, status)
        return self.results

    def _close(self, parent, status: str) -> None:
        from platforms.core.tracking import Tag

        counts = {"finished": 0, "failed": 0, "killed": 0, "preempted": 0, "lost": 0}
        for r in self.results:
            if r.status in counts:
                counts[r.status] += 1
        how = {h: sum(1 for r in self.results if r.how == h) for h in ("skipped", "launched", "reattached", "remote")}
        parent.metrics({"sweep_cells": len(self.spec.cells()), **{f"sweep_{k}": v for k, v in counts.items()},
                        **{f"sweep_{k}": v for k, v in how.items()}}, step=self.sessions)
        parent.tags({Tag.STATUS: status})
        parent.end({"finished": "FINISHED", "killed": "KILLED"}.get(status, "FAILED"))


def cli_main(data: Path, platforms: list[str], models: list[str], per_class: list[str], seeds: list[str],
             epochs: Optional[int], target_accuracy: Optional[float], hp: list[str], set_: list[str],
             concurrency: list[str], name: Optional[str], out: Optional[Path], dry_run: bool, as_json: bool,
             console, executor: str = "process", devices: Optional[int] = None, max_usd: Optional[float] = None) -> int:
    """`platbench sweep`: returns the exit code (0 all finished, 1 some failed, 130/143 interrupted)."""
    from platforms.core import registry
    from platforms.core.settings import parse_pairs

    here = this_machine()
    plats = parse_list(platforms or [here], "--platform")
    for p in plats:
        registry.get(p)  # unknown platform → one-line error
    spec = SweepSpec(
        data=str(Path(data).resolve()), platforms=plats, models=parse_list(models or ["small"], "--model"),
        per_class=parse_list(per_class or [",".join("all" if n is None else str(n) for n in DEFAULT_PER_CLASS)],
                             "--per-class", per_class_value),
        seeds=parse_list(seeds, "--seeds", int) if seeds else default_seeds(len(plats)),
        epochs=epochs, target_accuracy=target_accuracy, hyperparameters=parse_pairs(hp, "--hp"),
        settings=parse_settings(set_, plats))
    if not Path(data).exists():
        raise UserError(f"--data {data}: no such folder")
    name = name or spec.default_name()
    if not NAME_RE.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    on_this_machine = [here] + [p for p in plats if p != here and runs_here(p, spec.settings.get(p, {}))]
    total, per = parse_concurrency(concurrency, plats + ([here] if len(on_this_machine) > 1 else []))
    ex = make(executor, devices)
    if here in per and not any(v.partition("=")[0] == here for v in concurrency):
        per[here] = ex.local_slots()  # one cell on this machine per device (GPU, or the CPU)
        if not any("=" not in v for v in concurrency):
            total = max(total, per[here])
    co = Coordinator(spec, name, Path(out) if out else Path("runs") / "sweeps" / name, total, per, console,
                     quiet=as_json, executor=ex)
    co.max_usd = max_usd
    if dry_run:
        from platforms.core.launch import plan_text

        states = co.dry_run()
        costs = cost_lines(co, states)
        print(f"sweep {name}: {len(states)} cells = {spec.describe()}")
        print(f"concurrency: {concurrency_text(total, per)}")
        word = {"finished": "skip (finished)", "running": "re-attach", "remote": "wait (other host)", "launch": "launch"}
        for cell, state, _ in states:
            print(f"  {word[state]:<18} {cell.key}")
        seen = set()
        for cell, _, _ in states:
            if cell.platform not in seen:
                seen.add(cell.platform)
                print()
                print(plan_text(cell.platform, co.job(cell), spec.settings.get(cell.platform, {})))
        print()
        print(cost_plan.render(costs, max_usd))
        cost_plan.hold(costs, max_usd)
        return 0
    if max_usd is not None:  # refused before anything is created; each cell's upper bound is held while it runs
        costs = cost_lines(co, co.dry_run())
        cost_plan.hold(costs, max_usd)
        co.upper = {ln.label: ln.upper_usd for ln in costs}
    # check the platforms that still have cells to launch (a finished sweep started again needs none)
    co.preflight(sorted({cell.platform for cell, state, _ in co.dry_run() if state == "launch"}))
    try:
        # --json: stdout holds the document alone; what libraries print meanwhile (a Ray cluster's notices about
        # its workers, MLflow's run links) goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            co.run()
    except KeyboardInterrupt:
        print(f"platbench: sweep {name} left its running jobs going; start the same sweep again to re-attach",
              file=sys.stderr)
        return 130
    if as_json:
        print(summary_json(co))
    else:
        counts: dict[str, int] = {}
        for r in co.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        # the result on stdout, progress and messages on stderr (issue 28)
        print(f"sweep {name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
              + f" (parent run {co.parent_run_id})")
        print(f"report: platbench report --sweep {name} --out report")
    statuses = {r.status for r in co.results}
    if co.stop_signal is not None:
        return 143 if co.stop_signal == signal.SIGTERM else 130
    return 0 if statuses <= {"finished"} else 1


def cost_lines(co: Coordinator, states) -> list:
    """The cost plan of the cells still to launch (platforms/core/cost_plan.py), one line per cell; the cells
    of one platform and model share its price and expected hours (one preflight each)."""
    from dataclasses import replace

    seen: dict[tuple[str, str], object] = {}
    out = []
    for cell, state, _ in states:
        if state != "launch":
            continue
        key = (cell.platform, cell.model)
        if key not in seen:
            seen[key] = cost_plan.line(cell.platform, co.job(cell), co.spec.settings.get(cell.platform, {}))
        out.append(replace(seen[key], label=cell.key))
    return out


def summary_json(co: Coordinator) -> str:
    return json.dumps({"sweep": co.name, "parent_run_id": co.parent_run_id, "out": str(co.out),
                       "cells": [asdict(r) for r in co.results]}, indent=2)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "worker":
        return run_worker(Path(argv[1]))
    print("usage: python -m platforms.bench.sweep worker CELL_DIR  (started by `platbench sweep`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
