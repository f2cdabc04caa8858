"""Throughput and latency of `serve` (micro-batching) against a plain one-request-at-a-time FastAPI server
of the same model on the same machine, driven by the same load tool (platforms/bench/loadtest.py).

    .venv/bin/python benchmarks/serve_throughput.py                       # preset small, 1,000 requests at 10
    .venv/bin/python benchmarks/serve_throughput.py --model-dir runs/X/model --concurrency 1,10 --repeats 5

The baseline is what a first FastAPI server of a PyTorch model looks like: an `async def` route that
decodes the image and runs the model on it inline, so requests are answered strictly one at a time, one
image per forward pass. Both servers run under the same uvicorn (uvloop + httptools when installed),
load the model with the same `trainer.inference.load_model`, decode with the same function, and use the
same torch thread count. The servers alternate (A B A B …) across repeats so drift on a shared machine
hits both; the medians over repeats are reported, then the ratios serve / baseline.

Without --model-dir the model is the chosen preset with untrained weights and CIFAR-10's card: the
compute per image is the same as a trained one's, which is what throughput measures."""
# No `from __future__ import annotations`: FastAPI reads the route's annotations as real classes.
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]


# ----------------------------------------------------------------------------------- the baseline
def baseline_app(model_dir: Path):
    """The plain FastAPI server: one request at a time, one image per forward pass."""
    import torch
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse

    from trainer.inference import ImageError, decode_image, default_threads, load_model, warm_up

    torch.set_num_threads(int(os.environ.get("PLATBENCH_SERVE_THREADS") or default_threads()))
    model = load_model(model_dir, "cpu")
    warm_up(model, (1,))
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    async def invocations(request: Request):
        body = await request.body()
        try:
            image = decode_image(body, model.image_size)
        except ImageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return {"predictions": model.predict(image[None], top_k=5)}

    return app


def run_baseline(model_dir: Path, port: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app(model_dir), host="127.0.0.1", port=port, access_log=False, log_level="warning")


# ----------------------------------------------------------------------------------- harness
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def untrained_model(preset: str, dest: Path) -> Path:
    import torch

    from trainer.models import get_preset
    from trainer.train import save_model

    torch.manual_seed(0)
    net = get_preset(preset).build(len(CIFAR10_CLASSES))
    card = {"preset": preset, "classes": CIFAR10_CLASSES, "num_classes": len(CIFAR10_CLASSES), "image_size": 32,
            "mean": CIFAR10_MEAN, "std": CIFAR10_STD, "tta": get_preset(preset).hyperparameters.tta,
            "dataset_fingerprint": "untrained", "channels": "RGB"}
    save_model(dest, net, card)
    return dest


def start(kind: str, model_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    py = sys.executable
    if kind == "serve":
        cmd = [py, "-m", "trainer", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [py, str(Path(__file__).resolve()), "--baseline-server", "--model-dir", str(model_dir),
               "--port", str(port)]
    log = log_path.open("w")
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(port: int, payloads, requests: int, concurrency: int, warmup: int) -> dict:
    from platforms.bench.loadtest import parse_target, run_load
    from platforms.core.load_report import summarize
    from platforms.core.load_runner import LoadSettings

    s = LoadSettings(requests=requests, concurrency=concurrency, warmup=warmup, retries=0, wait_ready_s=120)
    data = run_load(parse_target(f"127.0.0.1:{port}"), payloads, s)
    out = summarize(data)
    out["latency_samples_ms"] = [round(x.latency_ms, 3) for x in data.samples]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, help="a trained model (default: an untrained --preset)")
    ap.add_argument("--preset", default="small", help="small | fast | resnet18 (without --model-dir)")
    ap.add_argument("--data", type=Path, help="images to send (default: 64 synthetic 32×32 PNGs)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", default="10", help="comma-separated, e.g. 1,10")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write every figure (and every latency sample) here")
    ap.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_server:
        run_baseline(args.model_dir, args.port)
        return 0

    from platforms.bench.load_payloads import load_images, make_payloads, synthetic_images

    work = Path(tempfile.mkdtemp(prefix="platbench-serve-bench-"))
    model_dir = args.model_dir or untrained_model(args.preset, work / "model")
    images = load_images([args.data], 64) if args.data else [(b, "image/png") for b in synthetic_images(64)]
    payloads = make_payloads(images, "image", 1)
    levels = [int(c) for c in args.concurrency.split(",")]
    card = json.loads((model_dir / "model.json").read_text())
    print(f"model {card['preset']} ({'trained' if args.model_dir else 'untrained weights'}), "
          f"{len(payloads)} distinct PNGs of {statistics.mean(len(p.body) for p in payloads):.0f} bytes, "
          f"{args.requests} requests per run, {args.repeats} repeats, {os.cpu_count()} CPUs", flush=True)

    kinds = ("serve", "baseline")
    results: dict = {k: {c: [] for c in levels} for k in kinds}
    for rep in range(args.repeats):
        for kind in (kinds if rep % 2 == 0 else kinds[::-1]):
            port = free_port()
            proc = start(kind, model_dir, port, work / f"{kind}-{rep}.log")
            try:
                for c in levels:
                    r = measure(port, payloads, args.requests, c, args.warmup)
                    results[kind][c].append(r)
                    s = r["summary"]
                    print(f"  repeat {rep + 1} {kind:8s} c={c:<3d} {s['requests_per_s']:8.1f} req/s  "
                          f"p50 {s['latency_ms']['p50']:7.2f} ms  p99 {s['latency_ms']['p99']:7.2f} ms  "
                          f"errors {s['failed']}  server batch {r['server_batch']['mean'] or 1:.1f}", flush=True)
            finally:
                stop(proc)

    def med(kind: str, c: int, key: str) -> float:
        vals = [r["summary"]["requests_per_s"] if key == "rps" else r["summary"]["latency_ms"][key]
                for r in results[kind][c]]
        return statistics.median(vals)

    print()
    print(f"{'concurrency':>11s} {'server':>10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    table = []
    for c in levels:
        for kind in kinds:
            row = {"concurrency": c, "server": kind, "requests_per_s": med(kind, c, "rps"),
                   "p50_ms": med(kind, c, "p50"), "p99_ms": med(kind, c, "p99")}
            table.append(row)
            print(f"{c:>11d} {kind:>10s} {row['requests_per_s']:9.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}")
    print()
    ratios = {}
    for c in levels:
        ratios[c] = {"throughput": med("serve", c, "rps") / med("baseline", c, "rps"),
                     "p50_baseline_over_serve": med("baseline", c, "p50") / med("serve", c, "p50"),
                     "p99_baseline_over_serve": med("baseline", c, "p99") / med("serve", c, "p99")}
        print(f"c={c}: serve throughput {ratios[c]['throughput']:.2f}× the baseline's; "
              f"baseline p50 {ratios[c]['p50_baseline_over_serve']:.2f}× and p99 "
              f"{ratios[c]['p99_baseline_over_serve']:.2f}× serve's")
    if args.json:
        args.json.write_text(json.dumps({"model": card["preset"], "trained": bool(args.model_dir), "table": table,
                                         "ratios": ratios, "runs": results}, indent=1))
    errors = sum(r["summary"]["failed"] for k in kinds for c in levels for r in results[k][c])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
