"""Training and held-out evaluation of task networks and transfer readouts, through the one loop.

Everything here calls `taskonomy_jax.train.loop.train`: a task network is one model; the
readouts into one target are one *stacked* model (taskonomy_jax/transfer/readout.py), so the
loop compiles one step for all of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from taskonomy_jax import models, tasks
from taskonomy_jax.models import conv as conv_lib
from taskonomy_jax.taskbank import evaluate
from taskonomy_jax.taxonomy import ahp
from taskonomy_jax.train import loop, sharding
from taskonomy_jax.train import task as train_task
from taskonomy_jax.transfer import readout as readout_lib

RANDOM = "random"  # the paper's random-projection source: an untrained encoder


def loop_config(train_cfg: Mapping[str, Any], progress: bool = False,
                num_examples: int | None = None) -> loop.LoopConfig:
  """The loop's config for a short run: one checkpoint at the end (the unit is the resume
  granularity of the pipeline; the loop also resumes a killed run from that checkpoint)."""
  cfg = dict(train_cfg)
  if num_examples is not None:  # a budget smaller than a batch trains on full-budget batches
    cfg["batch_size"] = min(cfg["batch_size"], num_examples)
  cfg.setdefault("checkpoint_every", cfg["num_steps"])
  cfg.setdefault("log_every", max(1, cfg["num_steps"] // 4))
  cfg.setdefault("keep_checkpoints", 1)
  cfg.setdefault("progress", progress)
  return loop.LoopConfig.from_config(cfg)


def optimizer(opt_cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  return train_task.make_optimizer(ml_collections.ConfigDict(dict(opt_cfg)))


# --- stacking -------------------------------------------------------------------------------

def group_key(spec: tasks.TaskSpec) -> tuple:
  """Tasks with equal keys have networks of one shape and one loss and read the same samples:
  they stack (vmap). A multi-view task's samples are its own (view pairs or triplets), so it
  stacks with no other task."""
  own = spec.name if spec.num_views > 1 else ""
  return (spec.decoder, spec.channels, spec.loss, spec.output_stride, spec.num_views, spec.dtype,
          own)


def group_tasks(names: Sequence[str]) -> list[list[str]]:
  """`names` split into stackable groups, in order of first appearance."""
  groups: dict[tuple, list[str]] = {}
  for n in names:
    groups.setdefault(group_key(tasks.get(n)), []).append(tasks.get(n).name)
  return list(groups.values())


class StackedSource(Sequence):
  """Examples for K stacked copies: {'inputs', 'targets': (K, ...), 'mask': (K, ...)}.

  Args:
    inputs: a sequence giving example i's inputs: (K, ...) per copy, or one array every copy
      reads (`shared_inputs` of `readout.stacked_apply`).
    targets, masks: K arrays (N, ...): copy k's targets and valid masks.
    limit: use only the first `limit` examples (the transfer budget).
  """

  def __init__(self, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               masks: Sequence[np.ndarray], limit: int | None = None):
    if len(targets) != len(masks):
      raise ValueError(f"{len(targets)} target arrays but {len(masks)} masks")
    self.inputs, self.targets, self.masks = inputs, list(targets), list(masks)
    self.n = len(inputs) if limit is None else min(len(inputs), limit)

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if not 0 <= i < self.n:
      raise IndexError(i)
    return {"inputs": np.asarray(self.inputs[i]),
            "targets": np.stack([np.asarray(t[i]) for t in self.targets]),
            "mask": np.stack([np.asarray(m[i]) for m in self.masks])}

  def batch(self, start: int, stop: int) -> dict[str, np.ndarray]:
    """Examples [start, stop) as one batch (inputs (B, ...), targets/masks (B, K, ...))."""
    get = getattr(self.inputs, "batch", None)
    inputs = get(start, stop) if get else np.asarray(self.inputs[start:stop])
    return {"inputs": inputs,
            "targets": np.stack([np.asarray(t[start:stop]) for t in self.targets], axis=1),
            "mask": np.stack([np.asarray(m[start:stop]) for m in self.masks], axis=1)}


def train_stacked(module, spec: tasks.TaskSpec, source: StackedSource, seeds: Sequence[int],
                  opt_cfg: Mapping, train_cfg: Mapping, workdir: pathlib.Path,
                  shared_inputs: bool = False, shard: bool = False,
                  target_networks: Sequence[readout_lib.TargetNetwork] | None = None
                  ) -> loop.TrainState:
  """Trains K = len(seeds) copies of `module` (copy k on target k of `source`) in one compiled
  step of the training loop; resumes from `workdir`'s checkpoint.

  A readout through the frozen target decoder (`module.frozen_target_decoder`) takes copy k's
  decoder from `target_networks[k]`, its target's trained network (`readout.target_decoders`);
  the optimizer leaves it as it is (`readout.freeze`), and the copies into one target run its
  decoder together (`readout.decoder_groups`).

  With `shard`, the copies are split over the devices of the loop's mesh (`train_cfg`'s
  num_devices and local_devices), D of them: each device trains ceil(K/D) whole copies on the
  replicated batch (`sharding.stacked_shardings`). K is padded to a multiple of D with extra
  copies (seeds past the given ones) whose outputs are dropped before the loss: they get zero
  gradients and change nothing the K real copies compute. The returned state holds the K real
  copies' `params` and `batch_stats` (the optimizer state keeps the padded stack, as the
  checkpoint does, so a resumed run must see as many devices).
  """
  first = source[0]["inputs"]
  sample = jnp.asarray((first if shared_inputs else first[0])[None])
  k = len(seeds)
  cfg = loop_config(train_cfg, num_examples=len(source))
  frozen = getattr(module, "frozen_target_decoder", False)
  if frozen and (target_networks is None or len(target_networks) != k):
    raise ValueError(f"{k} readouts through frozen target decoders need {k} target networks")
  padded = k
  if shard:
    mesh = sharding.make_mesh(cfg.num_devices, local=cfg.local_devices)
    padded = sharding.padded_stack_size(k, mesh)
    seeds = [*seeds, *range(max(seeds) + 1, max(seeds) + 1 + padded - k)]
    cfg = dataclasses.replace(cfg, stack_size=padded)
  # The padded copies repeat the last copy's inputs, so its target network too.
  nets = [*target_networks, *[target_networks[-1]] * (padded - k)] if frozen else []
  apply_fn = readout_lib.stacked_apply(
      module, shared_inputs, readout_lib.decoder_groups([n.name for n in nets]) if frozen else None)
  loss_fn = readout_lib.stacked_loss(spec)
  if padded > k:
    apply_fn, loss_fn = _padded(apply_fn, loss_fn, k, padded, shared_inputs)
  variables = readout_lib.init_stacked(module, sample, seeds)
  if frozen:
    variables = readout_lib.target_decoders(module, nets, variables)
  state = loop.train(apply_fn=apply_fn, loss_fn=loss_fn, variables=variables,
                     tx=readout_lib.freeze(optimizer(opt_cfg), module),
                     data=grain.MapDataset.source(source), cfg=cfg,
                     workdir=str(workdir), learning_rate_fn=train_task.learning_rate_schedule(
                         ml_collections.ConfigDict(dict(opt_cfg))))
  if len(seeds) == k:
    return state
  return state.replace(params=jax.tree.map(lambda a: a[:k], state.params),
                       batch_stats=jax.tree.map(lambda a: a[:k], state.batch_stats))


def _padded(apply_fn, loss_fn, k: int, padded: int, shared_inputs: bool):
  """`apply_fn` and `loss_fn` of K real copies for a stack of `padded` >= K: the inputs
  (B, K, ...) are padded by repeating the last copy's, predictions (padded, B, ...) cut back
  to the first K for the loss."""
  def apply(variables, inputs, train, rngs=None):
    if not shared_inputs and padded > k:
      inputs = jnp.concatenate(
          [inputs, jnp.repeat(inputs[:, -1:], padded - k, axis=1)], axis=1)
    return apply_fn(variables, inputs, train, rngs)

  def loss(pred, batch):
    return loss_fn(pred[:k], batch)
  return apply, loss


def stacked_losses(module, spec: tasks.TaskSpec, state: loop.TrainState, source: StackedSource,
                   shared_inputs: bool = False, batch: int = 32,
                   groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
  """Per-example held-out losses of every stacked copy on `source`: (K, N). `groups`: copies
  sharing a frozen target decoder (`readout.stacked_apply`)."""
  apply = readout_lib.stacked_apply(module, shared_inputs, groups)

  @jax.jit
  def fn(v, b):
    pred, _ = apply(v, b["inputs"], False)
    return readout_lib.stacked_per_example_losses(spec, pred, b)

  v = {"params": state.params, "batch_stats": state.batch_stats}
  n = len(source)
  out = [np.asarray(fn(v, jax.tree.map(lambda a: jnp.asarray(pad_rows(a, batch)),
                                       source.batch(i, min(i + batch, n)))))
         for i in range(0, n, batch)]
  return np.concatenate(out, axis=1)[:, :n]


def stacked_encode(model: models.TaskNetwork, variables: Mapping[str, Any], images: np.ndarray,
                   batch: int = 64) -> np.ndarray:
  """Frozen encoders of K stacked task networks: (N, H, W, 3) -> (K, N, H/s, W/s, C), s the
  encoder's output stride."""
  model = conv_lib.for_stacking(model)
  def one(v, x):
    return model.apply(v, x, False, method=lambda m, x, t: m.encoder(x, t))
  fn = jax.jit(jax.vmap(one, in_axes=(0, None)))
  v = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
  n = len(images)
  out = [np.asarray(fn(v, jnp.asarray(pad_rows(np.asarray(images[i:i + batch]), batch))))
         for i in range(0, n, batch)]
  return np.concatenate(out, axis=1)[:, :n].astype(np.float32)


def encode(model: models.TaskNetwork, variables: Mapping[str, Any], images: np.ndarray,
           batch: int = 64) -> np.ndarray:
  """One task network's frozen encoder: (N, H, W, 3) -> (N, H/s, W/s, C)."""
  stacked = jax.tree.map(lambda a: np.asarray(a)[None], {
      "params": variables["params"], "batch_stats": variables.get("batch_stats", {})})
  return stacked_encode(model, stacked, images, batch)[0]


def pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
  """(n, ...) -> (rows, ...) by repeating the last row (n <= rows): evaluation batches of one
  shape compile once; the padded rows' outputs are dropped."""
  a = np.asarray(a)
  if len(a) >= rows:
    return a
  return np.concatenate([a, np.repeat(a[-1:], rows - len(a), axis=0)])


# --- task networks ---------------------------------------------------------------------------

def trivial_images(targets: np.ndarray, masks: np.ndarray | None,
                   max_examples: int = 1024) -> dict[str, np.ndarray]:
  """The per-pixel mean and median of training targets (N, H, W, C), over valid pixels: the
  predictions a task network must beat. Up to `max_examples` spread over the split."""
  stride = max(1, -(-len(targets) // max_examples))
  t = np.asarray(targets[::stride], np.float32)
  m = None if masks is None else np.broadcast_to(
      readout_lib.channel_axis(np.asarray(masks[::stride]) > 0, t.ndim), t.shape)
  mean = readout_lib.masked_mean(t, m)
  if m is None:
    median = np.median(t, axis=0)
  else:
    median = np.nan_to_num(np.nanmedian(np.where(m, t, np.nan), axis=0))
  return {"mean": mean, "median": median.astype(np.float32)}


def trivial_predictions(spec: tasks.TaskSpec, targets: np.ndarray, masks: np.ndarray,
                        resolution: int, max_examples: int = 1024) -> dict[str, np.ndarray]:
  """The two constant predictions a task network must beat, {"mean", "median"}, from training
  targets: for regressions the per-pixel mean and median target (`trivial_images`); for the
  other losses the best constant under the loss as "mean" (the class frequencies for cross
  entropy, the mean distribution for soft targets, one embedding everywhere for the metric
  segmentations: `evaluate.loss_baseline`) and the task bank evaluation's baseline as "median"
  (the majority class; `evaluate.baseline_prediction`)."""
  stride = max(1, -(-len(targets) // max_examples))  # as `trivial_images` spreads them
  targets, masks = np.asarray(targets[::stride]), np.asarray(masks[::stride])
  if readout_lib.is_regression(spec):
    return trivial_images(targets, masks, max_examples)
  train = {"targets": targets, "mask": masks}
  return {"mean": evaluate.loss_baseline(spec, train, resolution),
          "median": evaluate.baseline_prediction(spec, train, resolution)}


def prediction_losses(spec: tasks.TaskSpec, predict: Callable[[np.ndarray], np.ndarray],
                      images: np.ndarray, targets: np.ndarray, masks: np.ndarray,
                      batch: int = 64) -> np.ndarray:
  """Per-example losses (N,) of `predict` ((B, H, W, 3) images -> (B, ...) outputs in the
  targets' units) on held-out examples, by the training loss (masks and all). Batches are
  padded to `batch` rows, so `predict` sees one shape."""
  fn = jax.jit(lambda p, b: readout_lib.per_example_losses(spec, p, b))
  out = []
  for i in range(0, len(targets), batch):
    n = min(batch, len(targets) - i)
    pred = np.asarray(predict(pad_rows(np.asarray(images[i:i + n]), batch)))[:n]
    out.append(np.asarray(fn(pred.astype(np.float32), {
        "targets": np.asarray(targets[i:i + n]), "mask": np.asarray(masks[i:i + n])})))
  return np.concatenate(out)


def constant(image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
  """The predictor that outputs `image` (a target's shape) for every input."""
  image = np.asarray(image, np.float32)
  return lambda x: np.broadcast_to(image, (len(x), *image.shape))


# --- transfer readouts -----------------------------------------------------------------------

def channel_stats(rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of a cached representation (N, h, w, C) -> (C,),
  (C,); a constant channel (a dead ReLU) gets std 1."""
  r = np.asarray(rep, np.float64).reshape(-1, rep.shape[-1])
  std = r.std(0)
  return r.mean(0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


class StackedInputs(Sequence):
  """Per example: (K, h, w, channels) inputs of K readouts, each its sources' cached
  representations concatenated channel-wise (paper Sec. 3.2) and zero-padded to `channels`.

  `stats` ({source: (mean, std)} per channel, from `channel_stats` on the transfer-training
  split) standardises each source first: sources' activations differ in scale by orders of
  magnitude (an untrained encoder's most of all), which a few hundred readout steps cannot
  undo; standardised, every source starts on an equal footing.

  `records` ((N, V) view indices into the representations) makes the examples multi-view
  samples: example i is V views' inputs side by side, (K, h, w, V * channels), view v's block
  the channels [v * channels, (v + 1) * channels) (`readout.Readout` splits them again).
  """

  def __init__(self, reps: Mapping[str, np.ndarray], candidates: Sequence[tuple[str, ...]],
               channels: int, stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
               records: np.ndarray | None = None):
    self.reps, self.candidates, self.channels = reps, list(candidates), channels
    self.stats = dict(stats or {})
    self.records = None if records is None else np.asarray(records)
    self.n = len(next(iter(reps.values()))) if records is None else len(self.records)

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int) -> np.ndarray:
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.batch(i, i + 1)[0]

  def batch(self, start: int, stop: int) -> np.ndarray:
    """(stop - start, K, h, w, channels) for a contiguous range (V * channels multi-view)."""
    rows = slice(start, stop) if self.records is None else self.records[start:stop]
    parts = {s: self._standardized(s, rows) for s in {s for c in self.candidates for s in c}}
    cols = [readout_lib.pad_channels(np.concatenate([parts[s] for s in srcs], -1), self.channels)
            for srcs in self.candidates]
    out = np.stack(cols, axis=1)  # (B, K, h, w, channels), or (B, K, V, h, w, channels)
    if self.records is None:
      return out
    b, k, v, h, w, c = out.shape
    return out.transpose(0, 1, 3, 4, 2, 5).reshape(b, k, h, w, v * c)

  def _standardized(self, source: str, rows: slice | np.ndarray) -> np.ndarray:
    x = np.asarray(self.reps[source][rows], np.float32)
    if source not in self.stats:
      return x
    mean, std = self.stats[source]
    return (x - mean) / std


def beam_candidates(first_order: Sequence[str], losses: np.ndarray, beam: int,
                    max_order: int) -> list[tuple[str, ...]]:
  """Higher-order transfers from the `beam` best first-order sources (paper Sec. 3.2).

  Sources are ranked by their AHP affinity in the tournament of the first-order transfers
  alone; every combination of 2..max_order of the best `beam` is a candidate (for beam 5 and
  order 4: 10 + 10 + 5 = 25 per target).

  Args:
    first_order: S source names. losses: (S, N) their held-out losses.
  """
  if len(first_order) != len(losses):
    raise ValueError(f"{len(first_order)} sources but {len(losses)} rows of losses")
  scores = ahp.affinities_from_losses(losses)
  best = [first_order[i] for i in np.argsort(-scores, kind="stable")[:beam]]
  return [tuple(sorted(c)) for k in range(2, max_order + 1)
          for c in itertools.combinations(best, k)]
