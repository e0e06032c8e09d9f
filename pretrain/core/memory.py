"""The C allocator's settings for a training process: freed blocks stay in the process for the next step.

glibc's ``malloc`` serves a large block by ``mmap`` and hands it back with
``munmap`` when freed, and gives the top of its heap back to the kernel once
more than ``M_TRIM_THRESHOLD`` of it is free. A training step allocates and
frees the same tensors every time (a convolutional layer's maps: 100 images of
32 x 28 x 28 floats are 10 MB), so each step faulted its memory in again, page
by page: an epoch of a convolutional layer took hundreds of thousands of page
faults, and it and even a single ``conv2d`` ran slower, and less steadily, than
with the settings below, which leave none; dense layers, whose blocks glibc's
own adaptive threshold already keeps, are unchanged within noise (measured:
``examples/benchmarks/design_notes.md``).

:func:`keep_freed_memory` raises the mmap threshold to glibc's largest (32 MiB: bigger
blocks are still mapped and returned) and stops the heap's trimming, so the
process keeps what it freed at its peak until it exits. Both commands call it as
they start; a Python program calls it once, before training. Elsewhere than glibc
(macOS, musl) it does nothing.
"""
import ctypes
import ctypes.util

#: ``mallopt`` parameters (glibc's malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
NEVER_TRIM = 2 ** 31 - 1
LARGEST_MMAP_THRESHOLD = 32 * 2 ** 20  # HEAP_MAX_SIZE / 2 on 64-bit glibc


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (see the module docstring); whether it could (False where there is no ``mallopt``)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
