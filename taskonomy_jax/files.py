"""Writing files so that a reader never sees half of one: the project's one atomic write."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
  """Writes `data` (text or bytes) to `path` through a temp file in the same folder and
  `os.replace`; creates the folder; leaves no temp file behind on failure."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  mode = "wb" if isinstance(data, bytes) else "w"
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, mode) as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
  """`obj` as indented, key-sorted JSON, written with `write_atomic`."""
  write_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def read_json(path: str | os.PathLike) -> Any:
  """The JSON document at `path`, or None where there is no file (a record not written yet)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  return json.loads(path.read_text())
