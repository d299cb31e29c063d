"""`malloc.return_large_blocks`: glibc's mmap threshold fixed, a no-op elsewhere."""

from __future__ import annotations

import ctypes.util
import sys

from taskonomy_jax import malloc


def test_fixes_the_threshold_on_glibc_and_is_a_no_op_elsewhere(monkeypatch):
  on_glibc = sys.platform.startswith("linux") and ctypes.util.find_library("c") is not None
  assert malloc.return_large_blocks() is on_glibc
  monkeypatch.setattr(malloc.sys, "platform", "darwin")
  assert malloc.return_large_blocks() is False
  monkeypatch.setattr(malloc.sys, "platform", "linux")
  monkeypatch.setattr(malloc.ctypes.util, "find_library", lambda name: None)
  assert malloc.return_large_blocks() is False
