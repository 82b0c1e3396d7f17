"""Process-wide CPU settings our entry points apply before the first forward pass.

glibc returns large freed blocks to the OS after every call; a ResNet50 forward then spends much of its time in
page faults. Raising the mmap / trim thresholds keeps that memory in the process (measured in bench/inference.py).
"""

import ctypes
import ctypes.util
import os

import torch

# mallopt parameter numbers from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
ALLOCATOR_BYTES = 1 << 30
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(ALLOCATOR_BYTES // 2),
    "MALLOC_TRIM_THRESHOLD_": str(ALLOCATOR_BYTES),
    "MALLOC_TOP_PAD_": str(ALLOCATOR_BYTES // 2),
}


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc only); returns whether the setting took effect.

    Set MEMORABILITY_DEFAULT_ALLOCATOR=1 to leave glibc's defaults alone (benchmarks compare both).
    """
    if os.environ.get("MEMORABILITY_DEFAULT_ALLOCATOR") == "1":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(
        mallopt(parameter, value) == 1
        for parameter, value in (
            (M_MMAP_THRESHOLD, ALLOCATOR_BYTES // 2),
            (M_TRIM_THRESHOLD, ALLOCATOR_BYTES),
            (M_TOP_PAD, ALLOCATOR_BYTES // 2),
        )
    )


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 inference beats fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_device() -> torch.device:
    """The first GPU where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
