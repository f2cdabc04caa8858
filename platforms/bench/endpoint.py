"""`platbench endpoint PLATFORM`: deploy the trained model on a platform's real-time endpoint, load test
it through the platform's SDK with the load tool's engine (platforms/core/load_runner.py), optionally run
batch inference through it, and delete everything afterwards — always: on success, on error and on
Ctrl-C. Works for every platform whose SPEC names an endpoint (platforms/core/endpoint.py); its cost per
hour, day, month (730 h) and year (8,760 h) comes from the platform's price table. `deployed` is the
deploy → serve → teardown part alone, for any caller that sends its own requests (platbench reproduce); with
a budget (--max-usd) it stops the endpoint before its spend crosses it (platforms/core/budget_watch.py)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from platforms.core import pricing, registry
from platforms.core.budget_watch import SpendWatch
from platforms.core.endpoint import Endpoint, EndpointCost
from platforms.core.teardown import sigint_interrupts
from platforms.errors import UserError


def endpoint_for(platform: str, settings: dict[str, str]):
    return registry.endpoint_class(platform)(settings)


class BudgetStopped(UserError):
    """The budget stopped a deployed endpoint: raised by `deployed` after its teardown. The message is the one
    line saying so; `endpoint` is the (deleted) endpoint, its `budget` the watch that stopped it."""

    def __init__(self, message: str, endpoint: Endpoint):
        super().__init__(message)
        self.endpoint = endpoint
        self.run_id: Optional[str] = None  # the MLflow run that records it, once logged (run_endpoint_benchmark)


@contextmanager
def deployed(platform: str, model_dir: Path, settings: dict[str, str], say=None, load_plan=None,
             max_usd: Optional[float] = None) -> Iterator[Endpoint]:
    """Check → deploy → yield the serving endpoint → teardown, always (success, error, Ctrl-C).

    The yielded endpoint serves: `.transport(concurrency, timeout_s)`, `.target()`, `.name`, `.cost()`,
    `.timings`. `load_plan` (a LoadSettings) sizes a deployment that caps concurrency. After the block the
    endpoint has `.deleted` (what the teardown deleted) and `.budget` (None without max_usd; else the
    SpendWatch: `.spent_usd`, `.seconds`, `.fired`).

    With `max_usd`: an endpoint with no price, or a budget that would not cover its creation and teardown
    (cost_plan.endpoint_margin), is refused before anything is created; the spend (its USD/h × the seconds since
    the deploy began) is watched, and 2 s + its expected teardown before it would cross max_usd the deploy or the
    block is interrupted (as by Ctrl-C), the endpoint torn down, and BudgetStopped (a UserError) raised, naming a
    teardown's failure too. A user's Ctrl-C still raises KeyboardInterrupt."""
    say = say or (lambda text: None)
    ep = endpoint_for(platform, settings)
    cost = ep.cost()
    margin_s = None
    if max_usd is not None:
        from platforms.core.cost_plan import endpoint_margin, unpriced_endpoint

        if cost is None:
            raise unpriced_endpoint(platform, max_usd)
        margin_s, _ = endpoint_margin(platform, cost.usd_per_hour, max_usd)  # the deletes bill too
    ep.check()
    ep.load_plan = load_plan
    ep.deleted, ep.budget = [], (SpendWatch(cost.usd_per_hour, max_usd, margin_s) if max_usd is not None else None)
    watch, stopped, teardown_error = ep.budget, False, None
    with sigint_interrupts():
        try:
            interrupted = False
            try:
                if watch is not None:
                    watch.arm()  # the endpoint bills from its creation: the model's upload is counted too
                ep.deploy(model_dir, say)
                yield ep
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:
                if watch is not None:
                    watch.disarm(interrupted)
        except KeyboardInterrupt:
            if watch is None or not watch.fired:  # the user's Ctrl-C
                raise
            stopped = True
        finally:
            say(f"deleting endpoint {ep.name} and everything it needed")
            try:
                ep.deleted = ep.teardown()
            except UserError as exc:
                if not stopped:
                    raise
                teardown_error = exc  # the budget's stop is still said (and recorded), with what is left
            finally:
                if watch is not None:
                    watch.end()
    if stopped:
        raise BudgetStopped(f"stopped by budget: {watch.text()}; "
                            + (f"endpoint {ep.name} deleted" if teardown_error is None else str(teardown_error)), ep)


@dataclass
class EndpointRun:
    platform: str
    name: str
    cost: Optional[dict]
    timings: dict[str, float]
    deleted: list[str]
    load: Optional[dict] = None
    batch: Optional[dict] = None
    settings: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)   # the endpoint's own (Endpoint.tags), logged as run tags
    max_usd: Optional[float] = None            # the budget held (--max-usd), and what the endpoint spent under it
    spent_usd: Optional[float] = None
    stopped: Optional[str] = None              # the budget's line when it stopped the run; None: it finished


def run_endpoint_benchmark(platform: str, model_dir: Path, settings: dict[str, str], load_settings, payloads, fmt: str,
                           batch_dir: Optional[Path] = None, say=None, track: bool = True,
                           max_usd: Optional[float] = None) -> EndpointRun:
    """Deploy → wait until it serves → load test through the SDK → (batch inference over batch_dir) →
    delete, always (`deployed`). Logged to MLflow as one run (kind `endpoint`). Stopped by the budget, the run
    is logged with what ran (the load test's requests so far), status killed and platbench.stopped_by=budget,
    and BudgetStopped re-raised with its run_id."""
    say = say or (lambda text: None)
    result: Optional[EndpointRun] = None
    samples: list = []  # the load test's measured requests as they end: what ran, should the budget stop it
    try:
        with deployed(platform, model_dir, settings, say, load_settings, max_usd) as ep:
            result = _new_run(platform, ep, max_usd)
            _load_and_batch(ep, load_settings, payloads, fmt, batch_dir, say, result, samples.append)
    except BudgetStopped as stop:
        result = result or _new_run(platform, stop.endpoint, max_usd)
        result.stopped = str(stop)
        if result.load is None and samples:
            result.load = _report_so_far(stop.endpoint, samples, load_settings, payloads, fmt)
        _ended(result, stop.endpoint)
        if track:
            stop.run_id = result.settings["mlflow_run_id"] = log_endpoint_run(result)
        raise
    _ended(result, ep)
    if track:
        result.settings["mlflow_run_id"] = log_endpoint_run(result)
    return result


def _new_run(platform: str, ep: Endpoint, max_usd: Optional[float]) -> EndpointRun:
    cost = ep.cost()
    return EndpointRun(platform, ep.name, cost.to_dict() if cost else None, ep.timings, [],
                       settings=ep.cfg.model_dump(), tags=ep.tags(), max_usd=max_usd)


def _ended(result: EndpointRun, ep: Endpoint) -> None:
    result.deleted = ep.deleted
    if ep.budget is not None:
        result.spent_usd = ep.budget.spent_usd


def _load_and_batch(ep, load_settings, payloads, fmt, batch_dir, say, result, progress) -> None:
    from platforms.core.load_report import build_report
    from platforms.core.load_runner import run_with

    say(f"endpoint {ep.name} serves; load test: {load_settings.requests} requests")
    data = run_with(lambda: ep.transport(load_settings.concurrency, load_settings.timeout_s), payloads,
                    load_settings, progress)
    result.load = build_report(ep.target(), data, load_settings, payloads, fmt)
    if batch_dir is not None:
        from platforms.bench.batch import run_endpoint as batch_endpoint

        report, _ = batch_endpoint(batch_dir, None, concurrency=load_settings.concurrency,
                                   transport_factory=lambda c, t: ep.transport(c, t), target=ep.target())
        result.batch = report.to_dict()


def _report_so_far(ep, samples, load_settings, payloads, fmt) -> dict:
    """The load report of the requests that ended before the load test was stopped."""
    from platforms.core.load_report import build_report
    from platforms.core.load_runner import RunData

    seconds = max(s.start_s + s.latency_ms / 1000 for s in samples)
    return build_report(ep.target(), RunData(list(samples), seconds, {}, {}), load_settings, payloads, fmt)


def log_endpoint_run(run_: EndpointRun) -> str:
    from platforms.core import tracking
    from platforms.bench.loadtest import KIND_TAG
    from platforms.core.cloud_job import STOPPED_BY_TAG
    from platforms.core.load_report import MLFLOW_METRICS

    params = {k: v for k, v in run_.settings.items() if k not in ("bucket", "prefix") and v is not None}
    tags = {tracking.Tag.PLATFORM: run_.platform, KIND_TAG: "endpoint", "platbench.endpoint": run_.name,
            **run_.tags}
    with tracking.tracked_run(f"endpoint-{run_.platform}", params, tags) as tr:
        metrics = {f"endpoint_{k}": v for k, v in run_.timings.items()}
        if run_.max_usd is not None:
            metrics.update({"budget_usd": run_.max_usd, "endpoint_spent_usd": run_.spent_usd})
        if run_.cost:
            metrics.update({f"endpoint_usd_per_{unit}": v for unit, v in run_.cost["usd_per"].items()})
            tr.tags({tracking.Tag.PRICE_SOURCE: run_.cost["basis"]})
        if run_.load:
            flat = {**run_.load["summary"], **run_.load["summary"]["latency_ms"]}
            metrics.update({name: flat.get(key) for name, key in MLFLOW_METRICS.items()})
        if run_.batch:
            metrics.update({"batch_seconds_per_mib": run_.batch["seconds_per_mb"],
                            "batch_images_per_s": run_.batch["images_per_s"]})
        tr.metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "endpoint.json"
            path.write_text(json.dumps(run_.__dict__, default=str))
            tr.client.log_artifact(tr.run_id, str(path))
        if run_.stopped:
            tr.tags({tracking.Tag.STATUS: "killed", STOPPED_BY_TAG: "budget"})
            tr.end("KILLED")
        else:
            tr.tags({tracking.Tag.STATUS: "finished"})
            tr.end("FINISHED")
        return tr.run_id


def cli_main(platform: str, model_dir: Optional[Path], set_: list[str], requests: int, concurrency: int, warmup: int,
             data: list[Path], fmt: str, batch: int, batch_dir: Optional[Path], dry_run: bool, as_json: bool,
             track: bool, console, max_usd: Optional[float] = None) -> int:
    """`platbench endpoint`; returns the exit code: 0, or 130 when the budget stopped the endpoint (as a launch
    that the budget stopped: one line on stderr)."""
    import sys

    from platforms.bench import loadtest as load_mod
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.core.cost_plan import endpoint_text, hold_endpoint
    from platforms.core.load_runner import LoadSettings, check_settings
    from platforms.core.settings import parse_pairs

    settings = parse_pairs(set_, "--set")
    ep = endpoint_for(platform, settings)
    cost = ep.cost()
    hold_endpoint(platform, cost.usd_per_hour if cost else None, requests, max_usd)  # dry or not, as launch does
    if dry_run:
        lines = [f"Plan for a {platform} endpoint {ep.name} — nothing is created:"]
        lines += [f"{i:2d}. {step}" for i, step in enumerate(ep.plan(), 1)]
        lines.append(_cost_line(cost, platform))
        if cost is not None:
            lines.append(endpoint_text(platform, cost.usd_per_hour, cost.basis, requests, max_usd))
        print("\n".join(lines))
        return 0
    if model_dir is None:
        raise UserError("--model-dir DIR is needed (the trainer's model directory: model.pt + model.json)")
    s = LoadSettings(requests=requests, concurrency=concurrency, warmup=warmup)
    check_settings(s)
    payloads = make_payloads(load_images(data), fmt, batch)
    try:
        result = run_endpoint_benchmark(platform, model_dir, settings, s, payloads, fmt, batch_dir,
                                        say=lambda text: console.print(f"[dim]{text}[/dim]"), track=track,
                                        max_usd=max_usd)
    except BudgetStopped as stop:
        print(f"platbench: killed: {stop}" + (f" (MLflow run {stop.run_id})" if stop.run_id else ""), file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(result.__dict__, indent=1, default=str))
        return 0
    from rich.console import Console

    out = Console(width=max(console.width, 100))
    t = result.timings
    print(f"endpoint {result.name}: model upload {t.get('upload_s', 0):.1f} s, create → serving "
          f"{t.get('create_to_in_service_s', 0):.1f} s, teardown {t.get('teardown_s', 0):.1f} s")
    print(_cost_line(cost, platform))
    if result.load:
        out.print(load_mod.table(result.load))
    if result.batch:
        b = result.batch
        print(f"batch inference: {b['images']} images, {b['mb']:.3f} MiB, {b['seconds_per_mb']:.3f} s/MiB, "
              f"{b['images_per_s']:.1f} images/s")
    print("deleted: " + "; ".join(result.deleted))
    if result.settings.get("mlflow_run_id"):
        print(f"MLflow run {result.settings['mlflow_run_id']}")
    return 0


def _cost_line(cost: Optional[EndpointCost], platform: str) -> str:
    if cost is None:
        return (f"cost: no price for this machine in platforms/{platform}/prices.yaml (sections endpoint, training); "
                f"known: {pricing.known(platform, 'endpoint') or pricing.known(platform)}")
    per = cost.per()
    line = (f"cost while up: ${per['hour']:.4f}/hour, ${per['day']:.2f}/day, ${per['month']:.2f}/month (730 h), "
            f"${per['year']:.2f}/year — {cost.basis}")
    return line + (f" [{cost.note}]" if cost.note else "")
