"""Which torch device a run uses: `auto` (CUDA when usable), `cpu` or `cuda`; and the machine's NVIDIA driver,
which results.json records (hardware.nvidia_driver) and which `--device cuda` names when CUDA is not usable.

A launcher whose hardware has a GPU starts the trainer with `--device cuda` (platforms/core/api.py Job.device):
a GPU priced but not used (a driver too old for the image's torch, no driver, a CPU-only torch) then fails the
job in one line instead of training on the CPU at the GPU's price (issue 24 item 9)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional

from trainer.errors import ConfigError

# The oldest Linux driver each CUDA major release runs on (CUDA minor version compatibility), from NVIDIA's
# CUDA Toolkit release notes, "CUDA Toolkit and Minimum Required Driver Version for CUDA Minor Version
# Compatibility": https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
# The loaded kernel module's version, e.g. "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul ..."
# or "... Open Kernel Module for x86_64  580.65.06  Release Build ...". Containers get this file from the NVIDIA
# container toolkit, which mounts the driver's procfs entries (params, version, registry) into them.
PROC_VERSION = Path("/proc/driver/nvidia/version")
_NVRM = re.compile(r"^NVRM version:.*?\s(\d+\.\d+(?:\.\d+)?)\s", re.M)


def parse_proc_version(text: str) -> Optional[str]:
    found = _NVRM.search(text)
    return found.group(1) if found else None


def _nvml_driver() -> Optional[str]:
    """The driver version from NVML (libnvidia-ml, installed with every driver), where procfs lacks it."""
    import ctypes

    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        buf = ctypes.create_string_buffer(96)
        return buf.value.decode() if nvml.nvmlSystemGetDriverVersion(buf, len(buf)) == 0 else None
    finally:
        nvml.nvmlShutdown()


def driver_version() -> Optional[str]:
    """This machine's NVIDIA driver version ("580.65.06"), None where it has none."""
    try:
        found = parse_proc_version(PROC_VERSION.read_text())
    except OSError:
        found = None
    return found or _nvml_driver()


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def cuda_unusable(torch_version: str, torch_cuda: Optional[str], driver: Optional[str]) -> str:
    """Why CUDA is not usable, in one line, from what can be known without it: torch's build, the driver."""
    if not torch_cuda:
        return f"torch {torch_version} is a CPU-only build (no CUDA)"
    major = _numbers(torch_cuda)[0]
    needs = MIN_DRIVER.get(major)
    wants = f"torch {torch_version} is built for CUDA {torch_cuda}" + (f" (NVIDIA driver >= {needs})" if needs else "")
    if driver is None:
        return f"no NVIDIA driver on this machine; {wants}"
    if needs and _numbers(driver) < _numbers(needs):
        return f"NVIDIA driver {driver} is too old: {wants}"
    return f"no CUDA GPU is visible (NVIDIA driver {driver}; {wants}; CUDA_VISIBLE_DEVICES may hide them)"


def auto_note(usable: bool, torch_version: str, torch_cuda: Optional[str], driver: Optional[str]) -> Optional[str]:
    """What `auto` says when it falls back to the CPU on a machine with an NVIDIA driver (a GPU it cannot use);
    None where it says nothing (CUDA usable, or no driver: a CPU machine)."""
    if usable or driver is None:
        return None
    return f"device auto: training on the CPU: CUDA is not usable: {cuda_unusable(torch_version, torch_cuda, driver)}"


def resolve_device(choice: str = "auto"):
    import sys

    import torch

    if choice not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {choice!r}")
    if choice == "cpu":
        return torch.device("cpu")
    with warnings.catch_warnings():
        # torch warns (several lines) when the driver is too old; the one-line reason below says it instead
        warnings.simplefilter("ignore", UserWarning)
        usable = torch.cuda.is_available()
    if not usable:
        driver = driver_version()
        if choice == "cuda":
            raise ConfigError("--device cuda: CUDA is not usable: "
                              + cuda_unusable(str(torch.__version__), torch.version.cuda, driver))
        note = auto_note(usable, str(torch.__version__), torch.version.cuda, driver)
        if note:  # a GPU machine training on its CPU: never without a word (issue 24 item 9)
            print(note, file=sys.stderr)
    return torch.device("cuda" if usable else "cpu")
