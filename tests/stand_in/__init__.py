"""A fast stand-in for the trainer, for the tests of what a launcher does around a training (polling,
Ctrl-C, errors, preemption, teardown), where the real trainer's minutes of torch import and training prove
nothing more. The real trainer still runs end to end once per platform contract, and wherever the figure
under test comes from training.

How a job reaches it — nothing inside platbench is mocked or patched: the stand-in is a different `trainer`
package, `shadow/trainer`, put first on PYTHONPATH of the process that runs the job, as an image with
another trainer would be. Its path continues into the real trainer/, so only `trainer.train.run` differs
(shadow/platbench_stand_in.py); `python -m trainer train`, the directories each platform's environment
names, staged-data unpacking and every output file format are the real trainer's code. Where the process
comes from is the test's choice of environment:
- a launcher that runs the trainer in its own process (`platbench launch local`, sweep workers): the
  `platbench` process started with `StandIn.env()`;
- a loopback server that runs the job (Apolo's, and the Vertex AI, SageMaker, Azure ML and Databricks job
  servers): the server's runtime gets `StandIn.env(base={})` through its `runtime_env`: the server, like the
  platform, chooses what the job runs (tests/launchers, the launcher conformance kit, does so for each);
- a launcher's local mode (platforms/core/emulator.py LocalRun, `python -m trainer train` as a child):
  the child's environment, where the launcher passes the caller's on.

A process given `StandIn.env()` must not start `python -m …` from the checkout's root: `-m` puts the working
folder first on sys.path, so the real trainer/ there wins over the shadow (the Ray cells trained for real until
their cluster was started in a folder of its own).

The golden run it replays is made once per pytest session by the real trainer (`python -m trainer train`,
model small, 2 epochs, on the `color_data` fixture's dataset, whose bytes are the same in every xdist
worker), shared across xdist workers under a file lock (pytest-xdist's "Making session-scoped fixtures
execute only once"). The stand-in refuses any other dataset, model, per-class or image size.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SHADOW = Path(__file__).resolve().parent / "shadow"
GOLDEN_EPOCHS = 2


@dataclass(frozen=True)
class StandIn:
    golden: Path  # the golden run's output folder (results.json, metrics.jsonl, train.log, model/)
    data: Path    # the dataset it was trained on (this worker's copy)

    def env(self, epoch_seconds: float = 0.05, fail: str = "", fail_after: int = 0, base: dict | None = None) -> dict:
        """Environment variables that make a process's `trainer` the stand-in (add them to os.environ's)."""
        base = os.environ if base is None else base
        path = os.pathsep.join(p for p in (str(SHADOW), base.get("PYTHONPATH", "")) if p)
        return {"PYTHONPATH": path, "PLATBENCH_STAND_IN_GOLDEN": str(self.golden),
                "PLATBENCH_STAND_IN_EPOCH_SECONDS": str(epoch_seconds), "PLATBENCH_STAND_IN_FAIL": fail,
                "PLATBENCH_STAND_IN_FAIL_AFTER": str(fail_after)}


def _train_golden(data: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out"
    proc = subprocess.run([sys.executable, "-m", "trainer", "train", "--data", str(data), "--out", str(out),
                           "--model", "small", "--epochs", str(GOLDEN_EPOCHS), "--seed", "0", "--device", "cpu"],
                          cwd=folder, capture_output=True, text=True, timeout=900,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    (folder / "golden.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]


def golden_run(tmp_path_factory, data: Path) -> Path:
    """The golden run's output folder: trained once per session by the first worker to ask
    (tests/_runs.session_folder), read by the others."""
    from _runs import session_folder

    return session_folder(tmp_path_factory, "stand-in-golden", lambda folder: _train_golden(data, folder)) / "out"


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory, color_data) -> StandIn:
    return StandIn(golden_run(tmp_path_factory, color_data), color_data)
