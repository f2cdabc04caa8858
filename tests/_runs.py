"""Trained runs shared by several test modules, made once per pytest session however many modules and
xdist workers ask: a test that only needs a model or a run folder reads one of these instead of training
its own. Read only: a test that changes one works on a copy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
DIGITS_EPOCHS = 3
DIGITS_TARGET = 0.5


def session_folder(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder `make` fills once per pytest session: under xdist, by the first worker to ask while the others
    wait on a file lock in the session's folder above every worker's own (pytest-xdist's "Making
    session-scoped fixtures execute only once"), then read by all; a make that failed is not tried again
    (each training would fail the same way, minutes each). The bytes a `make` reads (the conftest datasets)
    are the same in every worker."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder, done, failed = shared / name, shared / f"{name}.done", shared / f"{name}.failed"
    with FileLock(str(shared / f"{name}.lock")):
        if failed.is_file():  # tried once this session: every later test fails with the first one's reason
            raise AssertionError(f"{name}, made earlier in this session, failed:\n{failed.read_text()}")
        if not done.is_file():
            try:
                make(folder)
            except BaseException as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}"[-5000:])
                raise
            done.touch()
    return folder


def train(data: Path, out: Path, *flags: str, timeout: float = 1200) -> None:
    """`python -m trainer train` on the CPU, as a platform's container runs it."""
    proc = subprocess.run([sys.executable, "-m", "trainer", "train", "--data", str(data), "--out", str(out),
                           "--device", "cpu", *flags], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]


# `python -m trainer`'s entry (trainer/__main__.py) called once per job, one after another
_SEVERAL = ("import json, sys; from trainer.cli import main; "
            "sys.exit(max(main(['train', *job]) for job in json.loads(sys.argv[1])))")


def train_several(jobs: list[tuple[Path, Path, tuple[str, ...]]], timeout: float = 1200) -> None:
    """Several trainings of (data, out, flags) in one process, each as `python -m trainer train` runs it: torch
    and Lightning, most of a small training's seconds, are imported once."""
    argv = [["--data", str(data), "--out", str(out), "--device", "cpu", *flags] for data, out, flags in jobs]
    proc = subprocess.run([sys.executable, "-c", _SEVERAL, json.dumps(argv)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def digits_run(tmp_path_factory, digits_data: Path) -> Path:
    """The `small` model on the bundled digits, DIGITS_EPOCHS epochs, one process, with a target it reaches
    (seconds to target recorded): test_check's real run and test_trainer_ddp's one-process reference."""
    return session_folder(tmp_path_factory, "digits-run", lambda out: train(
        digits_data, out, "--model", "small", "--epochs", str(DIGITS_EPOCHS), "--seed", "0",
        "--target-accuracy", str(DIGITS_TARGET)))
