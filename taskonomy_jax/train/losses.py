"""Training losses, chosen by the task registry's `TaskSpec.loss` name.

Each loss is a pure function `(pred, target, weights) -> scalar` following the original task-bank
losses (`taskbank/lib/losses/all.py`): weighted means are normalised by the number of elements
with a non-zero weight, like TF's `SUM_BY_NONZERO_WEIGHTS` reduction the original used, so a
valid-pixel mask changes which pixels count, not the loss scale. `weights=None` means all count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from taskonomy_jax import tasks

Array = jax.Array
LossFn = Callable[[Array, Array, Array | None], Array]

# The metric-learning loss compares embeddings at this many pixels per side of a regular grid
# (the original sampled 300 random pixels per image; a grid keeps the loss a pure function).
EMBEDDING_GRID = 16


def weighted_mean(values: Array, weights: Array | None) -> Array:
  """Mean of `values` over elements with non-zero weight, each scaled by its weight.

  Args:
    values: (B, ...).
    weights: None, or broadcastable to `values` (e.g. a (B, H, W, 1) mask for (B, H, W, C)).
  Returns:
    scalar; 0 when no element has weight.
  """
  if weights is None:
    return jnp.mean(values)
  w = jnp.broadcast_to(weights.astype(values.dtype), values.shape)
  count = jnp.sum((w != 0).astype(values.dtype))
  return jnp.sum(values * w) / jnp.maximum(count, 1.0)


def _pixel_weights(weights: Array | None, pred: Array) -> Array | None:
  """A (B, H, W) mask for (B, H, W, C) predictions gains a channel axis so it broadcasts."""
  if weights is not None and weights.ndim == pred.ndim - 1:
    return weights[..., None]
  return weights


def l1(pred: Array, target: Array, weights: Array | None = None) -> Array:
  """Mean absolute error. pred, target: (B, ...) same shape; weights broadcastable."""
  return weighted_mean(jnp.abs(pred - target), _pixel_weights(weights, pred))


def l2(pred: Array, target: Array, weights: Array | None = None) -> Array:
  """Mean squared error (slim's `mean_squared_error`). Shapes as `l1`."""
  return weighted_mean(jnp.square(pred - target), _pixel_weights(weights, pred))


def softmax_xent(logits: Array, labels: Array, weights: Array | None = None) -> Array:
  """Cross entropy against integer labels.

  Args:
    logits: (B, ..., C).
    labels: (B, ...) int in [0, C).
    weights: (B, ...) or None; for the rebalanced variant, per-element class weights.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return weighted_mean(nll, weights)


# The rebalanced cross entropy is the same function: the original passed the class-rebalancing
# weights per pixel as the loss's mask (`get_sparse_softmax_loss(..., mask)`).
weighted_softmax_xent = softmax_xent


def soft_xent(logits: Array, target_probs: Array, weights: Array | None = None) -> Array:
  """Cross entropy against a soft target distribution (distillation: object and scene classes).

  Args:
    logits: (B, C). target_probs: (B, C), rows sum to 1. weights: (B,) or None.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return weighted_mean(-jnp.sum(target_probs * logp, axis=-1), weights)


def grid_block_offset(side: int, block: int, grid: int = EMBEDDING_GRID) -> int | None:
  """Where `grid_sample` takes exactly one pixel of every `block` x `block` block of a
  `side` x `side` image, that pixel's row (= column) inside its block; else None."""
  g = min(grid, side)
  return block // 2 if side == g * block else None


def grid_sample(x: Array, grid: int = EMBEDDING_GRID) -> Array:
  """Values at a regular grid of pixels: (B, H, W, ...) -> (B, grid * grid, ...): rows
  (i * H) // g + H // (2g) for i < g = min(grid, H), columns alike.

  Where the grid divides the image that is a strided slice: the same values and gradients as
  the gather of the general case, 1.4x faster to differentiate on XLA:CPU in isolation
  (`benchmarks/metric_embedding_grid.py`).
  """
  h, w = x.shape[1:3]
  gh, gw = min(grid, h), min(grid, w)
  if h % gh == 0 and w % gw == 0:
    x = x[:, (h // gh) // 2::h // gh, (w // gw) // 2::w // gw]
  else:
    rows = (jnp.arange(gh) * h) // gh + h // (2 * gh)
    cols = (jnp.arange(gw) * w) // gw + w // (2 * gw)
    x = x[:, rows][:, :, cols]
  return x.reshape(x.shape[0], -1, *x.shape[3:])


def pair_same_probability(embeddings: Array) -> Array:
  """sigma_ij = 2 / (1 + exp(|e_i - e_j|^2)): 1 for equal embeddings, -> 0 far apart.

  Args:
    embeddings: (B, N, D).
  Returns:
    (B, N, N), clipped to [1e-7, 1 - 1e-7] as in the original.
  """
  sq = jnp.sum(embeddings * embeddings, axis=-1)
  dist = sq[:, :, None] - 2 * jnp.einsum("bnd,bmd->bnm", embeddings, embeddings) + sq[:, None]
  dist = jnp.clip(dist, 0.0, 80.0)
  return jnp.clip(2.0 / (jnp.exp(dist) + 1.0), 1e-7, 1.0 - 1e-7)


def metric_embedding(embeddings: Array, segments: Array, weights: Array | None = None) -> Array:
  """Pixel-pair metric loss of the unsupervised segmentation tasks (original `segment2d/25d`).

  Pixels of the same segment should have close embeddings (-log sigma), pixels of different
  segments distant ones (-log(1 - sigma)), over all pairs of a grid of pixels.

  Args:
    embeddings: (B, H, W, D). segments: (B, H, W) int segment ids. weights: (B, H, W) or None
      (a pair counts when both its pixels do).
  """
  e = grid_sample(embeddings.astype(jnp.float32))
  s = grid_sample(segments)
  sigma = pair_same_probability(e)
  same = s[:, :, None] == s[:, None, :]
  nll = -jnp.where(same, jnp.log(sigma), jnp.log1p(-sigma))
  pair_w = None
  if weights is not None:
    w = grid_sample(weights.astype(jnp.float32))
    pair_w = w[:, :, None] * w[:, None, :]
  return weighted_mean(nll, pair_w)


LOSSES: Mapping[str, LossFn] = {
    "l1": l1,
    "l2": l2,
    "softmax_xent": softmax_xent,
    "weighted_softmax_xent": weighted_softmax_xent,
    "soft_xent": soft_xent,
    "metric_embedding": metric_embedding,
}


def get(name: str) -> LossFn:
  """The loss named `name`; raises ValueError naming the accepted losses."""
  if name not in LOSSES:
    raise ValueError(f"no loss named {name!r}; accepted: {sorted(LOSSES)}")
  return LOSSES[name]


def task_loss(spec: tasks.TaskSpec, pred: Array, batch: Mapping[str, Array]) -> Array:
  """The task's training loss on a batch with 'targets' and optional 'weights' / 'mask'.

  'weights' (per-element loss weights, e.g. class rebalancing) wins over 'mask' (valid pixels).
  """
  if spec.loss == "none":
    raise ValueError(f"task {spec.name!r} has no loss (it is not trained)")
  weights = batch.get("weights", batch.get("mask"))
  return get(spec.loss)(pred, batch["targets"], weights)
