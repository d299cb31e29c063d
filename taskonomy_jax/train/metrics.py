"""Evaluation metrics, chosen by the task registry's `TaskSpec.metric` name.

Pure functions `(pred, target, weights) -> scalar`; `weights` is a valid mask (or None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from taskonomy_jax import tasks
from taskonomy_jax.train import losses

Array = jax.Array
MetricFn = Callable[[Array, Array, Array | None], Array]


def mae(pred: Array, target: Array, weights: Array | None = None) -> Array:
  """Mean absolute error over valid elements. pred, target: (B, ...)."""
  return losses.l1(pred, target, weights)


def mse(pred: Array, target: Array, weights: Array | None = None) -> Array:
  """Mean squared error over valid elements. pred, target: (B, ...)."""
  return losses.l2(pred, target, weights)


def angular_error_deg(pred: Array, target: Array, weights: Array | None = None) -> Array:
  """Mean angle in degrees between predicted and true normals.

  Args:
    pred, target: (B, H, W, 3) (need not be unit length). weights: (B, H, W[, 1]) or None.
  """
  def unit(v):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-8)
  cos = jnp.clip(jnp.sum(unit(pred) * unit(target), axis=-1), -1.0, 1.0)
  if weights is not None and weights.ndim == cos.ndim + 1:
    weights = weights[..., 0]
  return losses.weighted_mean(jnp.degrees(jnp.arccos(cos)), weights)


def accuracy(logits: Array, labels: Array, weights: Array | None = None) -> Array:
  """Top-1 accuracy. logits: (B, ..., C); labels: (B, ...) int."""
  hit = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return losses.weighted_mean(hit, weights)


def xent(logits: Array, labels: Array, weights: Array | None = None) -> Array:
  """Mean negative log-likelihood of the true class (nats). logits: (B, ..., C); labels: (B, ...)
  int. A proper scoring rule: it credits calibrated class probabilities, where accuracy sees only
  the argmax (colorization: one neutral bin holds most pixels, so the argmax is nearly always
  that bin, for a network and for the majority baseline alike)."""
  return losses.softmax_xent(logits, labels, weights)


def miou(logits: Array, labels: Array, weights: Array | None = None) -> Array:
  """Mean intersection over union over the classes present in prediction or target.

  Args:
    logits: (B, H, W, C). labels: (B, H, W) int. weights: (B, H, W) valid mask or None.
  """
  num_classes = logits.shape[-1]
  valid = jnp.ones(labels.shape, bool) if weights is None else weights != 0
  pred = jax.nn.one_hot(jnp.argmax(logits, axis=-1), num_classes) * valid[..., None]
  true = jax.nn.one_hot(labels, num_classes) * valid[..., None]
  axes = tuple(range(labels.ndim))
  inter = jnp.sum(pred * true, axis=axes)
  union = jnp.sum(jnp.maximum(pred, true), axis=axes)
  present = union > 0
  return jnp.sum(jnp.where(present, inter / jnp.maximum(union, 1), 0)) / jnp.maximum(
      jnp.sum(present), 1)


def kl(logits: Array, target_probs: Array, weights: Array | None = None) -> Array:
  """KL(target || softmax(logits)), mean over the batch. logits, target_probs: (B, C)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  plogp = jnp.where(target_probs > 0, target_probs * jnp.log(jnp.where(
      target_probs > 0, target_probs, 1.0)), 0.0)
  return losses.weighted_mean(jnp.sum(plogp - target_probs * logp, axis=-1), weights)


def pair_accuracy(embeddings: Array, segments: Array, weights: Array | None = None) -> Array:
  """How often a pixel pair is judged same-segment (sigma > 0.5) exactly when it is.

  Args: as `losses.metric_embedding`.
  """
  e = losses.grid_sample(embeddings.astype(jnp.float32))
  s = losses.grid_sample(segments)
  judged_same = losses.pair_same_probability(e) > 0.5
  hit = (judged_same == (s[:, :, None] == s[:, None, :])).astype(jnp.float32)
  pair_w = None
  if weights is not None:
    w = losses.grid_sample(weights.astype(jnp.float32))
    pair_w = w[:, :, None] * w[:, None, :]
  return losses.weighted_mean(hit, pair_w)


METRICS: Mapping[str, MetricFn] = {
    "mae": mae, "mse": mse, "angular_error_deg": angular_error_deg, "accuracy": accuracy,
    "xent": xent,
    "miou": miou, "kl": kl, "pair_accuracy": pair_accuracy,
}


def get(name: str) -> MetricFn:
  """The metric named `name`; raises ValueError naming the accepted metrics."""
  if name not in METRICS:
    raise ValueError(f"no metric named {name!r}; accepted: {sorted(METRICS)}")
  return METRICS[name]


def task_metric(spec: tasks.TaskSpec, pred: Array, batch: Mapping[str, Array]) -> Array:
  """The task's metric on a batch with 'targets' and optional 'mask' (valid elements)."""
  return get(spec.metric)(pred, batch["targets"], batch.get("mask"))
