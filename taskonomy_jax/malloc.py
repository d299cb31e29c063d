"""Process memory: large freed buffers go back to the operating system (glibc only).

glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), after
which blocks of that size come from the heap and stay with the process when freed. The input
threads of the training loop build a batch of 49 stacked readouts' inputs (~19 MB, with
temporaries) every step: with the dynamic threshold a 100-step stacked transfer unit peaked at
3.95 GB, with a fixed 1 MiB threshold at 2.70 GB (BUILD_NOTES.md, "Speed and memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1 << 20


def return_large_blocks() -> bool:
  """Fixes glibc's mmap threshold at 1 MiB for this process; False where there is no glibc
  (the call is then a no-op)."""
  if not sys.platform.startswith("linux"):
    return False
  name = ctypes.util.find_library("c")
  if name is None:
    return False
  try:
    libc = ctypes.CDLL(name)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
  except (OSError, AttributeError):  # not glibc (musl has no mallopt)
    return False
