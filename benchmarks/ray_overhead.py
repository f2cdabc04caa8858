"""Sweep executor overhead per cell: submit → the moment the cell's worker is ready to start the trainer,
Ray executor against the in-process (worker process) executor, measured in the same run. Goal: Ray adds
≤ 1 s per cell.

    ray start --head --node-ip-address 127.0.0.1 --num-cpus 2 --disable-usage-stats
    RAY_ADDRESS=127.0.0.1:6379 .venv/bin/python -m benchmarks.ray_overhead --address ray [--cells 5] [--gap 10]

Each cell is a probe (`python benchmarks/ray_overhead.py probe CELL_DIR`, by path, so a Ray worker started
anywhere finds it) that imports what a sweep worker imports before the trainer's `run` starts
(platforms.core.launch, trainer.train, MLflow; torch and Lightning are imported inside `run`, the same
in both executors) and writes the time. Both executors start the same probe through their real `start`
(a Ray cell asks for a whole node's CPUs, as a local training cell does). Cells run one after another,
executors in alternation, so machine noise hits both alike; --gap waits between cells, as the minutes a
real cell trains would.

Then the parts of a Ray cell, each measured alone: scheduling a task on a warm (reused) worker, a task on
a fresh worker (max_calls=1: what the executor did before worker reuse), and the Ray worker processes the
cells ran in (one reused worker means no worker start-up was paid per cell)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STARTED = "probe-started.json"
PROBED = ("platforms.core.launch", "trainer.train", "mlflow")


def probe(cell_dir: Path) -> int:
    import platforms.core.launch  # noqa: F401 - what a sweep worker imports before the trainer starts
    import trainer.train  # noqa: F401
    import mlflow  # noqa: F401 - the worker opens its MLflow run before the launch

    (cell_dir / STARTED).write_text(json.dumps({"time": time.time(), "pid": os.getpid(), "ppid": os.getppid(),
                                                "imported": [m for m in PROBED if m in sys.modules]}))
    return 0


def one_cell(executor, root: Path, i: int) -> dict:
    from platforms.bench.executors import JOB_FILE, LOG_FILE

    d = root / f"{executor.name}-{i}"
    d.mkdir(parents=True)
    (d / JOB_FILE).write_text("{}\n")
    with open(d / LOG_FILE, "a") as log:
        submitted = time.time()
        handle = executor.start([sys.executable, str(Path(__file__).resolve()), "probe", str(d)], d, True, log)
    deadline = time.time() + 600
    while handle.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if not (d / STARTED).exists():
        raise SystemExit(f"{executor.name} cell {i} did not start: see {d / LOG_FILE}")
    got = json.loads((d / STARTED).read_text())
    if got["imported"] != list(PROBED):
        raise SystemExit(f"{executor.name} cell {i}: the probe did not import {PROBED}")
    ray_pid = next((int(ln.split(" pid ")[1].split()[0]) for ln in (d / LOG_FILE).read_text().splitlines()
                    if ln.startswith("ray task on")), None)
    return {"seconds": got["time"] - submitted, "pid": got["pid"], "ppid": got["ppid"], "ray_worker": ray_pid}


def ray_parts(ray, resources: dict, n: int) -> dict[str, list[float]]:
    """submit → task body of a no-op task, on a reused worker and on a fresh one (max_calls=1)."""
    def noop(t0: float) -> float:
        return time.time() - t0

    out = {}
    for label, calls in (("warm worker (reused)", 0), ("fresh worker (max_calls=1)", 1)):
        task = ray.remote(max_calls=calls)(noop).options(**resources)
        ray.get(task.remote(time.time()))
        out[label] = [ray.get(task.remote(time.time())) for _ in range(n)]
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        return probe(Path(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default="ray", help="ray (RAY_ADDRESS, else this machine's cluster) or ray://HOST:PORT")
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--parts", type=int, default=None, help="no-op Ray tasks per kind (default: max(3, cells))")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between cells (a real cell trains for minutes)")
    ns = ap.parse_args(argv)
    from platforms.bench.executors import ProcessExecutor, make

    executors = [ProcessExecutor(), make(ns.address if ns.address.startswith("ray") else "ray")]
    ray_ex = executors[1]
    root = Path(tempfile.mkdtemp(prefix="platbench-ray-overhead-"))
    one_cell(ray_ex, root, -1)  # the first Ray task of a driver may start a worker: paid once per sweep, not counted
    cells: dict[str, list[dict]] = {e.name: [] for e in executors}
    for i in range(ns.cells):
        for e in executors:
            time.sleep(ns.gap)
            cells[e.name].append(one_cell(e, root, i))
    load = os.getloadavg()
    seconds = {name: [c["seconds"] for c in got] for name, got in cells.items()}
    base, ray = statistics.median(seconds["process"]), statistics.median(seconds["ray"])
    for name, values in seconds.items():
        print(f"{name:8s} submit → trainer start: median {statistics.median(values):6.2f} s  "
              f"min {min(values):6.2f} s  max {max(values):6.2f} s  (n={len(values)})")
    print(f"ray / process: ×{ray / base:.2f}; Ray adds {ray - base:+.2f} s per cell (goal ≤ 1 s; gap {ns.gap:g} s; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    workers = {c["ray_worker"] for c in cells["ray"]}
    own = all(c["pid"] != c["ray_worker"] and c["ppid"] == c["ray_worker"] for c in cells["ray"])
    print(f"parts: the {len(cells['ray'])} Ray cells ran in {len(workers)} Ray worker process(es), each cell in a "
          f"process of its own started by the worker: {'yes' if own else 'NO'}")
    resources = ({"num_gpus": 1} if ray_ex.gpus else {"num_cpus": ray_ex.cpus_per_cell})
    for label, values in ray_parts(ray_ex.ray, resources, ns.parts or max(3, ns.cells)).items():
        print(f"parts: no-op Ray task, {label:27s} submit → body: median {statistics.median(values):6.3f} s  "
              f"max {max(values):6.3f} s")
    ray_ex.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
