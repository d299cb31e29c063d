"""Train one task network by name from a run config (taskonomy_jax/configs/task_network.py).

Everything is chosen by name: the task from the registry, the loss and metric from the task,
the optimizer from `OPTIMIZERS`, the data from `DATASETS` (other modules register theirs, e.g.
the TFDS pipelines of taskonomy_jax/data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grain
import jax.numpy as jnp
import ml_collections
import optax

from taskonomy_jax import models, tasks
from taskonomy_jax.train import loop, losses, metrics, sharding, toy_data

DatasetFn = Callable[[tasks.TaskSpec, Mapping[str, Any], str, int], grain.MapDataset]


def _toy(spec: tasks.TaskSpec, cfg: Mapping[str, Any], split: str, resolution: int):
  n = cfg["num_train"] if split == "train" else cfg["num_eval"]
  return toy_data.dataset(spec, n, resolution, seed=0 if split == "train" else 1)


DATASETS: dict[str, DatasetFn] = {"toy": _toy}


def _adam(cfg, schedule):
  # L2 weight decay added to the gradient before Adam == the original's slim L2 regularizer.
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(schedule))


def _sgd(cfg, schedule):
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.sgd(schedule, momentum=cfg.get("momentum", 0.9)))


OPTIMIZERS = {"adam": _adam, "sgd": _sgd}


def learning_rate_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """Piecewise constant: `cfg.learning_rate`, x0.1 at each of `cfg.decay_steps` (update count)."""
  return optax.piecewise_constant_schedule(
      cfg.learning_rate, {int(s): 0.1 for s in cfg.get("decay_steps", ())})


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """`cfg.name` in OPTIMIZERS with `learning_rate_schedule(cfg)`."""
  if cfg.name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {cfg.name!r}; accepted: {sorted(OPTIMIZERS)}")
  return OPTIMIZERS[cfg.name](cfg, learning_rate_schedule(cfg))


def make_data(spec: tasks.TaskSpec, cfg: ml_collections.ConfigDict, split: str,
              resolution: int) -> grain.MapDataset:
  if cfg.name not in DATASETS:
    raise ValueError(f"unknown dataset {cfg.name!r}; accepted: {sorted(DATASETS)}")
  return DATASETS[cfg.name](spec, cfg, split, resolution)


def train_task(config: ml_collections.ConfigDict, workdir: str) -> loop.TrainState:
  """Trains (or resumes) `config.task`'s network; returns the final state."""
  spec = tasks.get(config.task)
  if spec.decoder == "none":
    raise ValueError(f"task {spec.name!r} is an untrained encoder (random projection); "
                     f"trainable tasks: {', '.join(t.name for t in tasks.trainable())}")
  # Cheap checks first: a bad batch size should not cost a compilation.
  local = bool(config.train.get("local_devices", False))
  sharding.check_batch_size(config.train.batch_size,
                            sharding.make_mesh(config.train.get("num_devices"), local=local),
                            1 if local else None)
  loop_cfg = loop.LoopConfig.from_config(config.train)
  tx = make_optimizer(config.optimizer)
  # Standardised targets (taskbank/data.py) are unbounded: no tanh on the network's output.
  model = models.build(spec, {**config.model,
                              "linear_output": bool(config.data.get("target_stats"))})
  data = make_data(spec, config.data, "train", config.resolution)
  eval_data = make_data(spec, config.data, "eval", config.resolution) \
      if config.data.get("num_eval", 0) else None
  sample = jnp.asarray(data[0]["inputs"])[None]
  variables = loop.init_variables(model, sample, config.train.seed,
                                  prng_impl=config.get("init_prng_impl"))
  return loop.train(
      apply_fn=loop.network_apply(model),
      loss_fn=lambda pred, batch: losses.task_loss(spec, pred, batch),
      metric_fn=lambda pred, batch: metrics.task_metric(spec, pred, batch),
      variables=variables, tx=tx, data=data, eval_data=eval_data, cfg=loop_cfg, workdir=workdir,
      learning_rate_fn=learning_rate_schedule(config.optimizer))
