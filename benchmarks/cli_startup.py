"""How long `platbench --help` and `platbench platforms` take to start, beside the interpreter's own start
(`python -c pass`) measured in the same run, alternating so load on the machine falls on all three alike.

    python -m benchmarks.cli_startup [--rounds 15]

Prints each command's median and best wall time and its excess over the bare interpreter. The goal
(issue 11): both ≤ 0.3 s median on the 2-core development machine."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "platbench --help": [sys.executable, "-m", "platforms", "--help"],
    "platbench platforms": [sys.executable, "-m", "platforms", "platforms"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:22s} median {med:6.3f} s  best {min(values):6.3f} s  "
              f"excess over the interpreter {med - base:6.3f} s  ratio {med / base:5.2f}×")


if __name__ == "__main__":
    main()
