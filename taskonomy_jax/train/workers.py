"""Work divided among processes that each train their own networks (`multihost=True` on
`taskonomy taskbank train` and `taskonomy taxonomy`).

The task bank and the transfers are many independent networks, so the processes of such a run
do not form one jax.distributed job: each is a plain JAX process on its own devices (its local
mesh), takes every `count`-th unit of a work list from its `index` on, and writes its units
into the shared workdir, each unit atomically and with a completion marker. Processes meet by
waiting for those markers (`wait_for`), never on a message: a rerun after a process died sees
exactly what finished, and a barrier cannot pass on a stale file of an earlier attempt.

Why not jax.distributed: orbax 0.12.8 treats every checkpoint of a jax.distributed job as one
global checkpoint. A network on one process's devices is refused ("Cannot serialize host local
jax.Array"); saved from host memory with `MultiprocessingOptions(active_processes={me})`, two
processes' async saves collided on coordination-service keys (both number their operations
from 0), and with those keys prefixed per process, a save by process 1 lost its array metadata
(orbax leaves parts of it to process 0) -- all tried on the tiny taxonomy, two processes. The
processes need no collective anyway: nothing is reduced across networks. One network trained
by all processes (`taskonomy train --set multihost=True`) still joins jax.distributed
(train/sharding.py).

The process's place comes from the launcher: JAX_PROCESS_ID / JAX_NUM_PROCESSES (the variables
`sharding.maybe_initialize_distributed` reads), or SLURM_PROCID / SLURM_NTASKS under srun.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from taskonomy_jax import workdir_lock

T = TypeVar("T")
# (index variable, count variable), first match wins.
ENV = (("JAX_PROCESS_ID", "JAX_NUM_PROCESSES"), ("SLURM_PROCID", "SLURM_NTASKS"))
POLL_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class WorkGroup:
  """This process's place among the `count` processes dividing a run's work."""

  index: int = 0
  count: int = 1

  @property
  def is_first(self) -> bool:
    """Process 0: the one writer of the run's shared files (configs, joined results)."""
    return self.index == 0

  def share(self, items: Sequence[T]) -> list[T]:
    """This process's items: every `count`-th from `index` (round robin, so neighbouring items,
    often of similar cost, go to different processes)."""
    return list(items)[self.index::self.count]


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
  return group


def wait_for(done: Callable[[], bool], what: str, timeout: float | None = None) -> None:
  """Returns once `done()` (the other processes' markers exist); says once what it waits for.

  Raises:
    TimeoutError: not done within `timeout` seconds (None: wait as long as it takes; a dead
      process is rerun, and this one with it).
  """
  start, said = time.time(), False
  while not done():
    if not said:
      print(f"waiting for {what}", file=sys.stderr, flush=True)
      said = True
    if timeout is not None and time.time() - start > timeout:
      raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
    time.sleep(POLL_SECONDS)
