"""Training the task bank: every task network of the registry, one after another, resumable.

`train_task_bank(config, workdir)` trains each task with the one training loop
(`taskonomy_jax.train.task.train_task`) in `<workdir>/<task>/`, and saves random projection as a
seeded, untrained encoder. A task whose `done.json` exists is skipped; an interrupted task resumes
from its latest orbax checkpoint (the loop restores model, optimizer and data-iterator state).
`<workdir>/bank.json` records the config, so the bank can be loaded (`bank.TaskBank`) and a
resumed run with other settings is refused rather than mixed.

`config.per_task` (optional) maps a task's registry name to settings laid over the bank's for
that task alone, e.g. `{"depth_zbuffer": {"model": {"width": 16}, "train": {"num_steps": 3000}}}`:
one bank, one config file, and the tasks that need a bigger network or another schedule get it
(the original code kept one config per task too). `task_settings` is the one place that merge
happens; training, loading and evaluating all go through it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import tqdm

from taskonomy_jax import files, models, tasks, workdir_lock
from taskonomy_jax.taskbank import data as data_lib
from taskonomy_jax.train import checkpoint, loop, workers
from taskonomy_jax.train import task as train_task

BANK_FILE = "bank.json"
DONE_FILE = "done.json"
# Per-dimension mean/std a task's targets were standardised with (`data.standardize_targets`);
# written before the task trains, read back on resume and by `bank.TaskBank` to undo it.
TARGET_STATS_FILE = "target_stats.json"
# Settings that must agree between a bank and a run resuming it (they change every network);
# each started task's model and data settings (the bank's, or its per_task entry's) too.
_PINNED = ("resolution", "data")
# The dataset itself is one per bank; a task may take its own sampling and augmentation.
_BANK_DATA = frozenset({"name", "builder_config", "data_dir", "build_if_missing"})
# Where the dataset is found, not what it is: a workdir moved to another path or machine (its
# dataset with it) resumes its bank.
_DATA_LOCATION = ("data_dir", "build_if_missing")



def task_names(config: Mapping[str, Any]) -> list[str]:
  """The bank's tasks (registry names, registry order); all tasks when `config.tasks` is empty."""
  chosen = config.get("tasks") or ()
  if not chosen:
    return [t.name for t in tasks.all_tasks()]
  names = {tasks.get(n).name for n in chosen}
  return [t.name for t in tasks.all_tasks() if t.name in names]


def _as_dict(config: Mapping[str, Any]) -> dict[str, Any]:
  """A bank config as plain dicts, whether a ConfigDict or bank.json read back."""
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)


def _overlay(base: Mapping[str, Any], over: Mapping[str, Any], where: str) -> dict[str, Any]:
  """`base` with `over`'s values put in, recursively; a key `base` lacks is an error."""
  out = dict(base)
  for key, value in over.items():
    if key not in base:
      raise ValueError(f"per_task setting {where}{key} is not a bank setting; known at this "
                       f"level: {', '.join(sorted(base))}")
    if isinstance(value, Mapping) and isinstance(base[key], Mapping):
      out[key] = _overlay(base[key], value, f"{where}{key}.")
    else:
      out[key] = value
  return out


def check_per_task(config: Mapping[str, Any]) -> None:
  """Checks `config.per_task` before anything trains.

  Raises:
    tasks.UnknownTaskError: a key is no task (the message suggests the closest names).
    ValueError: a key is an alias rather than the registry name, or a setting is unknown or one
      that must stay common to the bank (resolution, the dataset, tasks).
  """
  base = _as_dict(config)
  for name, over in dict(base.get("per_task") or {}).items():
    registry_name = tasks.get(name).name
    if name != registry_name:
      raise ValueError(f"per_task key {name!r}: use the registry name {registry_name!r}")
    common = sorted(set(over) & {"resolution", "tasks", "task", "per_task"})
    common += [f"data.{k}" for k in sorted(set(over.get("data") or {}) & _BANK_DATA)]
    if common:
      raise ValueError(f"per_task[{name!r}] sets {', '.join(common)}: those are one per bank")
    _overlay(base, over, f"per_task[{name!r}].")


def task_settings(config: Mapping[str, Any], task: str) -> dict[str, Any]:
  """The settings `task` trains with, as plain dicts: the bank's with `per_task[task]` over them.

  `config` is the bank config (a ConfigDict, or bank.json as read back).
  """
  base = _as_dict(config)
  over = dict(base.get("per_task") or {}).get(task) or {}
  out = _overlay(base, over, f"per_task[{task!r}].")
  out["task"] = task
  for bank_only in ("tasks", "per_task"):  # about the bank, not this task's network
    out.pop(bank_only, None)
  return out


def task_config(config: ml_collections.ConfigDict, task: str) -> ml_collections.ConfigDict:
  """`task_settings` as the ConfigDict the training loop takes."""
  return ml_collections.ConfigDict(task_settings(config, task))


def is_done(workdir: str, task: str) -> bool:
  return os.path.isfile(os.path.join(workdir, task, DONE_FILE))


def done_record(workdir: str, task: str) -> dict[str, Any] | None:
  """The task's `done.json` (steps, seconds), or None while it is not finished."""
  return files.read_json(os.path.join(workdir, task, DONE_FILE))


def _check_bank_file(config: ml_collections.ConfigDict, workdir: str, write: bool = True) -> None:
  path = os.path.join(workdir, BANK_FILE)
  new = json.loads(config.to_json())
  old = files.read_json(path)
  if old is not None:
    diff = [k for k in _PINNED if _trained_with(old.get(k), k) != _trained_with(new.get(k), k)]
    # A task already started must be rebuilt as it was trained; the others may take new
    # per-task settings (so a per_task entry can be added for a task not trained yet).
    started = [t for t in tasks.names() if os.path.isdir(os.path.join(workdir, t))]
    changed = [t for t in started
               if any(_trained_with(task_settings(old, t)[k], k)
                      != _trained_with(task_settings(new, t)[k], k) for k in ("model", "data"))]
    if changed:
      diff.append(f"model/data settings ({', '.join(changed)})")
    if diff:
      raise ValueError(f"{workdir} holds a task bank trained with other {', '.join(diff)}; "
                       "use a new --workdir or the same config to resume")
  if write:
    files.write_json_atomic(path, new)


def _trained_with(settings: Any, section: str) -> Any:
  """A pinned section of bank settings without the dataset's location (`_DATA_LOCATION`)."""
  if section != "data" or not isinstance(settings, Mapping):
    return settings
  return {k: v for k, v in settings.items() if k not in _DATA_LOCATION}


def random_encoder(config: ml_collections.ConfigDict) -> tuple[models.TaskNetwork, dict]:
  """Random projection: the encoder and its seeded initialisation (config: `task_config(bank,
  "random")`)."""
  model = models.build("random", config.model)
  sample = jnp.zeros((1, config.resolution, config.resolution, 3), jnp.float32)
  return model, loop.init_variables(model, sample, config.train.seed,
                                    prng_impl=config.get("init_prng_impl"))


def save_random_encoder(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Random projection saved like a trained network."""
  checkpoint.save_variables(workdir, random_encoder(config)[1])


def enable_compilation_cache(path: str) -> None:
  """jax's persistent compilation cache: identical networks (tasks with the same output kind,
  and every resumed run) load compiled steps instead of compiling again."""
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def target_stats(workdir: str, task: str) -> dict[str, list[float]] | None:
  """The statistics `task`'s targets were standardised with, or None (trained unstandardised)."""
  return files.read_json(os.path.join(workdir, task, TARGET_STATS_FILE))


def _with_target_stats(config: ml_collections.ConfigDict,
                       workdir: str) -> ml_collections.ConfigDict:
  """The task's config with `data.target_stats` set where its targets are standardised: measured
  on the training split the first time, then read back, so a resumed run sees the same."""
  spec = tasks.get(config.task)
  if not data_lib.has_standardized_targets(spec, config.data.get("standardize_targets")):
    return config
  stats = target_stats(workdir, spec.name)
  if stats is None:
    stats = data_lib.target_statistics(spec, config.data, config.resolution)
    files.write_json_atomic(os.path.join(workdir, spec.name, TARGET_STATS_FILE), stats)
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.target_stats = stats
  return config


def train_task_bank(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict]:
  """Trains (or resumes) every task of `config` under `workdir`; returns {task: done record}.

  With `config.multihost`, this process is one of several (train/workers.py) and trains its
  share of the tasks (round robin in registry order) on its own devices (`train.local_devices`):
  the networks are the ones one process trains (same seeds, same data, whole batches).
  Process 0 writes bank.json; every process returns once all tasks are done (their done.json
  written), with every task's record.

  Raises:
    ValueError: the workdir holds a bank with other settings; a bad config (see train_task).
  """
  group = workers.work_group(bool(config.get("multihost", False)))
  return _train_tasks(config, workdir, group)


@workdir_lock.locked  # a second run on the workdir is refused, naming the first
def _train_tasks(config: ml_collections.ConfigDict, workdir: str,
                 group: workers.WorkGroup) -> dict[str, dict]:
  data_lib.register()  # config.data.name: the TFDS datasets
  names = task_names(config)
  check_per_task(config)
  os.makedirs(workdir, exist_ok=True)
  multi = group.count > 1
  with workers.heartbeat(group, workdir) as beating:  # the other processes see this one alive
    if beating.is_first:  # the one writer of bank.json
      _check_bank_file(config, workdir)
    else:  # a bank.json of an earlier run may be there: the one process 0 checks is waited for
      workers.wait_for(lambda: files.read_json(os.path.join(workdir, BANK_FILE)) ==
                       json.loads(config.to_json()), "process 0's bank.json", group=beating)
      _check_bank_file(config, workdir, write=False)
    if config.get("compilation_cache", False):
      enable_compilation_cache(os.path.join(os.path.abspath(workdir), ".jax_cache"))
    records = _train_share(config, workdir, beating.share(names), multi)
    workers.wait_for(lambda: all(is_done(workdir, n) for n in names),
                     "the other processes' task networks", group=beating)
  return {n: records.get(n) or done_record(workdir, n) for n in names}


def _train_share(config: ml_collections.ConfigDict, workdir: str, names: list[str],
                 local: bool) -> dict[str, dict]:
  """Trains `names` one after another (on this process's devices alone when `local`)."""
  records = {}
  bar = tqdm.tqdm(names, desc="task bank", unit="task",
                  disable=not config.train.get("progress", True))
  for name in bar:
    bar.set_postfix(task=name)
    tdir = os.path.join(workdir, name)
    record = done_record(workdir, name)
    if record is not None:
      records[name] = record
      continue
    os.makedirs(tdir, exist_ok=True)
    start = time.perf_counter()
    if tasks.get(name).decoder == "none":
      save_random_encoder(task_config(config, name), tdir)
      steps = 0
    else:
      task_cfg = _with_target_stats(task_config(config, name), workdir)
      if local:  # the loop's choice of mesh: this process's devices, not the run's
        task_cfg.train.local_devices = True
      state = train_task.train_task(task_cfg, tdir)
      steps = int(state.step)
    # The task's own settings too: bank.json may later gain per_task entries for other tasks.
    records[name] = {"task": name, "steps": steps,
                     "seconds": round(time.perf_counter() - start, 1),
                     "settings": task_settings(json.loads(config.to_json()), name)}
    files.write_json_atomic(os.path.join(tdir, DONE_FILE), records[name])
  return records
