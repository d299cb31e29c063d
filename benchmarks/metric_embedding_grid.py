"""The segmentation readouts' metric-embedding loss, which reads a 16x16 grid of the 64x64
embedding image, two ways of making it cheaper, each against its baseline side by side in one
process (K stacked readouts, 16x16 representations -> 64x64x64 embeddings, as in
`taxonomy:cpu_full`):

  - grid read: a strided slice (`losses.grid_sample`, where the grid divides the image) vs the
    index gather of the general case; loss and gradient through the shuffle head's output.
  - training step: the readouts' whole training step (`loop.make_train_step` over
    `readout.stacked_apply`) with the full output vs only the pixels the loss reads
    (`Readout.loss_pixels_only`: one pixel per representation cell).

Printed: seconds of each (median of `--repeats`, alternating), the ratio, and whether the two
compute the same losses and gradients (parameters after the steps).

  .venv/bin/python -m benchmarks.metric_embedding_grid --readouts 50 --batch 16
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.train import loop, losses
from taskonomy_jax.transfer import readout, training

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


def _alternating_medians(fns: dict[str, Callable[..., Any]], args: tuple, repeats: int
                         ) -> dict[str, float]:
  """Median seconds of each compiled `fns[name](*args)`, the variants alternating in every
  repeat so that a change in the machine's load falls on all of them."""
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, f in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(f(*args))
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def measure(readouts: int, batch: int, repeats: int) -> dict:
  """{"gather", "slice": median seconds per loss and gradient, "ratio", "equal_loss",
  "max_grad_diff"}."""
  rng = np.random.default_rng(0)
  kernel = jnp.asarray(rng.normal(0, 0.1, (readouts, 8, UPSAMPLE ** 2 * CHANNELS)), jnp.float32)
  reps = jnp.asarray(rng.normal(size=(readouts, batch, REP, REP, 8)), jnp.float32)
  segments = jnp.asarray(rng.integers(0, 6, (readouts * batch, SIDE, SIDE)))
  fns = {"gather": _loss_and_grad(gather_grid), "slice": _loss_and_grad(losses.grid_sample)}
  outs = {name: jax.block_until_ready(f(kernel, reps, segments)) for name, f in fns.items()}
  med = _alternating_medians(fns, (kernel, reps, segments), repeats)
  (lg, gg), (ls, gs) = outs["gather"], outs["slice"]
  return {**med, "ratio": med["gather"] / med["slice"], "equal_loss": bool(lg == ls),
          "max_grad_diff": float(jnp.abs(gg - gs).max())}


def measure_step(readouts: int, batch: int, repeats: int, steps: int = 2) -> dict:
  """{"full", "loss_pixels": median seconds per training step, "ratio", "max_param_diff"
  (after `steps` steps from the same variables), "max_loss_diff"}."""
  spec = tasks.get("segment_unsup2d")
  config = {"readout_channels": 8, "output_stride": SIDE // REP, "pixel_head": "shuffle",
            "rep_channels": 8}
  rng = np.random.default_rng(0)
  data = {"inputs": jnp.asarray(rng.normal(size=(batch, readouts, REP, REP, 32)), jnp.float32),
          "targets": jnp.asarray(rng.integers(0, 6, (batch, readouts, SIDE, SIDE)), jnp.int32),
          "mask": jnp.ones((batch, readouts, SIDE, SIDE), jnp.float32)}
  tx = training.optimizer({"name": "adam", "learning_rate": 1e-3, "weight_decay": 2e-6})
  variables = readout.init_stacked(readout.build(spec, config), data["inputs"][:, 0],
                                   list(range(readouts)))
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                          batch_stats=variables["batch_stats"],
                          opt_state=tx.init(variables["params"]))
  key = jax.random.key(0)
  fns, ends = {}, {}
  for name, only in (("full", False), ("loss_pixels", True)):
    module = readout.build(spec, {**config, "loss_pixels_only": only})
    fns[name] = jax.jit(loop.make_train_step(readout.stacked_apply(module),
                                             readout.stacked_loss(spec), tx))
    s = state
    for _ in range(steps):
      s, metrics = fns[name](s, data, key)
    ends[name] = (jax.block_until_ready(s.params), float(metrics["loss"]))
  med = _alternating_medians(fns, (state, data, key), repeats)
  diff = max(float(jnp.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(ends["full"][0]), jax.tree.leaves(ends["loss_pixels"][0]), strict=True))
  return {**med, "ratio": med["full"] / med["loss_pixels"], "max_param_diff": diff,
          "max_loss_diff": abs(ends["full"][1] - ends["loss_pixels"][1])}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--readouts", type=int, default=50)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  r = measure(args.readouts, args.batch, args.repeats)
  print(f"grid read, K={args.readouts} batch {args.batch}: gather {r['gather']:.3f} s, slice "
        f"{r['slice']:.3f} s per loss and gradient; ratio {r['ratio']:.2f}x; equal loss "
        f"{r['equal_loss']}, max gradient difference {r['max_grad_diff']:.2g}")
  r = measure_step(args.readouts, args.batch, args.repeats)
  print(f"training step, K={args.readouts} batch {args.batch}: full output {r['full']:.3f} s, "
        f"loss pixels only {r['loss_pixels']:.3f} s per step; ratio {r['ratio']:.2f}x; after 2 "
        f"steps max parameter difference {r['max_param_diff']:.2g}, loss difference "
        f"{r['max_loss_diff']:.2g}")


if __name__ == "__main__":
  main()
