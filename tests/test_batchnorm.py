"""Our BatchNorm equals flax's: variables, outputs, running statistics and gradients, in
training and inference mode, float32 and bfloat16."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from taskonomy_jax.models import batchnorm


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_batchnorm_equals_flax(dtype, tol):
  rng = np.random.default_rng(0)
  # An offset mean and uneven scales per channel: what cancellation would show.
  x = jnp.asarray(rng.normal(size=(3, 5, 4, 6)) * rng.uniform(0.1, 3, 6) + 20, jnp.float32)
  ct = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  kw = dict(momentum=0.9, epsilon=1e-5, dtype=dtype)
  ours, theirs = batchnorm.BatchNorm(**kw), nn.BatchNorm(**kw)
  variables = theirs.init(jax.random.key(0), x, use_running_average=False)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x, use_running_average=False)) \
      == jax.tree.map(jnp.shape, variables)
  variables = {"params": {"scale": jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32),
                          "bias": jnp.asarray(rng.normal(size=6), jnp.float32)},
               "batch_stats": {"mean": jnp.asarray(rng.normal(size=6), jnp.float32),
                               "var": jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32)}}

  def run(module, train):
    def loss(params, x):
      y, updates = module.apply({**variables, "params": params}, x.astype(dtype),
                                use_running_average=not train, mutable=["batch_stats"])
      return jnp.sum(y.astype(jnp.float32) * ct), (y, updates)
    grads, (y, updates) = jax.grad(loss, argnums=(0, 1), has_aux=True)(variables["params"], x)
    return y, updates, grads

  for train in (True, False):
    for a, b in zip(jax.tree.leaves(run(ours, train)), jax.tree.leaves(run(theirs, train)),
                    strict=True):
      np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                 rtol=tol, atol=tol * 10)


def test_normalize_train_gradient_includes_the_statistics_outputs():
  """Cotangents on mean and var (not only y) are handled: the VJP equals autodiff of the
  plain formula for all three outputs."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(4, 3, 5)) * 2 + 1, jnp.float32)
  scale, bias = (jnp.asarray(rng.normal(size=5), jnp.float32) for _ in range(2))

  def plain(x, scale, bias, eps):
    mean = x.mean((0, 1))
    var = jnp.maximum((x * x).mean((0, 1)) - mean ** 2, 0)
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + bias, mean, var
  cts = [jnp.asarray(rng.normal(size=o.shape), jnp.float32) for o in plain(x, scale, bias, 1e-3)]

  def loss(f):
    return lambda *a: sum(jnp.sum(o * c) for o, c in zip(f(*a, 1e-3), cts, strict=True))
  for a, b in zip(jax.grad(loss(batchnorm.normalize_train), (0, 1, 2))(x, scale, bias),
                  jax.grad(loss(plain), (0, 1, 2))(x, scale, bias), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
