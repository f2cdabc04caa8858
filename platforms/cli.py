"""The `platbench` command. Heavy imports (torch, Lightning, MLflow, cloud SDKs) happen inside the
commands that need them, so `platbench --help` and bad-input errors stay fast."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from platforms import preflight
from platforms.core import registry
from platforms.errors import UserError

# help texts name the platforms the registry knows (their light __init__ modules only: no SDK is imported)
ENDPOINT_PLATFORMS = " | ".join(registry.with_endpoints()) or "none registered"
PLATFORM_NAMES = " | ".join(registry.names())
STORAGE_PLATFORMS = " | ".join(n for n in registry.names() if registry.spec(n).stores) or "none registered"

# stdout carries the --json documents: with a tracking server MLflow would write "View run …" links to it
# when a run ends (MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT, mlflow/tracking/_tracking_service/client.py)
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# MLflow draws a progress bar on stderr for every artifact it uploads or downloads (`check` fetches three
# files, a launch logs a model): noise around platbench's own output, in a pipe most of all
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

app = typer.Typer(
    name="platbench",
    help="Run one CIFAR-10 trainer on each ML platform and compare speed, accuracy, cost and usability.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts are plain text: "[/path]" in one must not be read as a markup tag
)

data_app = typer.Typer(help="Datasets: prepare them in the folder layout the trainer reads.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare(
    source: str = typer.Argument(..., help="cifar10 (torchvision download, or --source batches) | digits (bundled)"),
    out: Path = typer.Option(..., "--out", help="folder to write train/<class>/*.png and test/<class>/*.png"),
    source_dir: Optional[Path] = typer.Option(None, "--source", help="cifar10: existing python batches to convert"),
    download_dir: Path = typer.Option(Path("data/downloads"), "--download-dir", help="cifar10: where to download"),
    if_missing: bool = typer.Option(False, "--if-missing", help="do nothing if OUT already holds a dataset"),
) -> None:
    """Write a dataset in the custom-dataset layout: OUT/{train,test}/<class>/NNNNN.png."""
    from rich.progress import Progress

    from trainer.data import prepare
    from trainer.data.layout import detect_format
    from trainer.errors import DataError

    if source not in prepare.SOURCES:
        raise UserError(f"unknown dataset source {source!r}; choose one of: {', '.join(prepare.SOURCES)}")
    preflight.output_folder(out)
    try:
        if if_missing and out.is_dir() and any(out.iterdir()):
            detect_format(out)
            typer.echo(f"{out} already holds a dataset; nothing to do")
            return
        classes, splits = prepare.digits() if source == "digits" else prepare.cifar10(source_dir, download_dir)
        total = sum(len(y) for _, y in splits.values())
        with Progress(console=_console(), transient=True) as bar:
            task = bar.add_task(f"writing {total} images", total=total)
            prepare.write_folder(out, classes, splits, progress=lambda n: bar.advance(task, n))
    except DataError as exc:
        raise UserError(str(exc)) from None
    counts = ", ".join(f"{split} {len(y)}" for split, (_, y) in splits.items())
    typer.echo(f"wrote {source} to {out}: {len(classes)} classes, {counts} images")


@app.command()
def launch(
    platform: str = typer.Argument(..., help="where to run: see `platbench platforms`"),
    data: Path = typer.Option(..., "--data", help="dataset folder (folder layout or CIFAR-10 python batches)"),
    model: str = typer.Option("small", "--model", help="model preset: small | fast | resnet18 | a torchvision family (README: Models)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="default: the preset's"),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=2, help="N training images per class"),
    seed: int = typer.Option(0, "--seed"),
    target_accuracy: Optional[float] = typer.Option(None, "--target-accuracy", min=0.0, max=1.0,
                                                    help="record seconds to reach this test accuracy"),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", help="resume from / checkpoint to here"),
    out: Optional[Path] = typer.Option(None, "--out", help="where outputs land (default runs/<time>-<platform>-<model>)"),
    hp: list[str] = typer.Option([], "--hp", help="trainer hyperparameter KEY=VALUE (lr, batch_size, …)"),
    set_: list[str] = typer.Option([], "--set", help="platform setting KEY=VALUE (instance type, region, …)"),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="GPUs for a platform that runs the image on this "
                                       "machine: all | N | device=ID[,ID…] (the same as --set gpus=…)"),
    devices: int = typer.Option(1, "--devices", min=1, help="data-parallel processes per node, one device each "
                                "(DDP under torchrun when more than 1)"),
    nodes: int = typer.Option(1, "--nodes", min=1, help="machines (local: 1; cloud launchers take theirs as a "
                              "--set instance/replica count)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and equivalent commands; create nothing"),
    as_json: bool = typer.Option(False, "--json", help="print results as JSON instead of a table"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="the job's log lines on stderr as they come (they "
                                 "are always in OUT/train.log)"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="compare with this MLflow run (id or prefix); "
                                           "refused when it was made with another image"),
    allow_image_mismatch: bool = typer.Option(False, "--allow-image-mismatch",
                                              help="compare with --baseline even if the image digests differ"),
    allow_version_mismatch: bool = typer.Option(False, "--allow-version-mismatch",
                                                help="compare with --baseline even if Python, torch, torchvision, "
                                                     "Lightning, CUDA or cuDNN versions differ"),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0.0, help="budget in USD: refuse a plan whose "
                                            "upper bound (price × max_run) exceeds it; cancel a job before its "
                                            "spend crosses it"),
) -> None:
    """Train on PLATFORM, measure it, and record the run in MLflow."""
    from platforms.core import launch as launcher
    from platforms.core.settings import parse_pairs
    from platforms.core.api import Job
    from platforms.core.progress import JobProgress

    if out is not None:
        preflight.output_folder(out)
    job = Job(data=data, out=out or launcher.default_out(platform, model), model=model, epochs=epochs,
              per_class=per_class, seed=seed, target_accuracy=target_accuracy, checkpoint_dir=checkpoint_dir,
              hyperparameters=parse_pairs(hp, "--hp"), devices=devices, nodes=nodes)
    settings = parse_pairs(set_, "--set")
    if gpus is not None:
        settings["gpus"] = gpus  # a platform without the setting refuses it as it refuses any unknown --set
    if dry_run:
        typer.echo(launcher.plan_text(platform, job, settings, max_usd))
        return
    preflight.tracking_store(_tracking_uri())
    if baseline is not None:
        preflight.store_exists(_tracking_uri(), f"--baseline {baseline!r}")
    base_run = launcher.find_run(baseline) if baseline is not None else None
    console = _console()
    with JobProgress(console, enabled=not as_json, verbose=verbose) as progress:
        outcome, run_id = launcher.launch(platform, job, settings, progress, base_run, allow_image_mismatch, max_usd)
    if outcome.status != "finished":
        typer.echo(f"platbench: {outcome.status}: {outcome.message} (MLflow run {run_id})", err=True)
        raise typer.Exit(143 if outcome.status == "preempted" else 130)
    if registry.spec(platform).kind == "service":  # an AutoML service: its own record (platforms/core/service_launch.py)
        from platforms.core import service_launch as automl

        typer.echo((outcome.output_dir / automl.RESULT_FILE).read_text() if as_json
                   else automl.summary_text(outcome.output_dir, run_id))
        return
    from platforms.runs_table import results_json, results_table
    from trainer.results import read_results

    results = read_results(outcome.output_dir)
    # differences are shown beside the comparison when allowed, and refuse it when not
    image = launcher.image_mismatch(base_run, results.image_digest, results.image_id) if base_run is not None else None
    versions = launcher.software_mismatch(base_run, results) if base_run is not None else None
    mismatch = "; ".join(m for m in (image, versions) if m) or None
    refused = "; ".join(m for m, allowed in ((image, allow_image_mismatch), (versions, allow_version_mismatch))
                        if m and not allowed) or None
    rows = launcher.compare(base_run, results) if base_run is not None and not refused else None
    if as_json:
        text = results_json(results, run_id, outcome.output_dir)
        if rows is not None:
            doc = json.loads(text)
            doc["baseline"] = {"run_id": base_run.info.run_id, "image_mismatch": mismatch,
                               "figures": [{"figure": label, "baseline": theirs, "this_run": mine, "ratio": ratio}
                                           for label, theirs, mine, ratio in rows]}
            text = json.dumps(doc, indent=2)
        typer.echo(text)
    else:
        _console(stdout=True).print(results_table(results, run_id, outcome.output_dir))
        if rows is not None:
            _console(stdout=True).print(_baseline_table(base_run, rows, mismatch))
    if refused:
        raise UserError(f"run {run_id} is recorded, but not compared: {refused}")


@app.command()
def runs(
    limit: int = typer.Option(20, "--limit", min=1),
    kind: str = typer.Option("train", "--kind", help="train | load | batch_inference | endpoint | sweep | transfer | service | all"),
    as_json: bool = typer.Option(False, "--json", help="everything, hyperparameters included"),
) -> None:
    """List tracked runs (newest first) from the MLflow store."""
    from platforms.core import tracking
    from platforms.runs_table import runs_table

    if kind not in tracking.RUN_KINDS:
        raise UserError(f"--kind {kind!r} is not a kind of run; choose one of: {', '.join(tracking.RUN_KINDS)}")
    uri = tracking.tracking_uri()
    preflight.tracking_store(uri)
    absent = uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()  # not made by a look
    rows = [] if absent else [tracking.run_summary(r) for r in tracking.list_runs(limit, None if kind == "all" else kind)]
    if as_json:
        typer.echo(tracking.dumps(rows))
    elif not rows:
        what = "runs" if kind == "all" else f"{kind} runs"
        typer.echo(f"no {what} in {uri} yet: `platbench launch {registry.this_machine()} --data DIR` records one (or set "
                   "MLFLOW_TRACKING_URI to another store)", err=True)
    else:
        _console(stdout=True).print(runs_table(rows, uri))


@app.command()
def check(
    run: str = typer.Argument(..., help="a run folder (results.json, metrics.jsonl, train.log) or an MLflow run id "
                                        "or prefix"),
    container: Optional[bool] = typer.Option(None, "--container/--native",
                                             help="whether the run ran in the image (default: from its platform)"),
) -> None:
    """Check a run against the trainer's output contract: one line per problem, exit 1 when there is any.
    A tracked run gets the verdict as a tag; the report leaves out runs that fail."""
    from platforms.bench import compliance

    if not Path(run).exists() and "/" not in run:
        preflight.tracking_store(_tracking_uri())
        preflight.store_exists(_tracking_uri(), f"run {run!r}")
    code = compliance.cli_main(run, container)
    if code:
        raise typer.Exit(code)


@app.command()
def platforms(
    as_json: bool = typer.Option(False, "--json", help="the same as JSON"),
) -> None:
    """The registered platforms: SDK installed (or the extra to install), credentials found on this machine
    (looked up without any network call), and what each lacks, with why."""
    from platforms.core import readiness

    rows = [readiness.of(name) for name in registry.names()]
    typer.echo(json.dumps(rows, indent=1) if as_json else readiness.text(rows))


@app.command()
def load(
    target: str = typer.Argument(..., help="http://HOST:PORT[/path] of a `platbench serve` (default path /invocations), "
                                             f"or PLATFORM:ENDPOINT for a platform with endpoints ({ENDPOINT_PLATFORMS})"),
    requests: int = typer.Option(1000, "--requests", "-n", help="measured requests"),
    concurrency: int = typer.Option(10, "--concurrency", "-c", help="clients in a closed loop (with --rate: most in flight)"),
    rate: Optional[float] = typer.Option(None, "--rate", help="fixed requests/s, open loop, instead of closed-loop clients"),
    warmup: int = typer.Option(20, "--warmup", help="requests sent first and not measured"),
    data: list[Path] = typer.Option([], "--data", help="image files/folders to send (default: synthetic 32×32 PNGs)"),
    fmt: str = typer.Option("image", "--format", help="image: one PNG/JPEG body; json: {\"instances\": [{\"b64\": …}]}"),
    batch: int = typer.Option(1, "--batch", help="images per request (--format json)"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds per attempt (60: the longest a managed endpoint lets one invocation run)"),
    retries: int = typer.Option(2, "--retries", help="retries with exponential backoff on resets/refusals/timeouts/429/5xx-gateway"),
    max_error_rate: Optional[float] = typer.Option(None, "--max-error-rate", help="exit 1 when failed/requests exceeds this"),
    wait_ready: float = typer.Option(0.0, "--wait-ready", help="first poll the health route up to this many seconds"),
    health_path: Optional[str] = typer.Option(None, "--health-path", help="default /ping for /invocations, else the predict path itself"),
    header: list[str] = typer.Option([], "--header", help="extra request header KEY=VALUE"),
    set_: list[str] = typer.Option([], "--set", help="platform endpoint setting KEY=VALUE (region, project, …)"),
    model: Optional[str] = typer.Option(None, "--model", help="model label for the report (default: the server's)"),
    image_digest: Optional[str] = typer.Option(None, "--image-digest", help="image digest for the report (default: the server's)"),
    as_json: bool = typer.Option(False, "--json", help="print the full report (every sample) as JSON"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the JSON report here"),
    track: bool = typer.Option(True, "--track/--no-track", help="log the run to MLflow"),
    platform_name: Optional[str] = typer.Option(None, "--platform", help="platform label for MLflow (default from TARGET)"),
) -> None:
    """Load-test an inference endpoint: latency percentiles, throughput, errors, resets and retries."""
    from platforms.bench import loadtest as load_mod

    if out is not None:
        preflight.output_file(out)
    code = load_mod.cli_main(target, requests, concurrency, rate, warmup, data, fmt, batch, timeout, retries,
                             max_error_rate, wait_ready, health_path, header, set_, model, image_digest, as_json,
                             out, track, platform_name, _console())
    if code:
        raise typer.Exit(code)


@app.command()
def serve(
    run: str = typer.Argument(..., help="a run folder (serves its model/), a model folder (model.pt + model.json), "
                                        "or an MLflow run id or prefix (`platbench runs`)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; 0.0.0.0 opens it to other machines"),
    port: int = typer.Option(8080, "--port", min=1, max=65535),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="most images per forward pass"),
    access_log: bool = typer.Option(False, "--access-log", help="log every request"),
    runtime: str = typer.Option("torch", "--runtime", help="torch | onnx (the model exported to ONNX, run by "
                                "onnxruntime on the CPU: the `onnx` extra)"),
) -> None:
    """Serve a trained model over HTTP until Ctrl-C: POST an image to /invocations, GET /ping; measure it with
    `platbench load http://127.0.0.1:8080` or `platbench predict FOLDER --endpoint http://127.0.0.1:8080`."""
    import shutil
    import tempfile

    from trainer.inference import ModelError, read_card
    from trainer.serve import serve_main

    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
    if runtime not in ("torch", "onnx"):
        raise UserError(f"--runtime {runtime!r}: choose torch or onnx")
    path, tmp = Path(run), None
    if not path.exists():
        if "/" in run or run.startswith("."):
            raise UserError(f"{run}: no such run or model folder")
        preflight.tracking_store(_tracking_uri())
        preflight.store_exists(_tracking_uri(), f"run {run!r}")
        from platforms.core import tracking
        from platforms.core.launch import find_run

        from mlflow.exceptions import MlflowException

        found = find_run(run, "run")
        tmp = Path(tempfile.mkdtemp(prefix="platbench-serve-"))
        try:
            path = Path(tracking.client().download_artifacts(found.info.run_id, "model", str(tmp)))
        except (MlflowException, OSError) as exc:  # no such artifact, or the store's artifacts are unreachable
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(f"run {found.info.run_id[:8]} has no model to serve ({' '.join(str(exc).split())[:200]})") from None
    model_dir = path / "model" if (path / "model").is_dir() and not (path / "model.json").exists() else path
    try:
        read_card(model_dir)
        code = serve_main(["--model-dir", str(model_dir), "--host", host, "--port", str(port), "--device", device,
                           "--max-batch", str(max_batch), "--runtime", runtime, *(["--access-log"] if access_log else [])])
    except ModelError as exc:
        raise UserError(str(exc)) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if code:
        raise typer.Exit(code)


@app.command()
def predict(
    folder: Path = typer.Argument(..., help="folder of PNG/JPEG images (class-named parent folders give labels)"),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="predict in-process with this model (model.pt + model.json)"),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="or through an endpoint: the URL of a `platbench "
                                           f"serve` (http://127.0.0.1:8080) or PLATFORM:NAME ({ENDPOINT_PLATFORMS})"),
    batch_size: int = typer.Option(256, "--batch-size", help="images per forward pass (--model-dir)"),
    concurrency: int = typer.Option(4, "--concurrency", "-c", help="requests in flight (--endpoint)"),
    fmt: str = typer.Option("image", "--format", help="image | json (--endpoint)"),
    batch: int = typer.Option(1, "--batch", help="images per request with --format json (--endpoint)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N images"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto (--model-dir)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write one JSON line per image: path, class, probability, label"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    track: bool = typer.Option(True, "--track/--no-track", help="log the run to MLflow"),
    set_: list[str] = typer.Option([], "--set", help="platform endpoint setting KEY=VALUE"),
) -> None:
    """Batch inference over a folder: seconds per MB, images/s and accuracy, in-process or via an endpoint."""
    from platforms.bench import batch as batch_inference

    if out is not None:
        preflight.output_file(out)
    batch_inference.cli_main(folder, model_dir, endpoint, batch_size, concurrency, fmt, batch, limit, device, out,
                             as_json, track, set_)


@app.command()
def endpoint(
    platform: str = typer.Argument(..., help=ENDPOINT_PLATFORMS),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="the trainer's model directory (model.pt + model.json)"),
    set_: list[str] = typer.Option([], "--set", help="endpoint setting KEY=VALUE (region, bucket, role, image_uri, instance_type, …)"),
    requests: int = typer.Option(1000, "--requests", "-n", help="measured requests through the SDK"),
    concurrency: int = typer.Option(10, "--concurrency", "-c"),
    warmup: int = typer.Option(20, "--warmup"),
    data: list[Path] = typer.Option([], "--data", help="images to send (default: synthetic 32×32 PNGs)"),
    fmt: str = typer.Option("image", "--format", help="image | json"),
    batch: int = typer.Option(1, "--batch", help="images per request with --format json"),
    batch_dir: Optional[Path] = typer.Option(None, "--batch-dir", help="also run batch inference over this folder"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, equivalent commands and cost; create nothing"),
    as_json: bool = typer.Option(False, "--json"),
    track: bool = typer.Option(True, "--track/--no-track", help="log the run to MLflow"),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0.0, help="budget in USD: refuse an endpoint with "
                                            "no price, a budget that cannot cover its creation and teardown, or a plan "
                                            "expected to cost more; delete the endpoint (its teardown's seconds early) "
                                            "before its spend crosses it"),
) -> None:
    """Deploy the model to a cloud endpoint, load-test it through the SDK, and always delete it."""
    from platforms.bench import endpoint as endpoints

    code = endpoints.cli_main(platform, model_dir, set_, requests, concurrency, warmup, data, fmt, batch, batch_dir,
                              dry_run, as_json, track, _console(), max_usd)
    if code:
        raise typer.Exit(code)


@app.command()
def transfer(
    platform: str = typer.Argument(..., help=STORAGE_PLATFORMS),
    data: Path = typer.Option(..., "--data", help="dataset folder (folder layout or CIFAR-10 python batches)"),
    repeats: int = typer.Option(3, "--repeats", min=1, help="cold repeats, each in a fresh prefix; one MLflow run each"),
    batch: int = typer.Option(1024, "--batch", min=1, help="images per timed batch (one object per image)"),
    set_: list[str] = typer.Option([], "--set", help="platform setting KEY=VALUE (bucket, region, prefix, …)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan; create nothing"),
    as_json: bool = typer.Option(False, "--json"),
    track: bool = typer.Option(True, "--track/--no-track", help="log one run per repeat to MLflow"),
) -> None:
    """Upload and download DATA through the platform's object store: s/MiB per batch and whole (sharded)."""
    from platforms.bench import transfer as transfer_mod

    transfer_mod.cli_main(platform, data, repeats, batch, set_, dry_run, as_json, track, _console())


@app.command()
def sweep(
    data: Path = typer.Option(..., "--data", help="dataset folder, the same for every cell"),
    platform: list[str] = typer.Option([], "--platform", "-p", help="platforms (repeat or comma list; default local)"),
    model: list[str] = typer.Option([], "--model", "-m", help="model presets (repeat or comma list; default small)"),
    per_class: list[str] = typer.Option([], "--per-class", help="training images per class (comma list; 'all' = every "
                                                                  "image; default 5,20,80,320,1280)"),
    seeds: list[str] = typer.Option([], "--seeds", help="seeds (comma list; default: as many as the report's "
                                                         "tests need to call a difference at all: 0–3 for up to "
                                                         "two platforms, 0–4 for three or four)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="default: each preset's"),
    target_accuracy: Optional[float] = typer.Option(None, "--target-accuracy", min=0.0, max=1.0,
                                                    help="record seconds (and cost) to reach this test accuracy"),
    hp: list[str] = typer.Option([], "--hp", help="trainer hyperparameter KEY=VALUE for every cell"),
    set_: list[str] = typer.Option([], "--set", help="platform setting PLATFORM:KEY=VALUE"),
    concurrency: list[str] = typer.Option([], "--concurrency", "-c",
                                          help="N jobs at once in all (default 4) and/or PLATFORM=N; local defaults to 1 "
                                               "(one device: concurrent runs would distort each other's timings)"),
    name: Optional[str] = typer.Option(None, "--name", help="sweep name (default: a hash of its definition, so the "
                                                              "same command resumes the same sweep)"),
    out: Optional[Path] = typer.Option(None, "--out", help="outputs per cell (default runs/sweeps/NAME)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the cells and what would happen to each; run nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the cells' outcomes as JSON"),
    executor: str = typer.Option("process", "--executor", help="process (worker processes here) | ray (the Ray "
                                 "cluster of this machine) | ray://HOST:PORT (needs platbench[ray])"),
    devices: Optional[int] = typer.Option(None, "--devices", min=1, help="devices for local cells, one cell each "
                                          "(default: every visible GPU, else 1)"),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0.0, help="budget in USD: refuse a plan whose "
                                            "upper bound (price × max_run) exceeds it; cancel a job before its "
                                            "spend crosses it"),
) -> None:
    """Run a matrix: platforms × models × images per class × seeds, under one MLflow parent run.

    Resumable: run the same command again to skip finished cells, re-attach to running ones and launch the rest."""
    from platforms.bench import sweep as sweep_mod

    code = sweep_mod.cli_main(data, platform, model, per_class, seeds, epochs, target_accuracy, hp, set_, concurrency,
                              name, out, dry_run, as_json, _console(), executor=executor, devices=devices,
                              max_usd=max_usd)
    if code:
        raise typer.Exit(code)


@app.command()
def report(
    out: Path = typer.Option(Path("report"), "--out", help="folder for report.md, index.html and figures/"),
    sweep: list[str] = typer.Option([], "--sweep", help="only the runs of these sweeps (default: every run)"),
    root: Optional[Path] = typer.Option(None, "--root", help="project root with scoring.yaml and scenarios/ "
                                                               "(default: found from here)"),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0001, max=0.5, help="significance level of the tests"),
) -> None:
    """Render the comparison (report.md + a self-contained, offline index.html) from the MLflow runs."""
    from platforms.report import cli_main as report_main

    preflight.output_folder(out)
    preflight.tracking_store(_tracking_uri())
    report_main(out, sweep, root, alpha, _console())


def _study_names() -> list[str]:
    from platforms.reproduce import study_names

    return study_names()


@app.command()
def reproduce(
    study: str = typer.Argument(..., help="a study: " + " | ".join(_study_names())
                                          + " (platforms/reproduce/studies/)"),
    platform: list[str] = typer.Option([], "--platform", "-p", help="platforms (repeat or comma list; default local)"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder (default: the bundled digits)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and its cost; create nothing"),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0.0, help="budget in USD for the whole plan"),
    full: bool = typer.Option(False, "--full", help="the study's own ladder and epochs (default: a small local version)"),
    set_: list[str] = typer.Option([], "--set", help="platform setting PLATFORM:KEY=VALUE"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the study page (default runs/reproduce/STUDY)"),
) -> None:
    """Rerun a published study by its own protocol and write its page: each published figure beside platbench's."""
    from platforms.reproduce_cli import cli_main as reproduce_main

    code = reproduce_main(study, platform, data, dry_run, max_usd, full, set_, out, _console())
    if code:
        raise typer.Exit(code)


def _tracking_uri() -> str:
    from platforms.core.tracking import tracking_uri

    return tracking_uri()


def _baseline_table(base_run, rows, mismatch):
    from rich.table import Table

    title = f"against baseline {base_run.info.run_id[:8]} ({base_run.data.tags.get('platbench.platform', '?')})"
    t = Table(title=title, caption=f"[bold red]images or software differ[/]: {mismatch}" if mismatch else "same image and software")
    for col in ("figure", "baseline", "this run", "this / baseline"):
        t.add_column(col, justify="right" if col != "figure" else "left")
    for label, theirs, mine, ratio in rows:
        t.add_row(label, "-" if theirs is None else f"{theirs:.4g}", "-" if mine is None else f"{mine:.4g}",
                  "-" if ratio is None else f"{ratio:.3f}×")
    return t


def _console(stdout: bool = False):
    from rich.console import Console

    console = Console(stderr=not stdout)
    if not console.is_terminal:  # pipes and CI logs: don't squeeze tables into rich's default 80 columns
        console.width = 160
    return console


def main() -> None:
    """Console-script entry: a user error (a UserError, or click's refusal of an option or command) becomes
    one line on stderr and exit code 2; any other error (a cloud API refusing a step, a bug) one line naming
    its type and exit code 1. PLATBENCH_TRACEBACK=1 lets it through with its traceback, for a bug report."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer's own click

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a bare group: its help, as before
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
        text = " ".join(exc.format_message().split())
        typer.echo(f"platbench: error: {text}{where}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("platbench: aborted", err=True)
        sys.exit(130)
    except UserError as exc:
        typer.echo(f"platbench: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("PLATBENCH_TRACEBACK"):
            raise
        text = " ".join(str(exc).split()) or "no message"
        typer.echo(f"platbench: error: {type(exc).__name__}: {text[:600]} (PLATBENCH_TRACEBACK=1 shows where)",
                   err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

from platforms.scorecard.cli import app as scenario_app  # noqa: E402
app.add_typer(scenario_app, name="scenario")
from platforms.image.cli import app as image_app  # noqa: E402
app.add_typer(image_app, name="image")
from platforms.prices.cli import app as prices_app  # noqa: E402
app.add_typer(prices_app, name="prices")


def _first_sentence(doc: str) -> str:
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[:end + 1]


def _whole_summaries(typer_app: typer.Typer) -> None:
    """click cuts a command's summary in `--help` at about 45 characters, mid-sentence ("SDK installed (or
    the extra to..."): each command and group gets its whole first sentence instead."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc and not info.short_help:
            info.short_help = _first_sentence(doc)
    for group in typer_app.registered_groups:
        doc = group.help or group.typer_instance.info.help
        if isinstance(doc, str) and not group.short_help:
            group.short_help = _first_sentence(doc)
        _whole_summaries(group.typer_instance)


_whole_summaries(app)
