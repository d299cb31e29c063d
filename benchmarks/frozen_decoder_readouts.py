"""Readouts through frozen target decoders: each target's decoder run once for all its readouts
(`readout.decoder_groups`) vs once per readout, side by side in one process.

The step is the training loop's own (`loop.make_train_step` over `readout.stacked_apply`, Adam
through `readout.freeze`); the K readouts are spread evenly over T target networks of the
default run's size (64x64 views, 16x16x8 representation, random weights: speed does not depend
on them). Printed: seconds per step of each variant (median of `--repeats`, alternating), and
milliseconds per readout-step.

  .venv/bin/python -m benchmarks.frozen_decoder_readouts --readouts 49 --targets 7 --batch 8
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from taskonomy_jax import models, tasks
from taskonomy_jax.configs import taxonomy
from taskonomy_jax.train import loop
from taskonomy_jax.transfer import readout


def _networks(config, num_targets: int) -> list[readout.TargetNetwork]:
  model = {k: config.model[k] for k in ("width", "blocks", "rep_channels", "output_stride",
                                        "decoder_width_multiplier", "decoder_min_channels")}
  side = config.data.resolution
  nets = []
  for i in range(num_targets):
    net = models.build("depth_zbuffer", model)
    v = net.init(jax.random.key(i), np.zeros((1, side, side, 3), np.float32))
    nets.append(readout.TargetNetwork(f"target{i}", net, v, None))
  return nets


def measure(readouts: int = 49, num_targets: int = 7, batch: int = 8, steps: int = 5,
            repeats: int = 3) -> dict[str, float]:
  """{variant: seconds per step, variant_compile: seconds to compile the step}: 'grouped' (one
  decoder call per target) and 'per_readout'."""
  config = taxonomy.get_config("default")
  spec = tasks.get("depth_zbuffer")
  module = readout.build(spec, {"frozen_target_decoder": True,
                                "output_stride": config.model.output_stride,
                                "rep_channels": config.model.rep_channels,
                                "decoder_width_multiplier": config.model.decoder_width_multiplier,
                                "decoder_min_channels": config.model.decoder_min_channels})
  nets = _networks(config, num_targets)
  members = [nets[k * num_targets // readouts] for k in range(readouts)]
  side = config.data.resolution
  h = side // config.model.output_stride
  rng = np.random.default_rng(0)
  data = {"inputs": rng.normal(size=(batch, readouts, h, h, 24)).astype(np.float32),
          "targets": rng.normal(size=(batch, readouts, side, side, 1)).astype(np.float32),
          "mask": np.ones((batch, readouts, side, side, 1), np.float32)}
  variables = readout.target_decoders(module, members, readout.init_stacked(
      module, data["inputs"][:1, 0], list(range(readouts))))
  tx = readout.freeze(optax.adam(1e-3), module)
  state = loop.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=variables["params"],
                          batch_stats=variables["batch_stats"],
                          opt_state=tx.init(variables["params"]))
  variants = {
      "grouped": readout.decoder_groups([n.name for n in members]),
      "per_readout": None,
  }
  steps_fn = {name: jax.jit(loop.make_train_step(readout.stacked_apply(module, groups=g),
                                                  readout.stacked_loss(spec), tx))
              for name, g in variants.items()}
  key = jax.random.key(0)
  compile_seconds = {}
  for name, fn in steps_fn.items():  # compile, and one step's warm-up
    start = time.perf_counter()
    fn = steps_fn[name] = fn.lower(state, data, key).compile()
    compile_seconds[name] = time.perf_counter() - start
    jax.block_until_ready(fn(fn(state, data, key)[0], data, key))
  times: dict[str, list[float]] = {name: [] for name in variants}
  for _ in range(repeats):
    for name, fn in steps_fn.items():
      s = state
      start = time.perf_counter()
      for _ in range(steps):
        s = fn(s, data, key)[0]
      jax.block_until_ready(s)
      times[name].append((time.perf_counter() - start) / steps)
  return {**{name: float(np.median(t)) for name, t in times.items()},
          **{f"{name}_compile": sec for name, sec in compile_seconds.items()}}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--readouts", type=int, default=49)
  p.add_argument("--targets", type=int, default=7)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--repeats", type=int, default=3)
  a = p.parse_args()
  result = measure(a.readouts, a.targets, a.batch, a.steps, a.repeats)
  for name in ("grouped", "per_readout"):
    sec = result[name]
    print(f"{name:12s} {sec:.3f} s/step  {1000 * sec / a.readouts:.1f} ms per readout-step  "
          f"compile {result[name + '_compile']:.1f} s")
  print(f"per_readout / grouped: {result['per_readout'] / result['grouped']:.2f}x")


if __name__ == "__main__":
  main()
