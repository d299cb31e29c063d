"""The one training loop: task networks now, batched transfer readouts later.

The loop is built from parts, so other trainers reuse it instead of copying it:
  - `apply_fn(variables, inputs, train, rngs) -> (pred, new_batch_stats)`: the model. For a task
    network it is `network_apply(model)`; for transfer readouts it can be a `jax.vmap` of a
    readout over stacked parameters (leading axis = readout), with `loss_fn` summing the
    per-readout losses, and nothing below changes.
  - `loss_fn(pred, batch) -> scalar`: e.g. `losses.task_loss` bound to a task.
  - `data`: a `grain.MapDataset` of examples (dicts of numpy arrays, an `inputs` key plus what
    `loss_fn` reads); the loop shards it by process, shuffles, repeats, batches, and checkpoints
    the iterator with the model.

`jax.jit` over a `data` mesh (taskonomy_jax/train/sharding.py): batch split over devices,
state replicated or FSDP-split; XLA inserts the gradient all-reduce, so N devices compute the
same step as one (BatchNorm statistics are over the global batch too).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import flax
import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from taskonomy_jax.data import pipeline as data_pipeline
from taskonomy_jax.train import checkpoint, sharding

Batch = Mapping[str, jax.Array]
ApplyFn = Callable[..., tuple[jax.Array, Any]]
LossFn = Callable[[jax.Array, Batch], jax.Array]
MetricFn = Callable[[jax.Array, Batch], jax.Array]


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def network_apply(model: nn.Module) -> ApplyFn:
  """`apply_fn` for a linen model with BatchNorm (`batch_stats`) and dropout."""
  def apply(variables, inputs, train: bool, rngs=None):
    if train:
      pred, updates = model.apply(variables, inputs, train=True, rngs=rngs,
                                  mutable=["batch_stats"])
      return pred, updates.get("batch_stats", {})
    return model.apply(variables, inputs, train=False), variables.get("batch_stats", {})
  return apply


def init_variables(model: nn.Module, sample_inputs: jax.Array, seed: int,
                   prng_impl: str | None = None) -> dict[str, Any]:
  """Model variables ({'params', 'batch_stats'}) from a sample input batch.

  `prng_impl` picks the key type for initialisation only (None: jax's default, threefry).
  'rbg' compiles the init of a ResNet with ~100 initialisers about 6x faster on CPU (measured
  95 s vs 16 s wall on the loaded 2-core build machine, BUILD_NOTES.md "Tried and dropped").
  """
  # One jitted init: eager init would compile every initializer op separately.
  init = jax.jit(lambda rngs, x: model.init(rngs, x, train=False))
  variables = init({"params": jax.random.key(seed, impl=prng_impl),
                    "dropout": jax.random.key(seed + 1, impl=prng_impl)}, sample_inputs)
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def make_train_step(apply_fn: ApplyFn, loss_fn: LossFn, tx: optax.GradientTransformation
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
  """One optimisation step: (state, batch, base_rng) -> (new state, {'loss', 'grad_norm'})."""
  def step(state: TrainState, batch: Batch, rng: jax.Array):
    # Per-step randomness from (seed, step): a resumed run draws the same dropout masks.
    rngs = {"dropout": jax.random.fold_in(rng, state.step)}

    def objective(params):
      pred, new_stats = apply_fn({"params": params, "batch_stats": state.batch_stats},
                                 batch["inputs"], True, rngs)
      return loss_fn(pred, batch), new_stats

    (loss, new_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(step=state.step + 1, params=params, batch_stats=new_stats,
                     opt_state=opt_state)
    return new, {"loss": loss, "grad_norm": optax.global_norm(grads)}
  return step


def make_stats_step(apply_fn: ApplyFn) -> Callable[[TrainState, Batch, jax.Array], TrainState]:
  """A forward pass in training mode that only updates the BatchNorm statistics.

  (state, batch, base_rng) -> state with the batch's statistics folded into `batch_stats` by
  each BatchNorm's own running-average rule; parameters, optimizer state and step unchanged.
  """
  def step(state: TrainState, batch: Batch, rng: jax.Array) -> TrainState:
    _, stats = apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                        batch["inputs"], True, {"dropout": rng})
    return state.replace(batch_stats=stats)
  return step


def make_eval_step(apply_fn: ApplyFn, loss_fn: LossFn, metric_fn: MetricFn | None):
  def step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
    pred, _ = apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                       batch["inputs"], False)
    out = {"loss": loss_fn(pred, batch)}
    if metric_fn is not None:
      out["metric"] = metric_fn(pred, batch)
    return out
  return step


@dataclasses.dataclass
class LoopConfig:
  """What the loop needs from a run config (`config.train` of taskonomy_jax/configs)."""

  num_steps: int
  batch_size: int  # global, over all devices and processes
  seed: int = 0
  log_every: int = 10
  checkpoint_every: int = 100
  keep_checkpoints: int = 3
  eval_every: int = 0  # 0: evaluate only at the end (when eval data is given)
  eval_batches: int = 4
  # After the last step, BatchNorm statistics recomputed over this many training batches under
  # the final weights (0: keep the running averages gathered while the weights moved).
  bn_recompute_batches: int = 0
  num_devices: int | None = None  # None: all devices (of this process, with local_devices)
  fsdp: bool = False
  progress: bool = True
  # Train on this process's devices alone, on all of the data: one of many networks processes
  # train side by side (task bank, transfer units; train/workers.py), each checkpointed by its
  # process alone. False: one network over every process's devices.
  local_devices: bool = False
  # K > 0: the state stacks K copies of a model on its leading axis (transfer readouts); they
  # are split over the mesh's devices (K a multiple of them) and the batch is replicated
  # (`sharding.stacked_shardings`). 0: data parallel.
  stack_size: int = 0

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any]) -> LoopConfig:
    cfg = dict(cfg)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(cfg) - known
    if unknown:
      raise ValueError(f"unknown train config keys {sorted(unknown)}; accepted: {sorted(known)}")
    return cls(**cfg)


# Batches read ahead by background threads. grain's default (16 threads, 500 elements) counts
# our elements as whole batches: 500 batches of stacked readout inputs were ~22 GB, and the
# threads building them took the cores from the training step (BUILD_NOTES.md, "Speed and memory").
PREFETCH_BATCHES = 4


def _read_options() -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=min(4, os.cpu_count() or 1),
                           prefetch_buffer_size=PREFETCH_BATCHES)


def batched_iterator(data: grain.MapDataset, local_batch: int, seed: int, *, shuffle: bool = True,
                     repeat: bool = True, split_by_process: bool = True) -> grain.DatasetIterator:
  """This process's examples (all of them unless `split_by_process`), shuffled per epoch,
  batched: a checkpointable iterator that reads at most `PREFETCH_BATCHES` batches ahead."""
  ds = data[jax.process_index()::jax.process_count()] if split_by_process else data
  if len(ds) < local_batch:
    raise ValueError(f"this process has {len(ds)} examples, fewer than its batch of "
                     f"{local_batch}")
  if shuffle:  # grain's own per-index Feistel shuffle cost ~0.7 ms an element here
    ds = data_pipeline.EpochShuffle(ds, seed)
  if repeat:
    ds = ds.repeat(None)
  return iter(ds.batch(local_batch, drop_remainder=True).to_iter_dataset(_read_options()))


class MetricsLog:
  """Scalars to TensorBoard event files and to `metrics.jsonl` (process 0 only)."""

  def __init__(self, workdir: str, active: bool | None = None):
    self.active = jax.process_index() == 0 if active is None else active
    if not self.active:
      return
    # Imported here: tensorboardX imports torch wherever torch is installed (1.3 s a process
    # here), which every command importing the loop would pay without training anything.
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

  def write(self, step: int, scalars: Mapping[str, float], prefix: str = "train") -> None:
    if not self.active:
      return
    for k, v in scalars.items():
      self.tb.add_scalar(f"{prefix}/{k}", v, step)
    self.jsonl.write(json.dumps({"step": step, "split": prefix, **scalars}) + "\n")
    self.jsonl.flush()

  def close(self) -> None:
    if self.active:
      self.tb.close()
      self.jsonl.close()


def train(*, apply_fn: ApplyFn, loss_fn: LossFn, variables: Mapping[str, Any],
          tx: optax.GradientTransformation, data: grain.MapDataset, cfg: LoopConfig,
          workdir: str, eval_data: grain.MapDataset | None = None,
          metric_fn: MetricFn | None = None,
          learning_rate_fn: optax.Schedule | None = None) -> TrainState:
  """Trains from `variables` (or resumes from `workdir`'s latest checkpoint) for `cfg.num_steps`.

  Writes checkpoints every `cfg.checkpoint_every` steps and at the end, TensorBoard events and
  `metrics.jsonl` under `workdir`: the step's outputs, `learning_rate` (`learning_rate_fn` of the
  step's update count, when given) and `steps_per_sec` since the previous log (from the first
  step of this process on, so compilation is not counted). Returns the final state (arrays on the
  mesh).

  Raises:
    ValueError: bad batch size for the mesh, bad checkpoint settings, too little data.
  """
  if cfg.num_steps <= 0:
    raise ValueError(f"num_steps must be positive, got {cfg.num_steps}")
  if cfg.bn_recompute_batches < 0:
    raise ValueError(f"bn_recompute_batches must be >= 0, got {cfg.bn_recompute_batches}")
  mesh = sharding.make_mesh(cfg.num_devices, local=cfg.local_devices)
  # Each process reads a disjoint slice of every batch, unless the network is its own (local)
  # or the batch is replicated (stacked copies): then it reads whole batches.
  split = not (cfg.local_devices or cfg.stack_size)
  if not cfg.stack_size:
    sharding.check_batch_size(cfg.batch_size, mesh, None if split else 1)
  local_batch = cfg.batch_size // jax.process_count() if split else cfg.batch_size
  os.makedirs(workdir, exist_ok=True)

  # State: initial values, laid out on the mesh by jit's out_shardings.
  def make_state(variables):
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))
  abstract = jax.eval_shape(make_state, variables)
  if cfg.stack_size:
    state_sh = sharding.stacked_shardings(abstract, mesh, cfg.stack_size)
    batch_sh = sharding.replicated(mesh)
  else:
    state_sh = sharding.state_shardings(abstract, mesh, cfg.fsdp)
    batch_sh = sharding.batch_sharding(mesh)
  rng = jax.random.key(cfg.seed)

  data_iter = batched_iterator(data, local_batch, cfg.seed, split_by_process=split)
  mngr = checkpoint.manager(workdir, cfg.checkpoint_every, cfg.keep_checkpoints)
  if mngr.latest_step() is not None:
    abstract_sh = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                               abstract, state_sh)
    restored = checkpoint.restore(mngr, flax.serialization.to_state_dict(abstract_sh), data_iter)
    state = flax.serialization.from_state_dict(abstract, restored)
  else:
    state = jax.jit(make_state, out_shardings=state_sh)(variables)
  start = int(state.step)

  step_fn = jax.jit(make_train_step(apply_fn, loss_fn, tx),
                    in_shardings=(state_sh, batch_sh, None),
                    out_shardings=(state_sh, None), donate_argnums=(0,))
  eval_fn = jax.jit(make_eval_step(apply_fn, loss_fn, metric_fn),
                    in_shardings=(state_sh, batch_sh))
  stats_fn = jax.jit(make_stats_step(apply_fn), in_shardings=(state_sh, batch_sh, None),
                     out_shardings=state_sh, donate_argnums=(0,))
  writer = cfg.local_devices or jax.process_index() == 0  # the one writer of this workdir
  log = MetricsLog(workdir, active=writer)
  bar = tqdm.tqdm(total=cfg.num_steps, initial=start, desc="train", unit="step",
                  disable=not cfg.progress or not writer)
  timed_from: tuple[int, float] | None = None  # (step, time) the rate is measured from
  try:
    with mesh:
      for step in range(start + 1, cfg.num_steps + 1):
        batch = sharding.global_batch(next(data_iter), mesh, batch_sh)
        state, metrics = step_fn(state, batch, rng)
        if timed_from is None:  # the first step compiles: time from its end
          jax.block_until_ready(metrics)
          timed_from = (step, time.perf_counter())
        if step % cfg.log_every == 0 or step == cfg.num_steps:
          scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
          if learning_rate_fn is not None:  # the update of step s used count s - 1
            scalars["learning_rate"] = float(learning_rate_fn(step - 1))
          if step > timed_from[0]:
            now = time.perf_counter()
            scalars["steps_per_sec"] = (step - timed_from[0]) / (now - timed_from[1])
            timed_from = (step, now)
          log.write(step, scalars)
          bar.set_postfix(loss=f"{scalars['loss']:.4f}")
        if step == cfg.num_steps and cfg.bn_recompute_batches:
          # Running averages trail the moving weights; re-gather them under the final ones
          # (before the final checkpoint, so a finished run restores the recomputed ones).
          for i in range(cfg.bn_recompute_batches):  # dropout keys after the training steps
            batch = sharding.global_batch(next(data_iter), mesh, batch_sh)
            state = stats_fn(state, batch, jax.random.fold_in(rng, cfg.num_steps + 1 + i))
        # Save after the step, with the iterator positioned for step + 1.
        checkpoint.save(mngr, step, flax.serialization.to_state_dict(state), data_iter,
                        force=step == cfg.num_steps)
        if eval_data is not None and (
            step == cfg.num_steps or (cfg.eval_every and step % cfg.eval_every == 0)):
          log.write(step, evaluate(eval_fn, state, eval_data, local_batch, cfg.eval_batches, mesh,
                                   batch_sh, split), prefix="eval")
        bar.update(1)
  finally:
    mngr.wait_until_finished()
    mngr.close()
    bar.close()
    log.close()
  return state


def evaluate(eval_fn, state: TrainState, data: grain.MapDataset, local_batch: int, max_batches: int,
             mesh: jax.sharding.Mesh, batch_sh: jax.sharding.NamedSharding | None = None,
             split_by_process: bool = True) -> dict[str, float]:
  """Mean of the eval step's outputs over the first `max_batches` batches of `data`."""
  it = batched_iterator(data, local_batch, seed=0, shuffle=False, repeat=False,
                        split_by_process=split_by_process)
  totals: dict[str, float] = {}
  n = 0
  for batch in it:
    if n == max_batches:
      break
    out = jax.device_get(eval_fn(state, sharding.global_batch(batch, mesh, batch_sh)))
    for k, v in out.items():
      totals[k] = totals.get(k, 0.0) + float(np.asarray(v))
    n += 1
  return {k: v / max(n, 1) for k, v in totals.items()}
