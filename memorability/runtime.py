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


def glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc (`mallopt` and `malloc_trim` are glibc's); None elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc only); returns whether the setting took effect.

    Set MEMORABILITY_DEFAULT_ALLOCATOR=1 to leave glibc's defaults alone (benchmarks compare both). What a
    long-lived process (the Space) no longer needs it gives back with `release_memory`.
    """
    if os.environ.get("MEMORABILITY_DEFAULT_ALLOCATOR") == "1":
        return False
    libc = glibc()
    if libc is None:
        return False
    return all(
        libc.mallopt(parameter, value) == 1
        for parameter, value in (
            (M_MMAP_THRESHOLD, ALLOCATOR_BYTES // 2),
            (M_TRIM_THRESHOLD, ALLOCATOR_BYTES),
            (M_TOP_PAD, ALLOCATOR_BYTES // 2),
        )
    )


def resident_bytes() -> int:
    """The process's resident memory (RSS) now, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def release_memory() -> bool:
    """Hand every free page of every malloc arena back to the OS now (glibc's `malloc_trim`): what `tune_allocator`
    keeps for speed, after work that needed far more than usual (a huge image decoded). A few milliseconds."""
    libc = glibc()
    return libc is not None and libc.malloc_trim(0) == 1


class MemoryCeiling:
    """For a long-lived process: once `settle()` has noted its resident memory after warming up, `check()` (after
    each request) gives freed memory back whenever the process holds more than `headroom` above that, so that one
    costly request leaves no gigabytes behind while ordinary ones keep the allocator's speed."""

    def __init__(self, headroom: float = 0.15):
        self.headroom = headroom
        self.limit: int | None = None

    def settle(self) -> None:
        self.limit = int(resident_bytes() * (1 + self.headroom))

    def check(self) -> bool:
        """Whether memory was given back."""
        return self.limit is not None and resident_bytes() > self.limit and release_memory()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo), empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, many times slower."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def default_device() -> torch.device:
    """The first GPU where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
