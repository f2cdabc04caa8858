"""Which GPUs the platbench image can run on: the CUDA architectures its torch build carries kernels for,
and whether a GPU of a given compute capability is among them. Cloud launchers refuse an instance whose GPU
the image cannot use before anything is created."""
from __future__ import annotations

# torch.cuda.get_arch_list() of the lock's torch (constraints.txt: torch==2.15.0, the +cu132 wheel; tests/vertex
# and tests/sagemaker check it against that torch)
IMAGE_CUDA_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


def arch_supported(cc: tuple[int, int], archs=IMAGE_CUDA_ARCHS) -> bool:
    """Whether a GPU of compute capability `cc` can run a torch build with these arch-list entries: a
    cubin for sm_XY runs on X.Z with Z >= Y (same major), PTX (compute_XY) is JIT-compiled for any newer
    GPU. https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/#gpu-compilation (binary compatibility)"""
    for arch in archs:
        kind, _, num = arch.partition("_")
        major, minor = int(num[:-1]), int(num[-1])
        if (kind == "sm" and major == cc[0] and minor <= cc[1]) or (kind == "compute" and (major, minor) <= cc):
            return True
    return False
