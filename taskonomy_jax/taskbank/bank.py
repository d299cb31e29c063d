"""The checkpointed task bank as a `Predictor` (taskonomy_jax/taskbank/predict.py's interface).

    bank = TaskBank.load("/tmp/bank")          # every finished task of a bank workdir
    outputs = bank(image)                      # (R, R, 3) in [-1, 1] -> {task: output}

Each task's network sees what it was trained on: the image, its grey version (colorization),
the image with its centre blanked (inpainting), its tiles (jigsaw, in order), or the image in
every view (multi-view tasks: "no motion" / "same point" is then the right answer).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from taskonomy_jax import models, tasks
from taskonomy_jax.taskbank import selfsup
from taskonomy_jax.taskbank import train as train_lib
from taskonomy_jax.train import checkpoint


def network_input(spec: tasks.TaskSpec, image: np.ndarray) -> np.ndarray:
  """One image (R, R, 3) -> the task network's input for it, with a batch axis of 1."""
  if spec.name in selfsup.SELF_SUPERVISED:
    return selfsup.network_input(spec.name, image)[None]
  if spec.num_views > 1:
    return np.repeat(image[None, None], spec.num_views, axis=1)
  return image[None]


class TaskBank:
  """Trained task networks loaded from a bank workdir; callable as a `Predictor`."""

  def __init__(self, config: dict[str, Any], networks: dict[str, tuple[Any, Any]],
               target_stats: dict[str, dict[str, list[float]]] | None = None):
    """`networks`: {task: (flax module, variables)}; `target_stats`: {task: {"mean", "std"}}
    for the tasks trained on standardised targets (their outputs are mapped back)."""
    self.config = config
    self.resolution = int(config["resolution"])
    self._nets = networks
    self._target_stats = dict(target_stats or {})
    self._jitted: dict[str, Callable] = {}

  @classmethod
  def load(cls, workdir: str, task_names: Sequence[str] | None = None) -> TaskBank:
    """Loads every finished task (or `task_names`) of the bank in `workdir`.

    Raises:
      FileNotFoundError: not a bank workdir, or a requested task is not trained (yet).
    """
    path = os.path.join(workdir, train_lib.BANK_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{workdir} is not a task bank (no {train_lib.BANK_FILE}); train "
                              "one with `taskonomy taskbank train --workdir DIR`")
    with open(path) as f:
      config = json.load(f)
    # Every finished task counts, whichever run (or parallel worker, `--tasks`) trained it.
    wanted = [tasks.get(n).name for n in task_names] if task_names else \
        [t.name for t in tasks.all_tasks() if train_lib.is_done(workdir, t.name)]
    missing = [n for n in wanted if not train_lib.is_done(workdir, n)]
    if missing:
      raise FileNotFoundError(f"tasks not trained in {workdir}: {', '.join(missing)}")
    if not wanted:
      raise FileNotFoundError(f"no finished task in {workdir}")
    if config.get("compilation_cache"):  # the forward passes compiled by `evaluate` are reused
      train_lib.enable_compilation_cache(os.path.join(os.path.abspath(workdir), ".jax_cache"))
    stats = {n: s for n in wanted if (s := train_lib.target_stats(workdir, n)) is not None}
    # A network trained on standardised targets was built with a linear output (train/task.py).
    nets = {n: (models.build(n, {**train_lib.task_settings(config, n)["model"],
                                 "linear_output": n in stats}),
                checkpoint.load_variables(os.path.join(workdir, n))) for n in wanted}
    return cls(config, nets, stats)

  @property
  def task_names(self) -> list[str]:
    return list(self._nets)

  def network(self, task: str) -> tuple[Any, Any]:
    """(flax module, variables) of `task`'s network; its outputs are in standardised units
    where the task trained on standardised targets (`batch_apply` maps them back)."""
    return self._nets[tasks.get(task).name]

  def target_stats(self, task: str) -> dict[str, list[float]] | None:
    """The statistics `task`'s targets were standardised with ({"mean", "std"} per channel), or
    None where its network predicts the targets' own units."""
    return self._target_stats.get(tasks.get(task).name)

  def batch_apply(self, task: str) -> Callable[[np.ndarray], np.ndarray]:
    """The network of `task` on a batch of inputs (as the training data gives them); outputs in
    the targets' own units (standardised targets mapped back)."""
    if task not in self._jitted:
      model, variables = self._nets[task]
      # Variables as an argument, not closed-over constants: a smaller program that compiles
      # faster and hits jax's compilation cache when the bank is loaded again.
      fn = jax.jit(functools.partial(model.apply, train=False))
      stats = self.target_stats(task)
      mean, std = ((np.float32(0), np.float32(1)) if stats is None else
                   (np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)))
      self._jitted[task] = lambda x: (
          np.asarray(fn(variables, np.asarray(x, np.float32))) * std + mean)
    return self._jitted[task]

  def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    r = self.resolution
    if np.shape(image) != (r, r, 3):
      raise ValueError(f"expected a ({r}, {r}, 3) image in [-1, 1], got shape {np.shape(image)}")
    image = np.asarray(image, np.float32)
    return {n: self.batch_apply(n)(network_input(tasks.get(n), image))[0]
            for n in self._nets}

  def predict_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """`__call__` on a batch `(B, R, R, 3)`: one forward pass per network, `{task: (B, ...)}`
    (jit compiles one program per batch size: callers pad to a few sizes)."""
    r = self.resolution
    if np.ndim(images) != 4 or np.shape(images)[1:] != (r, r, 3):
      raise ValueError(f"expected (B, {r}, {r}, 3) images in [-1, 1], got shape "
                       f"{np.shape(images)}")
    images = np.asarray(images, np.float32)
    return {n: self.batch_apply(n)(np.concatenate([network_input(tasks.get(n), im)
                                                   for im in images]))
            for n in self._nets}
