"""Trains K stacked readouts sharded over this process's devices and unsharded on one device.

Run in its own process (tests/test_transfer_sharding.py sets XLA_FLAGS for 8 CPU devices before
jax starts). Prints one `FACTS {json}` line: how the sharded parameters are laid out and how far
they are from the unsharded ones.
"""

import argparse
import json
import pathlib

import jax
import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.transfer import readout as readout_lib
from taskonomy_jax.transfer import training


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", required=True)
  p.add_argument("--k", type=int, default=12)
  p.add_argument("--steps", type=int, default=6)
  args = p.parse_args()
  rng = np.random.default_rng(0)
  n, k = 16, args.k
  spec = tasks.get("depth_zbuffer")
  # (N, K, 8, 8, 16) readout inputs; (N, 32, 32, 1) targets per copy, all pixels valid.
  inputs = rng.normal(size=(n, k, 8, 8, 16)).astype(np.float32)
  targets = [rng.normal(size=(n, 32, 32, 1)).astype(np.float32) for _ in range(k)]
  masks = [np.ones((n, 32, 32, 1), np.float32) for _ in range(k)]
  source = training.StackedSource(inputs, targets, masks)
  module = readout_lib.build(spec, {"readout_channels": 8, "output_stride": 4, "residual": True,
                                    "pixel_head": "shuffle", "decoder_width_multiplier": 1 / 32,
                                    "fc_hidden": 32, "dropout": 0.5})
  opt = {"name": "adam", "learning_rate": 2e-3, "weight_decay": 2e-6}
  train_cfg = {"num_steps": args.steps, "batch_size": 4, "seed": 0, "progress": False}
  seeds = list(range(k))
  work = pathlib.Path(args.workdir)
  one = training.train_stacked(module, spec, source, seeds, opt, {**train_cfg, "num_devices": 1},
                               work / "one")
  sharded = training.train_stacked(module, spec, source, seeds, opt, train_cfg, work / "sharded",
                                   shard=True)
  # The padded stack as trained (the loop's checkpointed state), before train_stacked cuts it.
  from taskonomy_jax.train import checkpoint
  saved = checkpoint.load_variables(str(work / "sharded"))
  leaf = jax.tree.leaves(sharded.opt_state)[1]  # Adam's first moment of some (K', ...) leaf
  diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(sharded.params),
                           strict=True)]
  scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(one.params))
  losses = training.stacked_losses(module, spec, sharded, source)
  facts = {
      "devices": len(jax.devices()),
      "returned_k": sorted({int(a.shape[0]) for a in jax.tree.leaves(sharded.params)}),
      "saved_k": sorted({int(a.shape[0]) for a in jax.tree.leaves(saved["params"])}),
      "opt_leaf_shard_shape": list(leaf.sharding.shard_shape(leaf.shape)),
      "opt_leaf_shape": list(leaf.shape),
      "opt_leaf_devices": len({s.device for s in leaf.addressable_shards}),
      "opt_leaf_shard_rows": sorted(int(s.data.shape[0]) for s in leaf.addressable_shards),
      "max_param_diff": max(diffs),
      "param_scale": scale,
      "losses_shape": list(losses.shape),
      "finite": bool(np.isfinite(losses).all()),
  }
  print("FACTS " + json.dumps(facts), flush=True)


if __name__ == "__main__":
  main()
