"""Transfers per hour: K readouts stacked in one compiled step vs the same K trained one by one.

Both sides run the training loop's own step (`loop.make_train_step`) on the same inputs, in the
same process, alternating, on the same hardware:
  - batched: one jit of the stacked model (K readouts, vmapped), `steps` steps;
  - sequential: one readout at a time, `steps` steps each. Two variants: `fresh` compiles the
    step for every readout (what training them as separate jobs costs), `reused` compiles once
    and reuses the step for all K (the best case for one-by-one training).
A transfer = one readout trained for `steps` steps; transfers/hour counts compile time too.

  .venv/bin/python benchmarks/transfers_batched.py --target depth_zbuffer --readouts 16
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.train import loop
from taskonomy_jax.transfer import readout, training


def _setup(spec, module, k, batch, side, channels, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(batch, k, side, side, channels)).astype(np.float32))
  shape = spec.output_shape(16 * side)
  y = jnp.asarray(np.tanh(rng.normal(size=(batch, k, *shape))).astype(np.float32))
  m = jnp.ones((batch, k, *(shape[:-1] if spec.pixel_output else ())), jnp.float32)
  variables = readout.init_stacked(module, x[:, 0], list(range(k)))
  return {"inputs": x, "targets": y, "mask": m}, variables


def _run(spec, module, k, steps, args, fresh_compile=True, step_fn=None):
  """Seconds to compile (if needed) and run `steps` steps of a K-readout stacked model."""
  batch, variables = _setup(spec, module, k, args.batch, args.side, args.channels)
  tx = training.optimizer({"name": "adam", "learning_rate": 1e-3, "weight_decay": 2e-6})
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                          batch_stats=variables["batch_stats"],
                          opt_state=tx.init(variables["params"]))
  start = time.perf_counter()
  if step_fn is None or fresh_compile:
    step_fn = jax.jit(loop.make_train_step(readout.stacked_apply(module),
                                           readout.stacked_loss(spec), tx))
  rng = jax.random.key(0)
  for _ in range(steps):
    state, metrics = step_fn(state, batch, rng)
  jax.block_until_ready(metrics["loss"])
  return time.perf_counter() - start, step_fn


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--target", default="depth_zbuffer")
  p.add_argument("--readouts", type=int, default=16, help="K readouts into the target")
  p.add_argument("--steps", type=int, default=50)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--side", type=int, default=4, help="representation side (64x64 input: 4)")
  p.add_argument("--channels", type=int, default=32, help="max order 4 x 8 channels")
  p.add_argument("--decoder-width", type=float, default=1 / 16)
  p.add_argument("--repeats", type=int, default=2)
  args = p.parse_args()
  spec = tasks.get(args.target)
  module = readout.build(spec, {"readout_channels": 8, "decoder_width_multiplier":
                                args.decoder_width, "fc_hidden": 32, "dropout": 0.5})
  k = args.readouts
  rows = {"batched": [], "sequential_fresh": [], "sequential_reused": []}
  for r in range(args.repeats):  # alternate so load changes hit every variant
    t, _ = _run(spec, module, k, args.steps, args)
    rows["batched"].append(t)
    t = sum(_run(spec, module, 1, args.steps, args)[0] for _ in range(k))
    rows["sequential_fresh"].append(t)
    t0, fn = _run(spec, module, 1, args.steps, args)
    t = t0 + sum(_run(spec, module, 1, args.steps, args, False, fn)[0] for _ in range(k - 1))
    rows["sequential_reused"].append(t)
    print(f"repeat {r}: " + ", ".join(f"{n} {v[-1]:.1f} s" for n, v in rows.items()), flush=True)
  med = {n: float(np.median(v)) for n, v in rows.items()}
  per_hour = {n: k * 3600 / v for n, v in med.items()}
  print(f"target {spec.name}, K={k} readouts, {args.steps} steps of batch {args.batch}, "
        f"representation {args.side}x{args.side}x{args.channels}; medians of {args.repeats}")
  for n in rows:
    print(f"  {n:18} {med[n]:8.1f} s  {per_hour[n]:10.0f} transfers/hour")
  print(f"  batched / sequential_fresh  = {per_hour['batched'] / per_hour['sequential_fresh']:.1f}x")
  print(f"  batched / sequential_reused = {per_hour['batched'] / per_hour['sequential_reused']:.1f}x")


if __name__ == "__main__":
  main()
