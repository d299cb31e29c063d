"""Orbax checkpoints: train state and data-iterator state together, and encoder restore.

Layout: `<workdir>/checkpoints/<step>/{state,data}`; `state` is the `TrainState` as a pytree
(`params`, `batch_stats`, `opt_state`, `step`), `data` the grain iterator's position, so a
restarted run continues with exactly the batches the interrupted one would have seen.
Orbax writes each step to a temporary directory and renames it on success, so a run killed
mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

CHECKPOINT_DIR = "checkpoints"


def manager(workdir: str, save_every: int, keep: int) -> ocp.CheckpointManager:
  """A manager saving every `save_every` steps and keeping the last `keep`."""
  if save_every <= 0 or keep <= 0:
    raise ValueError(f"checkpoint save_every ({save_every}) and keep ({keep}) must be positive")
  path = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
  options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep)
  return ocp.CheckpointManager(path, options=options, item_names=("state", "data"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         data_iter: grain.DatasetIterator | None, force: bool = False) -> bool:
  items = {"state": ocp.args.StandardSave(state)}
  if data_iter is not None:
    items["data"] = grain.checkpoint.CheckpointSave(data_iter)
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
    items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
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
      mngr = ocp.CheckpointManager(path, item_names=("state", "data"),
                                   options=ocp.CheckpointManagerOptions(read_only=True))
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
  ckptr = ocp.StandardCheckpointer()
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
