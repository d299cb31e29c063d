"""One run per workdir: an exclusive `flock` on `<workdir>/.lock`, held for the whole run.

Two runs writing one workdir (`taskonomy taxonomy`, `taskonomy taskbank train`) overwrite each
other's checkpoints and records and both crash half-way; the second is refused up front instead,
with `WorkdirBusyError` naming the first (its pid, command and start time). The lock is the
kernel's: it dies with the holding process, so a killed run (SIGKILL, power cut) never leaves a
stale lock behind, and the file's contents are only a note on who holds it.

Use `hold(workdir)` as a context manager, or `@locked` on a function with a `workdir` argument.
A process may take the lock it already holds again (nested calls); it is released when the
outermost one exits.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import inspect
import json
import os
import pathlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

LOCK_NAME = ".lock"
# This process's index in a multi-process run (`set_process_index`): process i > 0 locks
# `.lock.<i>`, so the processes of one run share a workdir while a second run is still refused.
_PROCESS_INDEX = 0
_F = TypeVar("_F", bound=Callable[..., Any])
# realpath of the workdir -> how many nested holds this process has on it.
_HELD: dict[str, int] = {}


class WorkdirBusyError(ValueError):
  """Another run holds the workdir. A ValueError: the CLI answers it with exit code 2 (choose
  another --workdir or wait), like any bad input."""


def _holder_note() -> str:
  argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
  started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  return json.dumps({"pid": os.getpid(), "command": shlex.join(argv), "started": started})


def _describe_holder(lock_path: pathlib.Path) -> str:
  """Who holds the lock, from its note; retried briefly, since a holder writes it just after
  taking the lock."""
  for _ in range(10):
    try:
      note = json.loads(lock_path.read_text())
      return (f"pid {note['pid']} ({note['command']}), started {note['started']}")
    except (OSError, ValueError, KeyError, TypeError):
      time.sleep(0.05)
  return "a process that left no readable note in the lock file"


def _open_locked(lock_path: pathlib.Path) -> int | None:
  """An fd holding the exclusive lock on `lock_path`, or None when another process holds it."""
  while True:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      return None
    except BaseException:
      os.close(fd)
      raise
    # A releasing holder may have unlinked the file (see `hold`) between our open and our
    # flock: then we locked an orphan inode; open the path again.
    try:
      same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)


def set_process_index(index: int) -> None:
  """Called once a process has joined a multi-process run (train/sharding.py)."""
  global _PROCESS_INDEX
  _PROCESS_INDEX = int(index)


def lock_name() -> str:
  return LOCK_NAME if _PROCESS_INDEX == 0 else f"{LOCK_NAME}.{_PROCESS_INDEX}"


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Holds the exclusive lock on `workdir` (created if missing) for the `with` block.

  Yields the workdir. If this call created the folder and it holds nothing but the lock file on
  exit (a run refused its input before writing anything), the folder (and the parents this call
  created) is removed again.

  Raises:
    WorkdirBusyError: another process holds the lock; the message names it.
  """
  workdir = pathlib.Path(workdir)
  key = os.path.realpath(workdir)
  if _HELD.get(key):
    _HELD[key] += 1
    try:
      yield workdir
    finally:
      _HELD[key] -= 1
    return
  # The folders this call creates (the workdir and missing parents), deepest first.
  created = [d for d in (workdir, *workdir.parents) if not d.exists()]
  workdir.mkdir(parents=True, exist_ok=True)
  lock_path = workdir / lock_name()
  fd = _open_locked(lock_path)
  if fd is None:
    raise WorkdirBusyError(
        f"workdir {workdir} is in use by another run: {_describe_holder(lock_path)}. Wait for it "
        f"to finish or use another workdir (the lock is {lock_path}; it is released when that "
        "process exits, even if killed)")
  _HELD[key] = 1
  try:
    os.ftruncate(fd, 0)
    os.write(fd, _holder_note().encode())
    yield workdir
  finally:
    del _HELD[key]
    with contextlib.suppress(OSError):
      if created and [p.name for p in workdir.iterdir()] == [lock_path.name]:
        # Unlinked while still locked, so a process that opened it meanwhile sees the inode
        # change and retries (`_open_locked`).
        lock_path.unlink()
        for folder in created:  # stops at the first that is not empty
          folder.rmdir()
    os.close(fd)  # releases the flock


def locked(fn: _F) -> _F:
  """Decorator: runs `fn` holding `hold(workdir)`, `workdir` being its argument of that name."""
  signature = inspect.signature(fn)

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    with hold(signature.bind(*args, **kwargs).arguments["workdir"]):
      return fn(*args, **kwargs)

  return wrapper  # type: ignore[return-value]
