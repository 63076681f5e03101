"""The process a run lives in: its random seeds and the C library's memory allocator."""

from __future__ import annotations

import ctypes
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def keep_freed_memory() -> None:
    """Let glibc keep the memory a training step frees, for the next step to reuse.

    By default glibc returns freed memory at the top of its heap to the system (and serves large blocks with mmap,
    under a threshold it only raises as large blocks are freed), so each step faults its activations' pages back
    in. Fixing the mmap threshold at glibc's maximum (32 MiB) and raising the trim threshold removes that (the
    speed-up is measured in docs/speed.md). A no-op where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 512 << 20)
    mallopt(M_TOP_PAD, 64 << 20)
