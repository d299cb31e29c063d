"""Resumable units of work: a folder that appears complete or not at all.

A unit's outputs are written into a temporary sibling folder, a `DONE` marker is written last,
and the folder is renamed into place (`files.atomic_path`: `os.replace`, atomic on one file
system). A rerun finds the marker and skips the unit; a unit killed half-way leaves only a
temporary folder, which the next run deletes and redoes. Long units that checkpoint themselves (training) keep their
checkpoints in a separate folder that survives an interruption.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from collections.abc import Callable
from typing import Any

from taskonomy_jax import files

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
  start = time.time()
  # An incomplete folder from an older layout at `path` is replaced.
  with files.atomic_path(path, directory=True) as tmp:
    fn(tmp)
    marker = {"seconds": round(time.time() - start, 2), **(info or {})}
    (tmp / MARKER).write_text(json.dumps(marker))
  return True


def marker_info(path: pathlib.Path) -> dict[str, Any]:
  """The JSON a finished unit's marker holds."""
  return json.loads((pathlib.Path(path) / MARKER).read_text())


def write_json_atomic(path: pathlib.Path, data: Any) -> None:
  """JSON to `path`, indented, in the order given, with `files.write_atomic` (never
  half-written)."""
  files.write_atomic(pathlib.Path(path), json.dumps(data, indent=1))
