"""Sweep executor overhead per cell: submit → the moment the cell's worker is ready to start the trainer,
Ray executor against the in-process (worker process) executor, measured in the same run. Goal: Ray adds
≤ 1 s per cell.

    ray start --head --node-ip-address 127.0.0.1 --num-cpus 2 --disable-usage-stats
    .venv/bin/python -m benchmarks.ray_overhead --address ray [--cells 5] [--gap 10]
    ray stop

(`ray start` from the repository with PYTHONPATH=. so its workers can import this probe.)

Each cell is a probe worker (`python -m benchmarks.ray_overhead probe CELL_DIR`) that imports what a sweep
worker imports before it trains (platforms.core.launch, trainer.train: torch, Lightning, MLflow) and writes
the time; both executors start the same probe through their real `start` (a Ray cell asks for a whole
node's CPUs, as a local training cell does). Cells run one after another, executors in alternation, so
machine noise hits both alike; the imports are in both figures, the difference is the executor's.
Every Ray cell gets a fresh worker process (max_calls=1), which Ray starts again after the last one exits:
--gap waits that long between cells, as the minutes a real cell trains would."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

STARTED = "probe-started"


def probe(cell_dir: Path) -> int:
    import platforms.core.launch  # noqa: F401 - what a sweep worker imports before the trainer starts
    import trainer.train  # noqa: F401

    (cell_dir / STARTED).write_text(repr(time.time()))
    return 0


def one_cell(executor, root: Path, i: int) -> float:
    import sys as _sys

    from platforms.bench.executors import JOB_FILE

    d = root / f"{executor.name}-{i}"
    d.mkdir(parents=True)
    (d / JOB_FILE).write_text("{}\n")
    with open(d / "launch.log", "a") as log:
        submitted = time.time()
        handle = executor.start([_sys.executable, "-m", "benchmarks.ray_overhead", "probe", str(d)], d, True, log)
    deadline = time.time() + 600
    while handle.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if not (d / STARTED).exists():
        raise SystemExit(f"{executor.name} cell {i} did not start: see {d / 'launch.log'}")
    return float((d / STARTED).read_text()) - submitted


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        return probe(Path(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default="ray", help="ray (this machine's cluster) or ray://HOST:PORT")
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between cells (a real cell trains for minutes)")
    ns = ap.parse_args(argv)
    from platforms.bench.executors import ProcessExecutor, make

    executors = [ProcessExecutor(), make(ns.address if ns.address.startswith("ray") else "ray")]
    root = Path(tempfile.mkdtemp(prefix="platbench-ray-overhead-"))
    one_cell(executors[1], root, -1)  # the first Ray task also starts the cluster's worker pool: not counted
    seconds: dict[str, list[float]] = {e.name: [] for e in executors}
    for i in range(ns.cells):
        for e in executors:
            time.sleep(ns.gap)
            seconds[e.name].append(one_cell(e, root, i))
    base, ray = statistics.median(seconds["process"]), statistics.median(seconds["ray"])
    for name, values in seconds.items():
        print(f"{name:8s} submit → trainer start: median {statistics.median(values):6.2f} s  "
              f"min {min(values):6.2f} s  max {max(values):6.2f} s  (n={len(values)})")
    print(f"ray / process: ×{ray / base:.2f}; Ray adds {ray - base:+.2f} s per cell (goal ≤ 1 s; gap {ns.gap:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
