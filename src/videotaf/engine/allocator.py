"""Keep freed CPU memory in the process, so that training steps stop paying page faults for their activations.

PyTorch's CPU tensors come straight from the C allocator. With glibc, a block above the mmap threshold (at most
32 MiB with the default dynamic threshold) is mapped fresh for every allocation and unmapped when freed, so every
step touches its large activations as new pages: the kernel zero-fills each 4 KiB page on first touch. A video
model at 224 px has many such activations (``16 x 64 x 112 x 112`` floats is 51 MiB), and a TAF step, which
holds the clean and the adversarial graph at once, suffers most: on the 2-core machine of BENCHMARKS.md a TAF
step of TSM-R50 at 224 px took 9.25 s with glibc's defaults and 7.02 s with freed memory reused (2.64x and 2.45x
a plain step, which itself went from 3.50 s to 2.87 s).

Raising the mmap threshold above the largest activation serves those blocks from the heap, and a high trim
threshold keeps the heap's top instead of returning it after every step; the process then holds its peak
memory, as PyTorch's CUDA caching allocator does on a GPU. jemalloc or tcmalloc through ``LD_PRELOAD`` do the
same job from outside the process; this needs no extra library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["keep_freed_memory"]

log = logging.getLogger(__name__)

# glibc's mallopt() parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


def keep_freed_memory(mmap_threshold: int = 2**30) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from glibc's heap and keep freed heap memory for reuse.

    Process-wide and lasting: call it once, before training on the CPU. Affects allocations made afterwards only.
    Returns True when glibc took both settings, False where there is no glibc (macOS, Windows, musl) and nothing
    changed. ``mmap_threshold`` must fit a C int (glibc's API); the default, 1 GiB, is above any single
    activation of the models here at 224 px.
    """
    if not 0 < mmap_threshold <= _INT_MAX:
        raise ValueError(f"mmap_threshold must be in (0, {_INT_MAX}] bytes, got {mmap_threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
    log.debug("glibc mallopt: mmap threshold %d B, trim threshold %d B: %s", mmap_threshold, _INT_MAX, ok)
    return ok
