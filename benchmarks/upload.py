"""Upload benchmark: a CIFAR-shaped tree of 60,000 PNGs staged to an S3 endpoint by platbench (sharded,
content-addressed) versus `aws s3 sync` of the same folder to the same endpoint.

    .venv/bin/python benchmarks/upload.py [--files 60000] [--aws PATH] [--endpoint URL] [--naive]
    .venv/bin/python benchmarks/upload.py --files 2000 --transfer 3   # `platbench transfer` only, N repeats

Without --endpoint it starts moto's S3 server (`moto_server`, from the dev extra) on 127.0.0.1 in its own
process, so the server does not share a GIL with either client. Goals (issue 4): platbench ≥ 10× faster
than `aws s3 sync`; a second, unchanged upload ≈ 0 s. Prints the figures and the ratios; --json writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_tree(out: Path, files: int, seed: int = 0) -> tuple[int, int]:
    """train/<class>/*.png (5/6) and test/<class>/*.png (1/6), 32×32 RGB, CIFAR-like sizes (~2.3 KB)."""
    import numpy as np
    from PIL import Image

    marker = out / f".complete-{files}-{seed}"
    if marker.is_file():
        paths = [p for p in out.rglob("*.png")]
        return len(paths), sum(p.stat().st_size for p in paths)
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    per_class_test = max(1, files // 6 // len(CLASSES))
    per_class_train = max(1, (files - per_class_test * len(CLASSES)) // len(CLASSES))
    n = total = 0
    yy, xx = np.mgrid[0:32, 0:32]
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for c, name in enumerate(CLASSES):
            d = out / split / name
            d.mkdir(parents=True)
            for i in range(count):
                base = rng.integers(0, 256, size=3)
                grad = (xx * rng.integers(-4, 5) + yy * rng.integers(-4, 5))[..., None]
                img = np.clip(base + grad + rng.normal(0, 18, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                p = d / f"{i:05d}.png"
                Image.fromarray(img).save(p, optimize=False)
                n += 1
                total += p.stat().st_size
    marker.write_text("ok")
    return n, total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):  # bounded: 10 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def transfer(tree: Path, bucket: str, repeats: int) -> dict:
    """`platbench transfer sagemaker` through the CLI, as a user runs it; prints each repeat's figures."""
    import statistics

    cmd = [str(Path(sys.executable).with_name("platbench")), "transfer", "sagemaker", "--data", str(tree),
           "--repeats", str(repeats), "--set", f"bucket={bucket}", "--json", "--no-track"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr.strip())
    rows = [r["metrics"] for r in json.loads(proc.stdout)["repeats"]]
    print(f"platbench transfer: {repeats} cold repeats in {time.perf_counter() - t:.1f} s")
    names = ["batch_upload_s_per_mb_median", "batch_upload_s_per_mb_iqr", "batch_upload_s_per_mb_min",
             "batch_upload_s_per_mb_max", "batch_download_s_per_mb_median", "batch_download_s_per_mb_iqr",
             "batch_download_s_per_mb_min", "batch_download_s_per_mb_max", "upload_s_per_mb", "download_s_per_mb",
             "upload_seconds", "download_seconds", "batches"]
    for i, m in enumerate(rows, 1):
        print(f"  repeat {i}: " + ", ".join(f"{n} {m[n]:.4f}" for n in names))
    medians = {n: statistics.median(m[n] for m in rows) for n in names}
    print("  median of repeats: " + ", ".join(f"{n} {v:.4f}" for n, v in medians.items()))
    return {"repeats": rows, "median": medians}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=60_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "platbench-upload-bench")
    ap.add_argument("--endpoint", help="S3 endpoint URL (default: start moto_server on 127.0.0.1)")
    ap.add_argument("--aws", default=shutil.which("aws") or "/tmp/awscli-venv/bin/aws",
                    help="the AWS CLI to compare with (default: aws on PATH)")
    ap.add_argument("--skip-aws", action="store_true", help="measure platbench only")
    ap.add_argument("--naive", action="store_true", help="also time platbench's naive per-file upload")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--transfer", type=int, metavar="REPEATS",
                    help="run `platbench transfer` (cold batches of 1,024 images + whole sharded) instead")
    args = ap.parse_args()

    tree = args.dir / f"cifar-shaped-{args.files}"
    t0 = time.perf_counter()
    n, size = make_tree(tree, args.files)
    print(f"dataset: {n} PNGs, {size / 2**20:.1f} MiB in {tree} ({time.perf_counter() - t0:.1f} s to make or find)")

    moto = None
    endpoint = args.endpoint
    if endpoint is None:
        moto, endpoint = start_moto()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
           "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
           "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    os.environ.update(env)
    cache = Path(tempfile.mkdtemp(prefix="platbench-bench-cache-"))
    os.environ["PLATBENCH_CACHE"] = str(cache)  # a cold hash cache: the first upload hashes every file
    figures: dict = {"files": n, "mib": size / 2**20, "endpoint": endpoint}
    try:
        from platforms.clouds.aws.s3 import S3Store
        from platforms.core.staging import upload

        bucket = f"bench-{int(time.time())}"
        store = S3Store(bucket)
        store.client.create_bucket(Bucket=bucket)
        if args.transfer:
            figures["transfer"] = transfer(tree, bucket, args.transfer)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2))
            return 0

        first = upload(tree, store, "sharded", "platbench")
        figures["platbench_first_s"] = first.figures["upload_seconds"]
        figures["platbench_first_objects"] = first.figures["upload_objects_sent"]
        print(f"platbench sharded, first upload:  {first.figures['upload_seconds']:8.2f} s  "
              f"({first.figures['upload_objects_sent']} objects, {first.figures['upload_bytes_sent'] / 2**20:.1f} MiB sent, "
              f"{first.figures['upload_retries']} retries)")
        second = upload(tree, store, "sharded", "platbench")
        figures["platbench_second_s"] = second.figures["upload_seconds"]
        print(f"platbench sharded, second upload: {second.figures['upload_seconds']:8.2f} s  "
              f"({second.figures['upload_objects_sent']} objects sent, {second.figures['upload_requests']} requests)")
        if args.naive:
            naive = upload(tree, store, "naive", "platbench")
            figures["platbench_naive_s"] = naive.figures["upload_seconds"]
            print(f"platbench naive per-file upload:  {naive.figures['upload_seconds']:8.2f} s  ({n} objects)")
        if not args.skip_aws:
            version = subprocess.run([args.aws, "--version"], capture_output=True, text=True, env=env)
            figures["aws_cli"] = (version.stdout or version.stderr).strip()
            t = time.perf_counter()
            done = subprocess.run([args.aws, "s3", "sync", "--only-show-errors", "--endpoint-url", endpoint,
                                   str(tree), f"s3://{bucket}/aws-sync/"], env=env)
            figures["aws_sync_s"] = time.perf_counter() - t
            if done.returncode != 0:
                print(f"aws s3 sync exited {done.returncode}", file=sys.stderr)
            print(f"aws s3 sync ({figures['aws_cli'].split()[0]}):      {figures['aws_sync_s']:8.2f} s  ({n} objects)")
            t = time.perf_counter()
            subprocess.run([args.aws, "s3", "sync", "--only-show-errors", "--endpoint-url", endpoint,
                            str(tree), f"s3://{bucket}/aws-sync/"], env=env)
            figures["aws_sync_second_s"] = time.perf_counter() - t
            print(f"aws s3 sync, second (unchanged):  {figures['aws_sync_second_s']:8.2f} s")
            figures["ratio_first"] = figures["aws_sync_s"] / figures["platbench_first_s"]
            figures["ratio_second"] = figures["aws_sync_second_s"] / max(figures["platbench_second_s"], 1e-9)
            print(f"ratio, first upload:  platbench is {figures['ratio_first']:.1f}× faster than aws s3 sync "
                  f"(goal ≥ 10×: {'met' if figures['ratio_first'] >= 10 else 'NOT met'})")
            print(f"ratio, second upload: platbench is {figures['ratio_second']:.1f}× faster "
                  f"(platbench {figures['platbench_second_s']:.2f} s; goal ≈ 0 s)")
    finally:
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                moto.kill()
        shutil.rmtree(cache, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
