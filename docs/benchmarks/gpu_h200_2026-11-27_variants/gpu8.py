"""Device check (H200): `pooling.max_pool` against flax's max pool on GPU (values,
gradients, ties, bfloat16) and the paper-size train step with either pool, interleaved.

Run from the repository root with the pinned wheels on PYTHONPATH (see `gpu8.log` beside this):
  python3 docs/benchmarks/gpu_h200_2026-11-27_variants/gpu8.py 32 8
"""

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import train_step as ts
from taskonomy_jax.models import pooling, resnet


def check_pool() -> None:
  rng = np.random.default_rng(0)
  for ties in (False, True):
    for dtype in (jnp.float32, jnp.bfloat16):
      shape = (4, 129, 129, 64)
      x = jnp.asarray(rng.integers(0, 3, shape) if ties else rng.normal(size=shape), dtype)
      dy = jnp.asarray(rng.normal(size=(4, 64, 64, 64)), dtype)
      a, va = jax.vjp(lambda v: nn.max_pool(v, (3, 3), strides=(2, 2), padding="VALID"), x)
      b, vb = jax.vjp(lambda v: pooling.max_pool(v, (3, 3), (2, 2)), x)
      ga, gb = va(dy)[0].astype(jnp.float32), vb(dy)[0].astype(jnp.float32)
      print(f"ties={ties} {jnp.dtype(dtype).name}: values equal {bool((a == b).all())}, "
            f"grad max abs diff {float(jnp.abs(ga - gb).max()):.3g}, "
            f"grad sum {float(ga.sum()):.4g} {float(gb.sum()):.4g}", flush=True)


def flax_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
  """`resnet.max_pool_ceil` as it was before `pooling.max_pool` (flax's max pool)."""
  pads = []
  for size in x.shape[1:3]:
    out = -(-(size - window) // stride) + 1
    pads.append((0, max((out - 1) * stride + window - size, 0)))
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")


def main() -> None:
  print(jax.devices(), flush=True)
  check_pool()
  ours_pool = resnet.max_pool_ceil
  for batch in [int(a) for a in sys.argv[1:]] or [32]:
    fns = []
    for name, pool in (("flax max_pool", flax_pool), ("pooling.max_pool", ours_pool)):
      resnet.max_pool_ceil = pool  # read when the step is traced, i.e. at its first call
      step = ts.ours(256, batch, {"conv_impl": "auto"})
      step()
      fns.append((name, step))
    secs = ts.step_seconds([f for _, f in fns], 20)
    for (name, _), s in zip(fns, secs, strict=True):
      print(f"256x256 batch {batch}, {name}: {s * 1e3:.1f} ms/step, {batch / s:.1f} img/s",
            flush=True)


if __name__ == "__main__":
  main()
