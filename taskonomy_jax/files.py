"""Writing files so that a reader never sees half of one: the project's one atomic write
(`atomic_path`, and `write_atomic` / `write_json_atomic` on top of it), and reading JSON."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib import parse

from etils import epath


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[pathlib.Path]:
  """A temporary path beside `path` (same folder, so the same file system) for the caller to
  write a file to, or a folder into with `directory=True`; moved onto `path` with `os.replace`
  when the block ends without error, removed when it raises. A reader sees the old `path` or
  the whole new one, never half of it.

      with files.atomic_path("out/video.mp4") as tmp:
        writer.save(tmp)

  The parent folder is created. The temporary name is `.<name>.tmp-*<suffix>`, the suffix of
  `path` kept for writers that choose a format by it; a folder replaces an existing one.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  prefix = f".{path.name}.tmp-"
  if directory:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
  else:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = pathlib.Path(name)
  try:
    yield tmp
    if directory and path.is_dir():
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if tmp.is_dir():
      shutil.rmtree(tmp, ignore_errors=True)
    else:
      tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
  """Writes `data` (text or bytes) to `path` through `atomic_path`; creates the folder; leaves
  no temp file behind on failure."""
  with atomic_path(path) as tmp:
    if isinstance(data, bytes):
      tmp.write_bytes(data)
    else:
      tmp.write_text(data)


def as_epath(path: str | os.PathLike) -> epath.Path:
  """`path` as an `epath.Path`: a local path, or a URL of any scheme epath reads (gs://, s3://,
  az://, hf://, or one a program registered with `epath.register_path_cls`).

  A `file://` URL becomes its local path, because epath has no `file` scheme and a URL is what
  a researcher copies from a file browser or a cloud console.
  """
  if isinstance(path, str) and path.startswith("file://"):
    url = parse.urlparse(path)
    if url.netloc not in ("", "localhost"):
      raise ValueError(f"{path}: a file:// URL on another host ({url.netloc}); give a local "
                       "path or a URL the workers can read (gs://, s3://, ...)")
    return epath.Path(parse.unquote(url.path))
  return epath.Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
  """`obj` as indented, key-sorted JSON, written with `write_atomic`."""
  write_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def read_json(path: str | os.PathLike) -> Any:
  """The JSON document at `path`, or None where there is no file (a record not written yet)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  return json.loads(path.read_text())


# Deeper than any document the project reads (an affinity table is 4 levels deep, a request 5),
# far below the depth at which Python's parser runs out of stack (about 1,000).
MAX_JSON_DEPTH = 32


class JsonInputError(ValueError):
  """Text that is not JSON the project reads: malformed, not UTF-8, or nested too deeply."""


def json_depth(obj: Any) -> int:
  """How many levels of arrays and objects `obj` has (a number or string: 0), found without
  recursion, so no document can exhaust the stack here."""
  depth, stack = 0, [(obj, 1)]
  while stack:
    item, level = stack.pop()
    if isinstance(item, dict):
      children = item.values()
    elif isinstance(item, list):
      children = item
    else:
      continue
    depth = max(depth, level)
    stack.extend((child, level + 1) for child in children)
  return depth


def loads_json(text: str | bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
  """Parses untrusted JSON text (a request body, an uploaded or given file).

  Args:
    text: the document, as text or as UTF-8 bytes.
    where: what the text is, for messages (a path, "the request body").
    max_depth: the most levels of nested arrays/objects accepted.

  Raises:
    JsonInputError: the text is not JSON, not UTF-8, or nested deeper than `max_depth`; the
      message starts with `where`.
  """
  try:
    obj = json.loads(text)
  except json.JSONDecodeError as e:
    raise JsonInputError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column "
                         f"{e.colno})") from None
  except UnicodeDecodeError:
    raise JsonInputError(f"{where}: not UTF-8 text, so not JSON") from None
  except RecursionError:  # the parser recurses once per level: 100,000 '[' exhaust the stack
    raise JsonInputError(f"{where}: nested too deeply (more than {max_depth} levels of arrays "
                         "or objects)") from None
  if json_depth(obj) > max_depth:
    raise JsonInputError(f"{where}: nested too deeply (more than {max_depth} levels of arrays "
                         "or objects)")
  return obj
