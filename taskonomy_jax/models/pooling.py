"""Max pooling with a hand-written gradient.

`max_pool` computes `flax.linen.max_pool(..., padding="VALID")` for channels-last inputs and
routes each output's gradient to the first maximum of its window in row-major order (as XLA's
select-and-scatter and PyTorch do). The gradient is a sum of strided pads, elementwise work that
XLA fuses; autodiff of `reduce_window` gave XLA:CPU a select-and-scatter that built four int32
index arrays of the input's size, ~5% of the paper-size training step at 256x256
(BUILD_NOTES.md, "The CPU train step"). The networks use it on CPU only (models/kernels.py):
on an H200 the paper-size step was unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


def _window_taps(x: jax.Array, window: tuple[int, int], stride: tuple[int, int]
                 ) -> list[tuple[tuple[int, int], jax.Array]]:
  """((i, j), tap) for each window offset in row-major order: tap (B, H', W', C) is the strided
  slice of `x` (B, H, W, C) that output (r, c) reads at input (i + r * s_0, j + c * s_1)."""
  out = [(s - k) // st + 1 for s, k, st in zip(x.shape[1:3], window, stride, strict=True)]
  return [((i, j), lax.slice(x, (0, i, j, 0),
                             (x.shape[0], i + (out[0] - 1) * stride[0] + 1,
                              j + (out[1] - 1) * stride[1] + 1, x.shape[3]),
                             (1, *stride, 1)))
          for i in range(window[0]) for j in range(window[1])]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x: jax.Array, window: tuple[int, int], stride: tuple[int, int]) -> jax.Array:
  """Unpadded 2-D max pool.

  Args:
    x: (B, H, W, C), H >= window[0] and W >= window[1].
    window, stride: (rows, cols).
  Returns:
    (B, (H - window[0]) // stride[0] + 1, (W - window[1]) // stride[1] + 1, C).
  """
  return _forward(x, window, stride)[0]


def _forward(x, window, stride):
  if x.ndim != 4 or any(s < k for s, k in zip(x.shape[1:3], window, strict=True)):
    raise ValueError(f"max_pool takes (B, H, W, C) with H, W >= window {window}, got {x.shape}")
  y = functools.reduce(jnp.maximum, [tap for _, tap in _window_taps(x, window, stride)])
  return y, (x, y)


def _backward(window, stride, residuals, dy):
  x, y = residuals
  zero = jnp.zeros((), x.dtype)
  taken = jnp.zeros(y.shape, bool)
  dx = jnp.zeros_like(x)
  for (i, j), tap in _window_taps(x, window, stride):
    first = (tap == y) & ~taken  # ties: the first maximum in row-major order takes it all
    taken = taken | first
    # Output (r, c) read input (i + r * stride, j + c * stride): interior padding places it.
    pads = [(lo, size - lo - (n - 1) * st - 1, st - 1)
            for lo, size, n, st in zip((i, j), x.shape[1:3], y.shape[1:3], stride, strict=True)]
    dx = dx + lax.pad(jnp.where(first, dy, zero), zero, ((0, 0, 0), *pads, (0, 0, 0)))
  return (dx,)


max_pool.defvjp(_forward, _backward)
