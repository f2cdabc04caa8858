"""`platbench endpoint PLATFORM`: deploy the trained model on a platform's real-time endpoint, load test
it through the platform's SDK with the load tool's engine (platforms/core/load_runner.py), optionally run
batch inference through it, and delete everything afterwards — always: on success, on error and on
Ctrl-C. Works for every platform whose SPEC names an endpoint (platforms/core/endpoint.py); its cost per
hour, day, month (730 h) and year (8,760 h) comes from the platform's price table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from platforms.core import pricing, registry
from platforms.core.endpoint import EndpointCost
from platforms.core.teardown import sigint_interrupts
from platforms.errors import UserError


def endpoint_for(platform: str, settings: dict[str, str]):
    return registry.endpoint_class(platform)(settings)


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


def run_endpoint_benchmark(platform: str, model_dir: Path, settings: dict[str, str], load_settings, payloads, fmt: str,
                           batch_dir: Optional[Path] = None, say=None, track: bool = True) -> EndpointRun:
    """Deploy → wait until it serves → load test through the SDK → (batch inference over batch_dir) →
    delete, always. Logged to MLflow as one run (kind `endpoint`)."""
    ep = endpoint_for(platform, settings)
    ep.check()
    ep.load_plan = load_settings  # a deployment that caps concurrency is made for this load test
    say = say or (lambda text: None)
    cost = ep.cost()
    result = EndpointRun(platform, ep.name, cost.to_dict() if cost else None, ep.timings, [],
                         settings=ep.cfg.model_dump(), tags=ep.tags())
    with sigint_interrupts():
        _deploy_load_teardown(ep, model_dir, load_settings, payloads, fmt, batch_dir, say, result)
    if track:
        result_id = log_endpoint_run(result)
        result.settings["mlflow_run_id"] = result_id
    return result


def _deploy_load_teardown(ep, model_dir, load_settings, payloads, fmt, batch_dir, say, result) -> None:
    from platforms.core.load_report import build_report
    from platforms.core.load_runner import run_with

    try:
        ep.deploy(model_dir, say)
        say(f"endpoint {ep.name} serves; load test: {load_settings.requests} requests")
        data = run_with(lambda: ep.transport(load_settings.concurrency, load_settings.timeout_s), payloads,
                        load_settings)
        result.load = build_report(ep.target(), data, load_settings, payloads, fmt)
        if batch_dir is not None:
            from platforms.bench.batch import run_endpoint as batch_endpoint

            report, _ = batch_endpoint(batch_dir, None, concurrency=load_settings.concurrency,
                                       transport_factory=lambda c, t: ep.transport(c, t), target=ep.target())
            result.batch = report.to_dict()
    finally:
        say(f"deleting endpoint {ep.name} and everything it needed")
        result.deleted = ep.teardown()


def log_endpoint_run(run_: EndpointRun) -> str:
    from platforms.core import tracking
    from platforms.bench.loadtest import KIND_TAG
    from platforms.core.load_report import MLFLOW_METRICS

    params = {k: v for k, v in run_.settings.items() if k not in ("bucket", "prefix") and v is not None}
    tags = {tracking.Tag.PLATFORM: run_.platform, KIND_TAG: "endpoint", "platbench.endpoint": run_.name,
            **run_.tags}
    with tracking.tracked_run(f"endpoint-{run_.platform}", params, tags) as tr:
        metrics = {f"endpoint_{k}": v for k, v in run_.timings.items()}
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
        tr.tags({tracking.Tag.STATUS: "finished"})
        tr.end("FINISHED")
        return tr.run_id


def cli_main(platform: str, model_dir: Optional[Path], set_: list[str], requests: int, concurrency: int, warmup: int,
             data: list[Path], fmt: str, batch: int, batch_dir: Optional[Path], dry_run: bool, as_json: bool,
             track: bool, console) -> None:
    from platforms.bench import loadtest as load_mod
    from platforms.bench.load_payloads import load_images, make_payloads
    from platforms.core.load_runner import LoadSettings, check_settings
    from platforms.core.settings import parse_pairs

    settings = parse_pairs(set_, "--set")
    ep = endpoint_for(platform, settings)
    cost = ep.cost()
    if dry_run:
        lines = [f"Plan for a {platform} endpoint {ep.name} — nothing is created:"]
        lines += [f"{i:2d}. {step}" for i, step in enumerate(ep.plan(), 1)]
        lines.append(_cost_line(cost, platform))
        if cost is not None:
            from platforms.core.cost_plan import endpoint_text

            lines.append(endpoint_text(platform, cost.usd_per_hour, cost.basis, requests))
        print("\n".join(lines))
        return
    if model_dir is None:
        raise UserError("--model-dir DIR is needed (the trainer's model directory: model.pt + model.json)")
    s = LoadSettings(requests=requests, concurrency=concurrency, warmup=warmup)
    check_settings(s)
    payloads = make_payloads(load_images(data), fmt, batch)
    result = run_endpoint_benchmark(platform, model_dir, settings, s, payloads, fmt, batch_dir,
                                    say=lambda text: console.print(f"[dim]{text}[/dim]"), track=track)
    if as_json:
        print(json.dumps(result.__dict__, indent=1, default=str))
        return
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


def _cost_line(cost: Optional[EndpointCost], platform: str) -> str:
    if cost is None:
        return (f"cost: no price for this machine in platforms/{platform}/prices.yaml (sections endpoint, training); "
                f"known: {pricing.known(platform, 'endpoint') or pricing.known(platform)}")
    per = cost.per()
    line = (f"cost while up: ${per['hour']:.4f}/hour, ${per['day']:.2f}/day, ${per['month']:.2f}/month (730 h), "
            f"${per['year']:.2f}/year — {cost.basis}")
    return line + (f" [{cost.note}]" if cost.note else "")
