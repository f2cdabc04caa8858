"""The stand-in keeps the trainer's contract: its outputs pass the compliance checker against its own log,
it checkpoints on SIGTERM (exit 143) and a rerun resumes to the same figures, it fails on demand, it refuses
data it has no golden figures for, and it starts without torch. (That `platbench launch local` on it imports
no Lightning either is tests/core/test_cli.py's piped launch.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import write_folder_dataset

from stand_in import StandIn, stand_in  # noqa: F401 (fixture)
from trainer.results import read_metrics, read_results

# no xdist_group: the golden run is made once per session whatever worker asks (tests/stand_in/__init__.py)


def train(s: StandIn, tmp_path, *args: str, env: dict | None = None, **knobs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", "train", "--data", str(s.data), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **s.env(**knobs), **(env or {})})


def check(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", "check", str(out)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("epochs", [1, 2, 5])
def test_outputs_keep_the_contract_and_the_golden_figures(stand_in, tmp_path, epochs):
    proc = train(stand_in, tmp_path, "--out", "o", "--epochs", str(epochs), "--target-accuracy", "0.01")
    assert proc.returncode == 0, proc.stderr
    verdict = check(tmp_path / "o")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    mine, golden = read_results(tmp_path / "o"), read_results(stand_in.golden)
    assert mine.epochs_completed == epochs and len(read_metrics(tmp_path / "o")) == epochs
    assert mine.dataset.fingerprint == golden.dataset.fingerprint
    assert (mine.test_accuracy, mine.confusion_matrix) == (golden.test_accuracy, golden.confusion_matrix)
    assert mine.run_id != golden.run_id and mine.epoch_to_target == 1
    assert (tmp_path / "o/model/model.pt").read_bytes() == (stand_in.golden / "model/model.pt").read_bytes()
    assert [line for line in proc.stdout.splitlines() if line.startswith("- Epoch:")] == [
        f"- Epoch: {i}" for i in range(1, epochs + 1)]


def test_sigterm_checkpoints_and_a_rerun_resumes(stand_in, tmp_path):
    env = {**os.environ, **stand_in.env(epoch_seconds=0.3)}
    args = [sys.executable, "-m", "trainer", "train", "--data", str(stand_in.data), "--out", "o", "--epochs", "6"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "o/checkpoints/last.ckpt"
    deadline = time.time() + 60
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM received" in out and not (tmp_path / "o/results.json").exists()
    done = len(json.loads(ckpt.read_text())["history"])
    assert 1 <= done < 6
    again = train(stand_in, tmp_path, "--out", "o", "--epochs", "6")
    assert again.returncode == 0, again.stderr
    assert f"Resuming from o/checkpoints/last.ckpt after epoch {done}\n" in again.stdout
    res = read_results(tmp_path / "o")
    assert res.epochs_completed == 6 and res.resumed_from_epoch == done
    assert res.test_accuracy == read_results(stand_in.golden).test_accuracy
    verdict = check(tmp_path / "o")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_fails_on_demand(stand_in, tmp_path):
    proc = train(stand_in, tmp_path, "--out", "o", "--epochs", "3", fail="exit", fail_after=1)
    assert proc.returncode == 1 and "stand-in: failing on demand in epoch 2" in proc.stderr
    assert len(read_metrics(tmp_path / "o")) == 1 and not (tmp_path / "o/results.json").exists()


def test_hangs_on_demand_until_sigterm(stand_in, tmp_path):
    env = {**os.environ, **stand_in.env(fail="hang")}
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--data", str(stand_in.data), "--out", "o"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(3)  # no epoch ends while it hangs
    assert not (tmp_path / "o/metrics.jsonl").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err


@pytest.mark.parametrize("args, says", [
    (["--model", "fast"], "model 'fast' (golden: 'small')"),
    (["--per-class", "5"], "per_class 5 (golden: None)"),
    (["--lr", "0.5", "--data", "{other}"], "dataset fingerprint"),
    (["--momentum", "2", "--gamma", "1"], "unrecognized arguments: --gamma"),
])
def test_refuses_what_the_golden_run_did_not_train(stand_in, tmp_path, args, says):
    other = write_folder_dataset(tmp_path / "other", 3, 2, seed=5)
    proc = train(stand_in, tmp_path, "--out", "o", *[a.format(other=other) for a in args])
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o/results.json").exists()


def test_starts_without_torch(stand_in, tmp_path):
    code = ("import sys, runpy; sys.argv = ['trainer', 'train', '--data', sys.argv[1], '--out', 'o', '--epochs', '1']\n"
            "try: runpy.run_module('trainer', run_name='__main__')\n"
            "except SystemExit as e: assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(stand_in.data)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **stand_in.env()})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
