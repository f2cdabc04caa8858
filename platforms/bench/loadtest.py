"""`platbench load TARGET`: an inference load test of any endpoint that speaks the `serve` contracts.

A warm-up, then N requests either closed-loop at concurrency C (the seed benchmark: 1,000 requests by
10 clients) or open-loop at a fixed rate (requests start on schedule whether or not earlier ones have
answered; latency is then counted from the scheduled start, so a server that falls behind shows its
queueing instead of hiding it — the "coordinated omission" correction).

Here: the target, the run, the MLflow record and the printed table. The engine (retries with backoff,
counted apart from the errors) is platforms/core/load_runner.py, the statistics and the JSON report
platforms/core/load_report.py, the HTTP transport platforms/core/http_transport.py, the request bodies
platforms/bench/load_payloads.py.

TARGET is an http(s) URL (a bare host:port means SageMaker's /invocations and /ping) or a platform
endpoint, `sagemaker:NAME` / `vertex:ENDPOINT_ID`, invoked through that platform's SDK
(platforms/bench/endpoint.py)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit, urlunsplit

from platforms.bench.load_payloads import load_images, make_payloads
from platforms.core.http_transport import HttpTransport
from platforms.core.load_report import FAILURE_METRICS, MLFLOW_METRICS, build_report
from platforms.core.load_runner import LoadSettings, RunData, Sample, check_settings, run_with
from platforms.core.settings import parse_pairs
from platforms.core.tracking import Tag
from platforms.core.transport import Payload, Target, Transport
from platforms.errors import UserError

KIND_TAG = Tag.KIND  # "platbench.kind": load | batch_inference | endpoint (training runs carry none)


# ------------------------------------------------------------------------------------------ targets
def parse_target(text: str, health_path: Optional[str] = None) -> Target:
    """`http://host:port[/path]`, `host:port`, or `PLATFORM:ENDPOINT` for a platform with endpoints."""
    text = text.strip()
    from platforms.core import registry

    kind, sep, name = text.partition(":")
    if sep and kind in registry.with_endpoints():
        if not name:
            raise UserError(f"{kind}: needs an endpoint name, e.g. {kind}:my-endpoint")
        return Target(kind=kind, name=name)
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"target {text!r} is not an http(s) URL or PLATFORM:ENDPOINT (platforms with endpoints: "
                        f"{', '.join(registry.with_endpoints())})")
    try:
        parts.port
    except ValueError:
        raise UserError(f"target {text!r} has a bad port") from None
    path = parts.path if parts.path not in ("", "/") else "/invocations"
    predict = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if health_path is None:
        # SageMaker's pair; on a Vertex route the health check is a GET on the same path by default.
        health_path = "/ping" if path == "/invocations" else path
    health = urlunsplit((parts.scheme, parts.netloc, health_path, "", ""))
    resolve_host(parts.hostname, text)
    return Target(kind="http", url=predict, health_url=health)


def resolve_host(host: str, target: str) -> None:
    """A host name that does not resolve is a typo or a missing network, not a server that is down: said so
    before any request (the probe would only see connection errors)."""
    import socket

    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise UserError(f"target {target!r}: cannot resolve host {host!r} ({exc.strerror})") from None
    except UnicodeError:
        raise UserError(f"target {target!r}: {host!r} is not a valid host name") from None


def make_transport(target: Target, concurrency: int, timeout_s: float, headers: dict[str, str] | None = None,
                   settings: dict[str, str] | None = None) -> Transport:
    if target.kind == "http":
        return HttpTransport(target, concurrency, timeout_s, headers)
    from platforms.core import registry

    return registry.endpoint_class(target.kind).attach(target.name, settings or {}, concurrency, timeout_s)



# ------------------------------------------------------------------------------------------ running
def run_load(target: Target, payloads: list[Payload], s: LoadSettings, headers: dict[str, str] | None = None,
             progress: Optional[Callable[[Sample], None]] = None, settings: dict[str, str] | None = None) -> RunData:
    return run_with(lambda: make_transport(target, s.concurrency, s.timeout_s, headers, settings), payloads, s,
                    progress)


# ------------------------------------------------------------------------------------------ report
def log_to_mlflow(report: dict[str, Any], platform_name: str, run_name: Optional[str] = None) -> str:
    """One MLflow run per load test: settings as params, the summary as metrics, the whole report
    (every sample) as the artifact load.json. Returns the run id."""
    import tempfile

    from platforms.core import tracking

    summary = report["summary"]
    flat = {**{k: v for k, v in summary.items() if not isinstance(v, dict)}, **summary["latency_ms"]}
    st = report["settings"]
    params = {k: st.get(k) for k in ("requests", "concurrency", "rate", "warmup", "timeout_s", "retries", "format",
                                     "images_per_request")}
    params["target"] = report["target"]
    tags = {tracking.Tag.PLATFORM: platform_name, tracking.Tag.MODEL: report["platform"].get("model"),
            tracking.Tag.IMAGE_DIGEST: report["platform"].get("image_digest"), KIND_TAG: "load"}
    every_request_failed = report["summary"]["ok"] == 0
    with tracking.tracked_run(run_name or f"load-{platform_name}", params, tags) as run:
        # a run in which every request failed measured no latency: recorded as failed, with its error
        # counts but no latency or throughput figures, so no comparison can pick it up
        run.metrics({name: flat.get(key) for name, key in MLFLOW_METRICS.items()
                     if not every_request_failed or name in FAILURE_METRICS})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "load.json"
            path.write_text(json.dumps(report))
            run.client.log_artifact(run.run_id, str(path))
        run.tags({tracking.Tag.STATUS: "failed" if every_request_failed else "finished"})
        run.end("FAILED" if every_request_failed else "FINISHED")
        return run.run_id


def table(report: dict[str, Any]):
    """The human summary (rich Table)."""
    from rich.table import Table

    s, e, r = report["summary"], report["errors"], report["retries"]
    lat = s["latency_ms"]
    st = report["settings"]
    mode = f"{st['rate']:g} req/s open loop (≤{st['concurrency']} in flight)" if st["rate"] else f"concurrency {st['concurrency']}"
    t = Table(title=f"load {report['target']} — {s['requests']} requests, {mode}", show_header=False)
    t.add_column(style="bold")
    t.add_column()

    def ms(v):
        return "-" if v is None else f"{v:.2f} ms"

    t.add_row("ok / failed", f"{s['ok']} / {s['failed']}  (error rate {s['error_rate']:.2%})")
    t.add_row("latency p50 / p90", f"{ms(lat['p50'])} / {ms(lat['p90'])}")
    t.add_row("latency p95 / p99", f"{ms(lat['p95'])} / {ms(lat['p99'])}")
    t.add_row("latency mean / max", f"{ms(lat['mean'])} / {ms(lat['max'])}")
    t.add_row("throughput", f"{s['requests_per_s']:.1f} req/s, {s['images_per_s']:.1f} images/s, {s['mb_per_s']:.3f} MB/s")
    t.add_row("errors by status", ", ".join(f"{k}: {v}" for k, v in e["by_status"].items()) or "none")
    conn = {k: v for k, v in e["connection"].items() if v}
    t.add_row("connection errors", ", ".join(f"{k}: {v}" for k, v in conn.items()) or "none")
    if e["bad_response"]:
        t.add_row("bad responses", str(e["bad_response"]))
    t.add_row("retries", f"{r['total']} ({', '.join(f'{k}: {v}' for k, v in r['by_reason'].items()) or 'none'}); "
                         f"{r['recovered']} requests recovered")
    if report["server_batch"]["mean"]:
        t.add_row("server batch", f"mean {report['server_batch']['mean']:.1f}, max {report['server_batch']['max']}")
    p = report["platform"]
    t.add_row("server / model", f"{p['server'].get('software') or '-'} / {p.get('model') or '-'}")
    return t


# ------------------------------------------------------------------------------------------ CLI
def default_platform_name(target: Target) -> str:
    if target.kind != "http":
        return target.kind
    host = urlsplit(target.url or "").hostname or ""
    from platforms.core import registry

    on_this_machine = host in ("localhost", "::1") or host.startswith("127.")
    return registry.this_machine() if on_this_machine else "url"


def cli_main(target: str, requests: int, concurrency: int, rate: Optional[float], warmup: int, data: list[Path],
             fmt: str, batch: int, timeout: float, retries: int, max_error_rate: Optional[float], wait_ready: float,
             health_path: Optional[str], header: list[str], set_: list[str], model: Optional[str],
             image_digest: Optional[str], as_json: bool, out: Optional[Path], track: bool,
             platform_name: Optional[str], console) -> int:
    """`platbench load`: returns the exit code (1 when --max-error-rate is exceeded)."""
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise UserError("--max-error-rate is a fraction from 0 to 1, e.g. 0.01")
    tgt = parse_target(target, health_path)
    settings = parse_pairs(set_, "--set")
    if settings and tgt.kind == "http":
        raise UserError("--set applies to PLATFORM:ENDPOINT targets only, not to a URL")
    s = LoadSettings(requests=requests, concurrency=concurrency, rate=rate, warmup=warmup, timeout_s=timeout,
                     retries=retries, wait_ready_s=wait_ready, probe=True)
    check_settings(s)
    payloads = make_payloads(load_images(data), fmt, batch)
    started = datetime.now(timezone.utc).isoformat()
    progress_cm = None
    callback = None
    if not as_json and console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress_cm = Progress(TextColumn("load"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                               console=console, transient=True)
        task = progress_cm.add_task("requests", total=requests)

        def callback(sample: Sample) -> None:
            progress_cm.advance(task)

        progress_cm.start()
    try:
        data_run = run_load(tgt, payloads, s, parse_pairs(header, "--header"), callback, settings)
    except KeyboardInterrupt:
        import sys

        print("platbench: load interrupted (Ctrl-C); nothing recorded", file=sys.stderr)
        return 130
    finally:
        if progress_cm is not None:
            progress_cm.stop()
    report = build_report(tgt, data_run, s, payloads, fmt, model, image_digest, settings or None, started)
    name = platform_name or default_platform_name(tgt)
    report["platform"]["name"] = name
    if track:
        report["mlflow_run_id"] = log_to_mlflow(report, name)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return_code = 0
    if max_error_rate is not None and report["summary"]["error_rate"] > max_error_rate:
        return_code = 1
    every_request_failed = report["summary"]["ok"] == 0
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        from rich.console import Console

        Console(width=max(console.width, 100)).print(table(report))
        if track:
            print(f"MLflow run {report['mlflow_run_id']}")
    if every_request_failed:
        import sys

        print(f"platbench: error: every one of {report['summary']['requests']} requests failed "
              f"({_failure_text(report)}); recorded as a failed run", file=sys.stderr)
        return 1
    if return_code:
        import sys

        print(f"platbench: error rate {report['summary']['error_rate']:.2%} exceeds --max-error-rate "
              f"{max_error_rate:.2%}", file=sys.stderr)
    return return_code


def _failure_text(report: dict[str, Any]) -> str:
    e = report["errors"]
    parts = [f"{n}× HTTP {status}" for status, n in sorted(e.get("by_status", {}).items())]
    parts += [f"{n}× {kind}" for kind, n in e.get("connection", {}).items() if n]
    if e.get("bad_response"):
        parts.append(f"{e['bad_response']}× bad response")
    return ", ".join(parts) or "no answers"
