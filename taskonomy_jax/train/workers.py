"""Work divided among processes that each train their own networks (`multihost=True` on
`taskonomy taskbank train` and `taskonomy taxonomy`).

The task bank and the transfers are many independent networks: each process trains on its own
devices (its local mesh), takes every `count`-th unit of a work list from its `index` on, and
writes its units into the shared workdir, each unit atomically and with a completion marker.
Processes meet by waiting for those markers (`wait_for`), never on a message: a rerun after a
process died sees exactly what finished, and a barrier cannot pass on a stale file of an
earlier attempt.

When the launcher names a coordinator (JAX_COORDINATOR_ADDRESS), the processes form one
jax.distributed job (`_join_job`), and each checkpoints its own networks alone
(`checkpoint.checkpoint_alone`: orbax would otherwise take every checkpoint for one global
checkpoint written by all processes); the checkpoints are those a single process writes. No
collective runs: nothing is reduced across networks. jax's coordination service takes the
others down once one process dies (after its heartbeat timeout); a rerun of all resumes. Without
a coordinator the processes are plain JAX processes and divide the work the same way. One
network trained by all processes (`taskonomy train --set multihost=True`) always joins
jax.distributed (train/sharding.py).

The process's place comes from the launcher: JAX_PROCESS_ID / JAX_NUM_PROCESSES (the variables
`sharding.maybe_initialize_distributed` reads), or SLURM_PROCID / SLURM_NTASKS under srun.

A process that dies must not leave the others waiting for ever: each beats (`heartbeat`:
touches `<workdir>/.workers/<index>` every 30 s), and a process waiting on the others
(`wait_for`) stops with `WorkerLostError`, naming the silent process, once one has not beaten
for `lost_after_seconds()` (15 min; env TASKONOMY_WORKER_LOST_AFTER, 0: wait for ever) while it
waited at least as long. Heartbeats are compared by their files' times, both set by the shared
filesystem, so the hosts' clocks need not agree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import jax

from taskonomy_jax import workdir_lock
from taskonomy_jax.train import checkpoint, sharding

T = TypeVar("T")
# (index variable, count variable), first match wins.
ENV = (("JAX_PROCESS_ID", "JAX_NUM_PROCESSES"), ("SLURM_PROCID", "SLURM_NTASKS"))
POLL_SECONDS = 0.5
HEARTBEAT_DIR = ".workers"
LOST_AFTER_ENV = "TASKONOMY_WORKER_LOST_AFTER"
LOST_AFTER_SECONDS = 900.0


class WorkerLostError(RuntimeError):
  """Another process of the run stopped beating while this one waited for its work."""


def lost_after_seconds() -> float:
  """How long a silent process is waited for (env TASKONOMY_WORKER_LOST_AFTER; 0: for ever).

  Raises:
    ValueError: the variable is not a number of seconds.
  """
  value = os.environ.get(LOST_AFTER_ENV, "")
  if not value:
    return LOST_AFTER_SECONDS
  try:
    return float(value)
  except ValueError:
    raise ValueError(f"{LOST_AFTER_ENV}={value!r} is not a number of seconds (0: wait for "
                     "ever)") from None


def _mtime(path: pathlib.Path) -> float | None:
  try:
    return path.stat().st_mtime
  except FileNotFoundError:
    return None


@dataclasses.dataclass(frozen=True)
class WorkGroup:
  """This process's place among the `count` processes dividing a run's work."""

  index: int = 0
  count: int = 1
  # The folder of the run's heartbeat files, while this process beats (`heartbeat`).
  heartbeats: str | None = None

  @property
  def is_first(self) -> bool:
    """Process 0: the one writer of the run's shared files (configs, joined results)."""
    return self.index == 0

  def share(self, items: Sequence[T]) -> list[T]:
    """This process's items: every `count`-th from `index` (round robin, so neighbouring items,
    often of similar cost, go to different processes)."""
    return list(items)[self.index::self.count]

  def lost(self, waited: float) -> list[str]:
    """The other processes taken for dead after this one waited `waited` seconds: silent (or
    never started) for longer than `lost_after_seconds()` by the heartbeat files' times."""
    if self.heartbeats is None or self.count == 1:
      return []
    limit = lost_after_seconds()
    if limit <= 0 or waited < limit:
      return []
    folder = pathlib.Path(self.heartbeats)
    own = _mtime(folder / str(self.index))
    if own is None:  # our own beat vanished (the workdir was removed): nothing to compare
      return []
    out = []
    for other in range(self.count):
      if other == self.index:
        continue
      beat = _mtime(folder / str(other))
      if beat is None:
        out.append(f"process {other} has not started")
      elif own - beat > limit:
        out.append(f"process {other} has been silent for {own - beat:.0f} s")
    return out


def work_group(enabled: bool) -> WorkGroup:
  """The process's `WorkGroup` (a group of one unless `enabled`); takes the workdir lock under
  this process's name (`workdir_lock.set_process_index`), so the group shares the workdir.

  Raises:
    ValueError: `enabled` but no launcher variables, or an index outside the count.
  """
  if not enabled:
    return WorkGroup()
  for index_var, count_var in ENV:
    if index_var in os.environ and count_var in os.environ:
      group = WorkGroup(int(os.environ[index_var]), int(os.environ[count_var]))
      break
  else:
    raise ValueError("multihost=True needs each process's place: set JAX_PROCESS_ID and "
                     "JAX_NUM_PROCESSES (or run under srun: SLURM_PROCID, SLURM_NTASKS)")
  if not 0 <= group.index < group.count:
    raise ValueError(f"process index {group.index} is not in [0, {group.count})")
  workdir_lock.set_process_index(group.index)
  _join_job(group)
  return group


def _join_job(group: WorkGroup) -> None:
  """Makes the group one jax.distributed job when the launcher names its coordinator
  (JAX_COORDINATOR_ADDRESS); each process then checkpoints its own networks alone
  (`checkpoint.checkpoint_alone`). Without a coordinator the processes stay plain JAX processes.

  Raises:
    ValueError: the job's process index or count is not the launcher's.
  """
  if (sharding.COORDINATOR_ENV not in os.environ or group.count == 1
      or jax.distributed.is_initialized()):
    return  # (joined already: the taxonomy's task bank stage asks again)
  sharding.maybe_initialize_distributed(True)
  if (jax.process_index(), jax.process_count()) != (group.index, group.count):
    raise ValueError(f"jax.distributed placed this process at {jax.process_index()} of "
                     f"{jax.process_count()}, the launcher at {group.index} of {group.count}")
  checkpoint.checkpoint_alone()
  print(f"process {group.index}: one jax.distributed job of {jax.process_count()} processes",
        file=sys.stderr, flush=True)


@contextlib.contextmanager
def heartbeat(group: WorkGroup, workdir: str | pathlib.Path) -> Iterator[WorkGroup]:
  """Beats for this process of `group` while inside (a thread touching
  `<workdir>/.workers/<index>`); yields the group to pass to `wait_for`. A group of one does
  not beat."""
  if group.count == 1:
    yield group
    return
  folder = pathlib.Path(workdir) / HEARTBEAT_DIR
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / str(group.index)
  limit = lost_after_seconds()
  # Four beats within the limit; when nobody is ever taken for dead, still one every 30 s.
  interval = 30.0 if limit <= 0 else min(30.0, limit / 4)
  stop = threading.Event()

  def beat():
    while not stop.wait(interval):
      path.touch()

  path.touch()  # the first beat, before anyone can look
  thread = threading.Thread(target=beat, name="taskonomy-heartbeat", daemon=True)
  thread.start()
  try:
    yield dataclasses.replace(group, heartbeats=str(folder))
  finally:
    stop.set()
    thread.join()


def wait_for(done: Callable[[], bool], what: str, timeout: float | None = None,
             group: WorkGroup | None = None) -> None:
  """Returns once `done()` (the other processes' markers exist); says once what it waits for.

  Raises:
    TimeoutError: not done within `timeout` seconds (None: wait as long as it takes).
    WorkerLostError: another process of `group` (one beating, `heartbeat`) is lost
      (`WorkGroup.lost`): rerun it with the same command and environment; finished units are
      kept, and this process's run resumes the same way.
  """
  start, said = time.time(), False
  while not done():
    if not said:
      print(f"waiting for {what}", file=sys.stderr, flush=True)
      said = True
    waited = time.time() - start
    if timeout is not None and waited > timeout:
      raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
    lost = group.lost(waited) if group is not None else []
    if lost:
      raise WorkerLostError(
          f"waiting for {what}: {'; '.join(lost)} (no heartbeat in {group.heartbeats} for "
          f"over {lost_after_seconds():.0f} s, {LOST_AFTER_ENV}); rerun the lost process with "
          "its command and environment, then this one: finished units are kept")
    time.sleep(POLL_SECONDS)
