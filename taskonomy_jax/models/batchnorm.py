"""Batch normalisation over the last axis with a hand-written gradient.

`BatchNorm` has flax's `nn.BatchNorm` variables (params `scale`, `bias`; batch_stats `mean`,
`var`), initialisation, running-average rule and statistics (float32, fast variance
E[x^2] - E[x]^2 clipped at 0), so checkpoints and converted weights work with either. What
differs is the training-mode backward pass, `normalize_train`'s `custom_vjp`: two per-channel
sums and one elementwise pass. Autodiff of flax's formula left XLA:CPU a long chain of
elementwise ops that it fused into the (slow, strided) transposes feeding the next kernel
gradient; the paper-size train step was ~5% faster at 256x256 with this one (BUILD_NOTES.md,
"The CPU train step"). The networks use it on CPU only (models/kernels.py), flax's elsewhere.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def normalize_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Normalises `x` with its own statistics over every axis but the last.

  Args:
    x: (..., C), any float dtype; statistics are computed in float32.
    scale, bias: (C,) float32.
    epsilon: added to the variance.
  Returns:
    (y, mean, var): y (..., C) in x's dtype, (x - mean) / sqrt(var + epsilon) * scale + bias;
    mean and var (C,) float32, var = E[x^2] - mean^2 clipped at 0.
  """
  return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
  axes = tuple(range(x.ndim - 1))
  count = x.size // x.shape[-1]
  xf = x.astype(jnp.float32)
  mean = jnp.sum(xf, axes) / count
  var = jnp.maximum(jnp.sum(jnp.square(xf), axes) / count - jnp.square(mean), 0.0)
  inv = jax.lax.rsqrt(var + epsilon)
  y = ((xf - mean) * (inv * scale) + bias).astype(x.dtype)
  return (y, mean, var), (x, mean, inv, scale)


def _backward(epsilon, residuals, cotangents):
  del epsilon  # in inv
  x, mean, inv, scale = residuals
  dy, dmean, dvar = cotangents
  axes = tuple(range(x.ndim - 1))
  count = x.size // x.shape[-1]
  centred, dyf = x.astype(jnp.float32) - mean, dy.astype(jnp.float32)
  sum_dy = jnp.sum(dyf, axes)
  sum_dy_xhat = inv * jnp.sum(dyf * centred, axes)  # xhat = (x - mean) * inv
  gain = inv * scale
  # d/dx of y through xhat, mean and var, plus the mean and var outputs' own cotangents:
  # gain * (dy - mean(dy) - xhat * mean(dy * xhat)) + dmean / n + 2 dvar (x - mean) / n.
  slope = (2.0 * dvar - gain * inv * sum_dy_xhat) / count
  offset = (dmean - gain * sum_dy) / count
  dx = (dyf * gain + centred * slope + offset).astype(x.dtype)
  return dx, sum_dy_xhat, sum_dy


normalize_train.defvjp(_forward, _backward)


class BatchNorm(nn.Module):
  """`flax.linen.BatchNorm(axis=-1)` with flax's defaults and `normalize_train`'s gradient.

  Attributes: as flax's. Inputs (..., C); output in `dtype` (default: the input's).
  """

  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
    scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    dtype = self.dtype or x.dtype
    if use_running_average:
      gain = jax.lax.rsqrt(ra_var.value + self.epsilon) * scale
      return ((x.astype(jnp.float32) - ra_mean.value) * gain + bias).astype(dtype)
    y, mean, var = normalize_train(x, scale, bias, self.epsilon)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.astype(dtype)
