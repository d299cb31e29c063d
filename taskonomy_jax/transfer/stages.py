"""Resumable units of work: a folder that appears complete or not at all.

A unit's outputs are written into a temporary sibling folder, a `DONE` marker is written last,
and the folder is renamed into place (`os.replace`, atomic on one file system). A rerun finds
the marker and skips the unit; a unit killed half-way leaves only a temporary folder, which the
next run deletes and redoes. Long units that checkpoint themselves (training) keep their
checkpoints in a separate folder that survives an interruption.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

MARKER = "DONE"


def is_done(path: pathlib.Path) -> bool:
  return (path / MARKER).is_file()


def run_unit(path: pathlib.Path, fn: Callable[[pathlib.Path], Any],
             info: dict[str, Any] | None = None) -> bool:
  """Runs `fn(tmp_dir)` unless `path` is complete; then moves `tmp_dir` to `path`.

  Returns True if the unit ran, False if it was already done. The marker holds `info` and the
  wall time, as JSON.
  """
  path = pathlib.Path(path)
  if is_done(path):
    return False
  path.parent.mkdir(parents=True, exist_ok=True)
  for stale in path.parent.glob(f".{path.name}.tmp-*"):
    shutil.rmtree(stale, ignore_errors=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
  start = time.time()
  try:
    fn(tmp)
    marker = {"seconds": round(time.time() - start, 2), **(info or {})}
    (tmp / MARKER).write_text(json.dumps(marker))
    if path.exists():  # an incomplete folder from an older layout: replace it
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return True


def marker_info(path: pathlib.Path) -> dict[str, Any]:
  """The JSON a finished unit's marker holds."""
  return json.loads((pathlib.Path(path) / MARKER).read_text())


def write_json_atomic(path: pathlib.Path, data: Any) -> None:
  """JSON to `path` via a temporary file and `os.replace` (never half-written)."""
  from taskonomy_jax import files

  files.write_atomic(pathlib.Path(path), json.dumps(data, indent=1))
