"""Orbax checkpoints: train state and data-iterator state together, and encoder restore.

Layout: `<workdir>/checkpoints/<step>/{state,data}`; `state` is the `TrainState` as a pytree
(`params`, `batch_stats`, `opt_state`, `step`), `data` the grain iterator's position, so a
restarted run continues with exactly the batches the interrupted one would have seen.
Orbax writes each step to a temporary directory and renames it on success, so a run killed
mid-save leaves the previous checkpoint intact.

Inside a jax.distributed job whose processes each train their own networks (train/workers.py),
`checkpoint_alone()` makes every checkpoint this process's own: orbax otherwise takes each for one
global checkpoint that all processes write together. The files are the ones a single process
writes, so a single-process run restores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from etils import epath
from orbax.checkpoint._src.futures import future as orbax_future
from orbax.checkpoint._src.serialization import ocdbt_utils
from orbax.checkpoint._src.serialization import tensorstore_utils as ts_utils

CHECKPOINT_DIR = "checkpoints"
# Set by `checkpoint_alone()`: this process of a jax.distributed job writes and reads every
# checkpoint by itself.
_ALONE = False


class _OwnNumpyHandler(ocp.type_handlers.NumpyHandler):
  """orbax's numpy handler, writing from whichever process saves: orbax's writes only from
  process 0 (a numpy array is taken for a copy every process holds), which left a checkpoint
  saved by process 1 without its arrays. Its body is orbax 0.12.8's with that test dropped
  (private modules: the version requirements/constraints.txt pins)."""

  async def _background_serialize(self, values: Any, infos: Any, args: Any = None) -> None:
    writes = []
    for value, info, arg in zip(values, infos, args, strict=True):
      await info.await_path_creation()
      ocdbt = info.is_ocdbt_checkpoint
      spec = ts_utils.build_array_write_spec(
          info=info, arg=arg, global_shape=value.shape, local_shape=value.shape,
          dtype=value.dtype, use_ocdbt=ocdbt, metadata_key=self._metadata_key,
          process_index=ocdbt_utils.get_process_index_for_subdir(
              use_ocdbt=ocdbt, override_ocdbt_process_id=self._override_ocdbt_process_id))
      writes.append(self._open_and_write(value, spec.json, info.ts_context))
    await asyncio.gather(*writes)


class _OwnIteratorHandler(grain.checkpoint.CheckpointHandler):
  """grain's iterator handler under the file name a single process gives it
  (`process_0-of-1.json`, grain names it by the jax process): the iterator is this process's
  alone, so a run with any number of processes resumes it."""

  FILE = "process_0-of-1.json"

  def save(self, directory: epath.Path, item: Any = None, args: Any = None) -> None:
    item = item or args.item
    (directory / self.FILE).write_text(json.dumps(item.get_state(), indent=4))

  def restore(self, directory: epath.Path, item: Any = None, args: Any = None) -> Any:
    item = item or args.item
    item.set_state(json.loads((directory / self.FILE).read_text()))
    item.start_prefetch()
    return item


@ocp.args.register_with_handler(_OwnIteratorHandler, for_save=True)
@dataclasses.dataclass
class _OwnIteratorSave(ocp.args.CheckpointArgs):
  item: Any


@ocp.args.register_with_handler(_OwnIteratorHandler, for_restore=True)
@dataclasses.dataclass
class _OwnIteratorRestore(ocp.args.CheckpointArgs):
  item: Any


def checkpoint_alone() -> None:
  """From now on this process saves and restores each checkpoint by itself, with no other
  process of its jax.distributed job taking part (each trains its own networks,
  train/workers.py). Without a job (one process) orbax already does; nothing changes."""
  global _ALONE
  if jax.process_count() == 1 or _ALONE:
    return
  ocp.type_handlers.register_type_handler(np.ndarray, _OwnNumpyHandler(), override=True)
  # A save's steps signal each other (e.g. "directories created") under coordination-service
  # keys named by an operation number every process counts from 0: one process's signal would
  # release another's save before its folders exist. Per-process key names keep them apart.
  contract = orbax_future.AwaitableSignalsContract
  contract.awaitable_signals_contract_prefix = (
      f"{contract.awaitable_signals_contract_prefix}_process{jax.process_index()}")
  _ALONE = True


def _alone() -> ocp.options.MultiprocessingOptions | None:
  """Options making this process the only one, and the primary one, of a checkpoint (None:
  orbax's default, every process of the job). The barrier prefix keeps its coordination keys
  apart from another process's saves going on at the same time."""
  if not _ALONE:
    return None
  me = jax.process_index()
  return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                            barrier_sync_key_prefix=f"process{me}")


def manager(workdir: str, save_every: int, keep: int) -> ocp.CheckpointManager:
  """A manager saving every `save_every` steps and keeping the last `keep`."""
  if save_every <= 0 or keep <= 0:
    raise ValueError(f"checkpoint save_every ({save_every}) and keep ({keep}) must be positive")
  path = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
  alone = _alone()
  if alone is None:
    options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep)
    return ocp.CheckpointManager(path, options=options, item_names=("state", "data"))
  os.makedirs(path, exist_ok=True)  # orbax creates no root for a subset of processes
  options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep,
                                         multiprocessing_options=alone, create=False)
  return ocp.CheckpointManager(path, options=options, item_handlers=_own_handlers(alone))


def _own_handlers(alone: ocp.options.MultiprocessingOptions) -> dict[str, Any]:
  """The items' handlers for a checkpoint of this process alone (orbax gives its default ones
  the job's options, so that process 0 alone would write the state's metadata)."""
  return {"state": ocp.StandardCheckpointHandler(multiprocessing_options=alone),
          "data": _OwnIteratorHandler()}


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         data_iter: grain.DatasetIterator | None, force: bool = False) -> bool:
  if _ALONE:  # orbax refuses a jax.Array on one process's devices within a job: host copies
    state = jax.device_get(state)
  items = {"state": ocp.args.StandardSave(state)}
  if data_iter is not None:
    items["data"] = (_OwnIteratorSave if _ALONE else grain.checkpoint.CheckpointSave)(data_iter)
  return mngr.save(step, args=ocp.args.Composite(**items), force=force)


def save_variables(workdir: str, variables: Any, step: int = 0) -> str:
  """Writes a network's `{'params', 'batch_stats'}` as checkpoint `step` of `workdir`, in the
  training loop's layout (a state without optimizer), so `load_variables(workdir)` and
  `restore_encoder` read it as they read a trained network. Returns the step's folder.

  The one writer of variables that did not come out of the loop: random projection's untrained
  encoder, converted visualpriors weights.
  """
  mngr = manager(workdir, save_every=1, keep=1)
  state = {"step": np.asarray(step, np.int32), "params": variables["params"],
           "batch_stats": variables.get("batch_stats", {})}
  save(mngr, step, state, None, force=True)
  mngr.wait_until_finished()
  mngr.close()
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR, str(step))


def restore(mngr: ocp.CheckpointManager, abstract_state: Any,
            data_iter: grain.DatasetIterator | None, step: int | None = None) -> Any:
  """Restores the latest (or `step`) checkpoint into arrays laid out like `abstract_state`.

  `abstract_state` leaves are `jax.ShapeDtypeStruct`s with shardings; `data_iter` is moved to
  the saved position in place.
  """
  step = mngr.latest_step() if step is None else step
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iter is not None:
    restore_args = _OwnIteratorRestore if _ALONE else grain.checkpoint.CheckpointRestore
    items["data"] = restore_args(data_iter)
  return mngr.restore(step, args=ocp.args.Composite(**items))["state"]


def load_variables(workdir_or_checkpoint: str, step: int | None = None) -> dict[str, Any]:
  """{'params', 'batch_stats'} of a trained network, as host arrays, from a workdir.

  Accepts a training workdir, its `checkpoints/` dir, or one step's directory.

  Raises:
    FileNotFoundError: the path is not a folder, holds no checkpoint, or not the `step` asked
      for. Nothing is created on the way: a manager opened on a missing path would make it.
  """
  path = os.path.abspath(workdir_or_checkpoint)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"no checkpoint at {workdir_or_checkpoint}: no such folder (expected a training workdir, "
        f"its {CHECKPOINT_DIR}/ folder or one step's folder)")
  if os.path.isdir(os.path.join(path, CHECKPOINT_DIR)):
    path = os.path.join(path, CHECKPOINT_DIR)
  if not os.path.isdir(os.path.join(path, "state")):
    with _orbax_warnings_off():
      mngr = _read_only_manager(path)
    steps = list(mngr.all_steps())
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint found under {workdir_or_checkpoint}")
    if step not in steps:
      raise FileNotFoundError(
          f"no checkpoint of step {step} under {workdir_or_checkpoint}; steps saved: "
          f"{', '.join(map(str, sorted(steps)))}")
    path = os.path.join(path, str(step))
  with _orbax_warnings_off():
    restored = _restore_on_this_host(os.path.join(path, "state"))
  return {"params": restored["params"], "batch_stats": restored.get("batch_stats", {})}


def _read_only_manager(path: str) -> ocp.CheckpointManager:
  """A manager that only lists and reads `path`'s steps (alone, within a job)."""
  alone = _alone()
  if alone is None:
    return ocp.CheckpointManager(path, item_names=("state", "data"),
                                 options=ocp.CheckpointManagerOptions(read_only=True))
  options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                         multiprocessing_options=alone)
  return ocp.CheckpointManager(path, options=options, item_handlers=_own_handlers(alone))


@contextlib.contextmanager
def _orbax_warnings_off() -> Iterator[None]:
  """Orbax warns on every read-only open (the options it adjusts, 'directory is read only') and
  on every restore of one item of a composite checkpoint (its metadata lives a level up): four
  lines per network each time a bank is read, none of them a problem. Errors still show."""
  level = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(level)


def _restore_on_this_host(path: str) -> Any:
  """A saved pytree with every array on this process's first device, whatever mesh saved it
  (orbax refuses a plain restore on another topology, e.g. 8 devices' checkpoint on a laptop)."""
  alone = _alone()
  ckptr = (ocp.StandardCheckpointer() if alone is None
           else ocp.StandardCheckpointer(multiprocessing_options=alone))
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        ckptr.metadata(path).item_metadata)
  return ckptr.restore(path, target)


def restore_encoder(variables: dict[str, Any], checkpoint: str) -> dict[str, Any]:
  """`variables` of a new model with its `encoder` replaced by the trained one in `checkpoint`.

  The new model may have any decoder; only the submodule named `encoder` is taken, and its
  shapes must match (same width/blocks/rep_channels).
  """
  trained = load_variables(checkpoint)
  out = jax.tree.map(lambda x: x, variables)  # shallow copies of every dict level
  for col in ("params", "batch_stats"):
    if "encoder" not in out.get(col, {}):
      raise ValueError(f"the new model's {col} have no 'encoder' submodule to restore into")
    new, old = out[col]["encoder"], trained[col]["encoder"]
    if jax.tree.structure(new) != jax.tree.structure(old) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old),
                                           strict=True)):
      raise ValueError(f"the checkpoint's encoder {col} do not fit the new model's encoder "
                       "(different width, blocks or rep_channels?)")
    out[col] = {**out[col], "encoder": old}
  return out
