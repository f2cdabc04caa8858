"""A run asked to use CUDA where CUDA is not usable fails in one line that names torch's CUDA and the driver,
before anything is written (issue 24 item 9: a GPU-priced job never trains on the CPU without a word);
results.json records the NVIDIA driver the run used (None on the CPU) and `trainer check` knows the field."""
from __future__ import annotations

import json
import shutil

import pytest
from _cli import trainer_here
from _runs import digits_run
from conftest import assert_one_line_error

from trainer.check import check_run_dir
from trainer.device import MIN_DRIVER, cuda_unusable, parse_proc_version
from trainer.results import read_results


@pytest.fixture(scope="module")
def cpu_run(digits_data, tmp_path_factory):
    return digits_run(tmp_path_factory, digits_data)  # the session's shared run (tests/_runs.py), read only


def test_device_cuda_without_cuda_is_one_line_naming_torch_cuda_and_the_driver(digits_data, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is usable here")
    out = tmp_path / "out"
    proc = trainer_here("train", "--data", str(digits_data), "--out", str(out), "--device", "cuda",
                        "--epochs", "1")
    assert_one_line_error(proc)
    line = proc.stderr.strip()
    assert line.startswith("error: --device cuda: CUDA is not usable: "), line
    if torch.version.cuda:  # this machine's torch is a CUDA build: the CUDA it needs and the driver it found
        assert f"built for CUDA {torch.version.cuda}" in line and "driver" in line, line
    assert not out.exists()  # nothing half-written: no log, no results, no checkpoints


@pytest.mark.parametrize("torch_version, torch_cuda, driver, expected", [
    ("2.15.0+cpu", None, "580.65.06", "torch 2.15.0+cpu is a CPU-only build (no CUDA)"),
    ("2.15.0+cu132", "13.2", None,
     "no NVIDIA driver on this machine; torch 2.15.0+cu132 is built for CUDA 13.2 (NVIDIA driver >= 580.65.06)"),
    ("2.15.0+cu132", "13.2", "550.54.15",
     "NVIDIA driver 550.54.15 is too old: torch 2.15.0+cu132 is built for CUDA 13.2 (NVIDIA driver >= 580.65.06)"),
    ("2.15.0+cu132", "13.2", "580.95.05", "no CUDA GPU is visible (NVIDIA driver 580.95.05; torch 2.15.0+cu132"),
    ("2.7.1+cu128", "12.8", "550.54.15", "no CUDA GPU is visible (NVIDIA driver 550.54.15;"),
])
def test_why_cuda_is_not_usable(torch_version, torch_cuda, driver, expected):
    reason = cuda_unusable(torch_version, torch_cuda, driver)
    assert reason.startswith(expected) and "\n" not in reason, reason


def test_auto_says_why_it_trains_on_the_cpu_of_a_machine_with_a_driver():
    from trainer.device import auto_note

    assert auto_note(False, "2.15.0+cu132", "13.2", "550.54.15") == (
        "device auto: training on the CPU: CUDA is not usable: NVIDIA driver 550.54.15 is too old: torch "
        "2.15.0+cu132 is built for CUDA 13.2 (NVIDIA driver >= 580.65.06)")
    assert auto_note(False, "2.15.0+cu132", "13.2", None) is None  # a CPU machine: nothing to say
    assert auto_note(True, "2.15.0+cu132", "13.2", "580.65.06") is None


def test_min_driver_table_covers_the_images_cuda():
    import torch

    if torch.version.cuda:  # the lock's torch (constraints.txt): its CUDA major has a known minimum driver
        assert int(torch.version.cuda.split(".")[0]) in MIN_DRIVER


@pytest.mark.parametrize("text, version", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
     "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n", "550.54.15"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16-I3-B03-4-3)"
     "  Tue Jul 22 00:00:00 UTC 2025\nGCC version:  gcc version 13.3.0\n", "580.65.06"),
    ("GCC version:  gcc version 12.2.0\n", None),
])
def test_the_driver_version_is_read_from_procfs(text, version):
    assert parse_proc_version(text) == version


def test_results_record_the_driver_none_on_the_cpu(cpu_run):
    raw = json.loads((cpu_run / "results.json").read_text())
    assert raw["hardware"]["device"] == "cpu"
    assert "nvidia_driver" in raw["hardware"] and raw["hardware"]["nvidia_driver"] is None
    assert read_results(cpu_run).hardware.nvidia_driver is None


def test_check_refuses_a_cpu_run_that_names_a_driver(cpu_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(cpu_run, copy)
    assert check_run_dir(copy) == []
    path = copy / "results.json"
    raw = json.loads(path.read_text())
    raw["hardware"]["nvidia_driver"] = "580.65.06"
    path.write_text(json.dumps(raw))
    found = [str(p) for p in check_run_dir(copy)]
    assert len(found) == 1 and found[0].startswith("results.json: hardware.nvidia_driver"), found
    raw["hardware"]["nvidia_driver"] = 580
    path.write_text(json.dumps(raw))
    found = [str(p) for p in check_run_dir(copy)]
    assert len(found) == 1 and "hardware.nvidia_driver" in found[0], found
