"""The segmentation readouts' metric-embedding loss: its grid of pixels read by a strided slice
(`losses.grid_sample`, where the grid divides the image) vs by the index gather of the general
case, side by side in one process, forward and backward through the readouts' pixel-shuffle
output (K stacked readouts, 16x16x8 representation -> 64x64x64 embeddings, as in
`taxonomy:cpu_full`). Printed: seconds per loss-and-gradient of each (median of `--repeats`,
alternating), their ratio, and whether losses and gradients are equal.

  .venv/bin/python -m benchmarks.metric_embedding_grid --readouts 50 --batch 16
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from taskonomy_jax.train import losses

SIDE, REP, CHANNELS, UPSAMPLE = 64, 16, 64, 4


def gather_grid(x: jax.Array, grid: int = losses.EMBEDDING_GRID) -> jax.Array:
  """The baseline: the grid's rows and columns picked by index arrays."""
  h, w = x.shape[1:3]
  rows = (jnp.arange(grid) * h) // grid + h // (2 * grid)
  cols = (jnp.arange(grid) * w) // grid + w // (2 * grid)
  x = x[:, rows][:, :, cols]
  return x.reshape(x.shape[0], -1, *x.shape[3:])


def _loss_and_grad(sample):
  def loss(kernel, reps, segments):
    y = jnp.einsum("kbhwc,kcd->kbhwd", reps, kernel)  # the shuffle head's 1x1 conv
    k, b = y.shape[:2]
    y = y.reshape(k * b, REP, REP, UPSAMPLE, UPSAMPLE, CHANNELS).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(k * b, SIDE, SIDE, CHANNELS)
    sigma = losses.pair_same_probability(sample(y))
    s = sample(segments)
    same = s[:, :, None] == s[:, None, :]
    return -jnp.mean(jnp.where(same, jnp.log(sigma), jnp.log1p(-sigma)))
  return jax.jit(jax.value_and_grad(loss))


def measure(readouts: int, batch: int, repeats: int) -> dict:
  """{"gather", "slice": median seconds per loss and gradient, "ratio", "equal_loss",
  "max_grad_diff"}."""
  rng = np.random.default_rng(0)
  kernel = jnp.asarray(rng.normal(0, 0.1, (readouts, 8, UPSAMPLE ** 2 * CHANNELS)), jnp.float32)
  reps = jnp.asarray(rng.normal(size=(readouts, batch, REP, REP, 8)), jnp.float32)
  segments = jnp.asarray(rng.integers(0, 6, (readouts * batch, SIDE, SIDE)))
  fns = {"gather": _loss_and_grad(gather_grid), "slice": _loss_and_grad(losses.grid_sample)}
  outs = {name: jax.block_until_ready(f(kernel, reps, segments)) for name, f in fns.items()}
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, f in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(f(kernel, reps, segments))
      times[name].append(time.perf_counter() - start)
  med = {name: float(np.median(t)) for name, t in times.items()}
  (lg, gg), (ls, gs) = outs["gather"], outs["slice"]
  return {**med, "ratio": med["gather"] / med["slice"], "equal_loss": bool(lg == ls),
          "max_grad_diff": float(jnp.abs(gg - gs).max())}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--readouts", type=int, default=50)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  r = measure(args.readouts, args.batch, args.repeats)
  print(f"K={args.readouts} batch {args.batch}: gather {r['gather']:.3f} s, slice "
        f"{r['slice']:.3f} s per loss and gradient; ratio {r['ratio']:.2f}x; equal loss "
        f"{r['equal_loss']}, max gradient difference {r['max_grad_diff']:.2g}")


if __name__ == "__main__":
  main()
