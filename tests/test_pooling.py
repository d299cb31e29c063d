"""`pooling.max_pool`: flax's max pool in values, and a gradient routed to each window's first
maximum, checked against flax (XLA's select-and-scatter) and a brute-force loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax.models import pooling

SHAPES = [  # (input shape, window, stride)
    ((2, 9, 7, 3), (3, 3), (2, 2)),  # the encoder's pool, odd sides
    ((1, 8, 8, 2), (2, 2), (2, 2)),  # non-overlapping
    ((2, 6, 5, 1), (3, 2), (1, 2)),  # unequal window and stride
]


def _brute_force_grad(x: np.ndarray, dy: np.ndarray, window, stride) -> np.ndarray:
  """Each output's cotangent added at its window's first maximum in row-major order."""
  dx = np.zeros_like(x)
  for b, r, c, ch in np.ndindex(*dy.shape):
    patch = x[b, r * stride[0]:r * stride[0] + window[0], c * stride[1]:c * stride[1] + window[1],
              ch]
    i, j = np.unravel_index(np.argmax(patch), patch.shape)  # argmax: first in row-major order
    dx[b, r * stride[0] + i, c * stride[1] + j, ch] += dy[b, r, c, ch]
  return dx


@pytest.mark.parametrize("shape,window,stride", SHAPES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_equals_flax_and_routes_gradient_to_first_maximum(shape, window, stride, ties):
  rng = np.random.default_rng(0)
  # With ties: small integers, so most windows hold several equal maxima.
  x = (rng.integers(0, 3, shape) if ties else rng.normal(size=shape)).astype(np.float32)
  want = nn.max_pool(jnp.asarray(x), window, strides=stride, padding="VALID")
  got, vjp = jax.vjp(lambda v: pooling.max_pool(v, window, stride), jnp.asarray(x))
  np.testing.assert_array_equal(got, want)
  dy = rng.normal(size=got.shape).astype(np.float32)
  (dx,) = vjp(jnp.asarray(dy))
  np.testing.assert_allclose(dx, _brute_force_grad(x, dy, window, stride), rtol=1e-6, atol=1e-6)
  (flax_dx,) = jax.vjp(lambda v: nn.max_pool(v, window, strides=stride, padding="VALID"),
                       jnp.asarray(x))[1](jnp.asarray(dy))
  np.testing.assert_allclose(dx, flax_dx, rtol=1e-6, atol=1e-6)


def test_max_pool_bfloat16_jit_and_minus_inf_padding():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 7, 7, 4)), jnp.bfloat16)
  x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-jnp.inf)  # ceil mode
  f = jax.jit(lambda v: pooling.max_pool(v, (3, 3), (2, 2)))
  got = f(x)
  assert got.dtype == jnp.bfloat16 and got.shape == (2, 3, 3, 4)
  np.testing.assert_array_equal(got, nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID"))
  dx = jax.jit(jax.grad(lambda v: jnp.sum(f(v).astype(jnp.float32))))(x)
  assert dx.dtype == jnp.bfloat16
  assert float(jnp.sum(dx.astype(jnp.float32))) == got.size  # one unit per output
  assert not np.asarray(dx[:, -1, :, :].astype(jnp.float32)).any()  # padding gets nothing


def test_max_pool_rejects_inputs_smaller_than_the_window():
  with pytest.raises(ValueError, match=r"\(B, H, W, C\) with H, W >= window \(3, 3\)"):
    pooling.max_pool(jnp.zeros((1, 2, 5, 1)), (3, 3), (2, 2))
  with pytest.raises(ValueError, match="max_pool takes"):
    pooling.max_pool(jnp.zeros((5, 5, 1)), (3, 3), (2, 2))
