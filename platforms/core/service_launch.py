"""`platbench launch SERVICE` for a managed AutoML service (platforms/core/service.py): the same steps and the
same record for every service.

prepare the data (nested --per-class subset, 80/20 or all where the service cross-validates) → check →
upload (s/MiB) → train (the service's own timestamps) → deploy → evaluate the WHOLE test set through the
deployed model (accuracy, top-5 where the service gives more than one label, per-class accuracy, confusion
matrix) → load test through the service's SDK with the load tool (platforms/core/service_eval.py; the study's
figure: 1,000 requests at 10 concurrent, latency distribution, resets and 429s retried with backoff) →
delete everything, always (on error and on Ctrl-C too, with Ctrl-C held off while the deletes run).

One MLflow run (tag platbench.kind = service) holds it all: final_test_accuracy and seconds_train under the
names training runs use, so sweeps and reports read both kinds alike, plus upload, deployment, load and cost
figures; the whole record (every prediction and load sample) is the artifact service.json, also written to
the run's output folder."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from platforms.core import registry, tracking
from platforms.core.api import Job, Outcome, render_plan
from platforms.core.teardown import sigint_held, sigint_interrupts
from platforms.core.load_report import MLFLOW_METRICS
from platforms.core.service import Service, prepare
from platforms.core.service_eval import evaluate, failures, load_test
from platforms.errors import UserError

KIND = "service"
RESULT_FILE = "service.json"
SCHEMA = "platbench.service/1"


def service_for(name: str, settings: dict[str, str]) -> Service:
    spec = registry.spec(name)
    if spec.not_measurable:
        raise UserError(f"{name} is not measurable: {spec.not_measurable}")
    return spec.load(spec.launcher)(settings)


def check_job(name: str, job: Job, settings: dict[str, str]) -> Service:
    """Everything that can be refused before anything is created: settings, options, data, credentials."""
    svc = service_for(name, settings)
    svc.check(job, prepare(job, svc.cross_validates))
    return svc


def plan_text(name: str, job: Job, settings: dict[str, str]) -> str:
    spec = registry.spec(name)
    if spec.not_measurable:  # listed with its reason; nothing could be created, so nothing is planned
        if settings:
            raise UserError(f"{name} takes no settings: it is not measurable ({spec.not_measurable})")
        lacked = "; ".join(f"{f.value} ({why})" for f, why in spec.lacks.items())
        return (f"Plan for {name} ({spec.title}) — nothing is created: not measurable: {spec.not_measurable}\n"
                f"Not available on this platform: {lacked}")
    svc = service_for(name, settings)
    needs = svc.preflight(job)
    split = "all selected images (the service cross-validates)" if svc.cross_validates else "80/20 train/validation"
    head = [f"Plan for {svc.name} ({svc.title}) — nothing is created:",
            f"    data: {job.data}, {'every training image' if job.per_class is None else f'{job.per_class} per class'}"
            f" (seed {job.seed}), {split}; the whole test set evaluated through the deployed model"]
    return render_plan(head, svc.plan(job), svc.lacks, needs)


# ------------------------------------------------------------------------------------------ the run
def launch_service(name: str, job: Job, settings: dict[str, str], progress) -> tuple[Outcome, str]:
    """Run the service end to end; returns the outcome and the MLflow run id. Everything the run created is
    deleted before this returns or raises."""
    svc = service_for(name, settings)
    data = prepare(job, svc.cross_validates)
    svc.check(job, data)
    cfg = svc.parsed()
    say = progress.print
    params = {"per_class": job.per_class, "seed": job.seed, "data": str(job.data), **svc.settings}
    tags = {tracking.Tag.PLATFORM: svc.name, tracking.Tag.MODEL: "chosen by the service", tracking.Tag.KIND: KIND,
            "platbench.split": data.split, **svc.run_tags(job)}
    job.out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"schema": SCHEMA, "platform": svc.name, "title": svc.title, "split": data.split,
                           "classes": data.classes, "images": {"train": len(data.train), "val": len(data.val),
                                                               "test": len(data.test)},
                           "per_label": data.per_label(), "per_class": job.per_class, "seed": job.seed}
    with tracking.tracked_run(f"{svc.name}-service", params, tags) as run:
        t0 = time.time()
        trained = None
        deployed_at: Optional[float] = None
        try:
            with sigint_interrupts():
                progress.phase("uploading")
                t = time.perf_counter()
                figures = svc.upload(data, say)
                seconds = time.perf_counter() - t
                mb = data.upload_bytes() / 2**20  # MiB, as every transfer figure (staging, transfer)
                doc["upload"] = {"seconds": seconds, "mb": mb, "s_per_mb": seconds / mb if mb else None,
                                 "images": len(data.uploaded), **figures}
                progress.phase("training (by the service)")
                trained = svc.train(data, say)
                doc["training"] = trained.__dict__
                progress.phase("deploying")
                deployed_at = time.time()
                svc.deploy(say)
                doc["deploy_seconds"] = time.time() - deployed_at
                progress.phase("evaluating the test set")
                doc["evaluation"] = evaluate(svc, data, cfg.concurrency, cfg.timeout, cfg.retries)
                if not doc["evaluation"]["answered"]:  # nothing measured: a failed run, not an accuracy of 0
                    raise UserError(f"{svc.name} answered none of the {len(data.test)} test images "
                                    f"({failures(doc['evaluation']['errors'])}); everything is deleted")
                progress.phase(f"load test: {cfg.requests} requests at {cfg.concurrency} concurrent")
                doc["load"] = load_test(svc, data, cfg)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the service refused or failed mid-run: one line, the traceback on disk
            import traceback

            (job.out / "error.txt").write_text(traceback.format_exc())
            raise UserError(f"{svc.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                            f"(traceback in {job.out / 'error.txt'}; what was deleted is listed above)") from None
        finally:
            with sigint_held():
                say(f"deleting everything {svc.name} holds for this run")
                t = time.perf_counter()
                doc["deleted"] = svc.teardown()
                for line in doc["deleted"]:
                    say(f"  deleted {line}" if "NOT deleted" not in line else f"  {line}")
                doc["teardown_seconds"] = time.perf_counter() - t
                doc["deployed_seconds"] = time.time() - deployed_at if deployed_at is not None else None
        cost = svc.cost(trained)
        requests = doc["evaluation"]["images"] + doc["load"]["summary"]["requests"] + doc["load"]["warmup"]["requests"]
        cost_metrics = cost.metrics(doc["deployed_seconds"], requests) if cost else {}
        doc["cost"] = {**cost_metrics, "basis": cost.basis if cost else "no price in the table"}
        ev, load = doc["evaluation"], doc["load"]
        flat = {**load["summary"], **load["summary"]["latency_ms"]}
        metrics = {
            "final_test_accuracy": ev["accuracy"], "final_test_top5_accuracy": ev["top5_accuracy"],
            "seconds_train": trained.seconds, "billed_seconds": trained.billed_seconds,
            "seconds_wall": time.time() - t0, "upload_seconds": doc["upload"]["seconds"],
            "upload_mb": doc["upload"]["mb"], "upload_s_per_mb": doc["upload"]["s_per_mb"],
            "deploy_seconds": doc["deploy_seconds"], "teardown_seconds": doc["teardown_seconds"],
            "eval_seconds": ev["seconds"], "eval_answered": ev["answered"],
            "images_train": len(data.train), "images_val": len(data.val), "images_test": len(data.test),
            **{f"service_{k}": v for k, v in trained.service_metrics.items()},
            **{name: flat.get(key) for name, key in MLFLOW_METRICS.items()},
            "load_resets": load["errors"]["resets"], "load_http_429": load["errors"]["by_status"].get("429", 0),
            **{k: v for k, v in cost_metrics.items() if v is not None},
        }
        run.metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.tags({tracking.Tag.PRICE_SOURCE: doc["cost"]["basis"], "platbench.training_time_source": trained.source,
                  **{f"platbench.{k}": v for k, v in doc["upload"].items() if isinstance(v, str)}})
        path = job.out / RESULT_FILE
        path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        run.client.log_artifact(run.run_id, str(path))
        run.tags({tracking.Tag.STATUS: "finished"})
        run.end("FINISHED")
        return Outcome(status="finished", output_dir=job.out, metrics=metrics, cost_usd=cost_metrics.get("cost_usd"),
                       billed_seconds=trained.billed_seconds), run.run_id


def summary_text(out: Path, run_id: str) -> str:
    """What `platbench launch SERVICE` prints: the headline figures of service.json."""
    doc = json.loads((Path(out) / RESULT_FILE).read_text())
    ev, load, up, tr, cost = doc["evaluation"], doc["load"], doc["upload"], doc["training"], doc["cost"]
    lat = load["summary"]["latency_ms"]

    def f(v, fmt="{:.4f}"):
        return "-" if v is None else fmt.format(v)

    per = ", ".join(f"{c} {f(a, '{:.2f}')}" for c, a in ev["per_class_accuracy"].items())
    lines = [
        f"{doc['platform']} ({doc['title']})",
        f"  data:        {doc['images']['train']} train / {doc['images']['val']} validation / "
        f"{doc['images']['test']} test images; {doc['split']}",
        f"  upload:      {f(up['mb'], '{:.2f}')} MiB in {f(up['seconds'], '{:.2f}')} s ({f(up['s_per_mb'], '{:.3f}')} s/MiB)",
        f"  training:    {f(tr['seconds'], '{:.1f}')} s by the service's clock ({tr['source']})",
        f"  deploy:      {f(doc['deploy_seconds'], '{:.1f}')} s",
        f"  test set:    accuracy {f(ev['accuracy'])}, top-5 {f(ev['top5_accuracy'])}, "
        f"{ev['answered']}/{ev['images']} answered",
        f"  per class:   {per}",
        f"  latency:     p50 {f(lat['p50'], '{:.1f}')} ms, p90 {f(lat['p90'], '{:.1f}')} ms, "
        f"p99 {f(lat['p99'], '{:.1f}')} ms",
        f"  {load['summary']['requests']} requests at {load['settings']['concurrency']} concurrent: "
        f"{f(load['summary']['seconds'], '{:.1f}')} s, {load['summary']['failed']} failed, "
        f"{load['errors']['resets']} resets, {load['errors']['by_status'].get('429', 0)} × 429, "
        f"{load['retries']['total']} retries",
        f"  cost:        training ${f(cost.get('cost_training_usd'), '{:.4f}')}; "
        + (f"deployed ${f(cost.get('endpoint_usd_per_hour'), '{:.2f}')}/hour, ${f(cost.get('endpoint_usd_per_day'), '{:.2f}')}"
           f"/day, ${f(cost.get('endpoint_usd_per_month'), '{:.2f}')}/month, "
           f"${f(cost.get('endpoint_usd_per_year'), '{:.2f}')}/year"
           if cost.get("endpoint_usd_per_hour") is not None else
           f"${f(cost.get('usd_per_request'), '{:.5f}')} per request")
        + f"; this run ${f(cost.get('cost_usd'), '{:.4f}')} ({cost['basis']})",
        f"  deleted:     {'; '.join(doc['deleted']) or 'nothing was created'}",
        f"  outputs:     {out}   MLflow run {run_id}",
    ]
    return "\n".join(lines)
