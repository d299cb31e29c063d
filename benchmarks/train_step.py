"""Train-step throughput: our jitted Flax step vs visualpriors' PyTorch encoder+decoder.

Both sides: the paper-size network (ResNet-50 encoder to 16x16x8 at 256x256, 15-layer decoder,
surface-normal head), a full training step (forward, L1 loss, backward, Adam update), float32,
the same batch size, on the same CPU, measured alternately in one process.

  python benchmarks/train_step.py                 # 64, 128, 256; prints a table
  python benchmarks/train_step.py --sizes 64 --batch 4 --steps 3

Needs the torch extra (torch==2.13.0 CPU, visualpriors).
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from visualpriors import taskonomy_network as vp

from taskonomy_jax import models, tasks
from taskonomy_jax.train import loop, losses


def ours(res: int, batch: int):
  spec = tasks.get("normal")
  model = models.build(spec)
  rng = np.random.default_rng(0)
  b = {"inputs": jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32),
       "targets": jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32)}
  v = loop.init_variables(model, b["inputs"], 0)
  tx = optax.adam(1e-4)
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=v["params"],
                          batch_stats=v["batch_stats"], opt_state=tx.init(v["params"]))
  step = jax.jit(loop.make_train_step(loop.network_apply(model),
                                      lambda p, bb: losses.task_loss(spec, p, bb), tx),
                 donate_argnums=(0,))
  key = jax.random.key(0)
  holder = {"state": state}

  def run():
    holder["state"], m = step(holder["state"], b, key)
    jax.block_until_ready(m["loss"])
  return run


def theirs(res: int, batch: int):
  enc = vp.TaskonomyEncoder(normalize_outputs=False, eval_only=False, train=True)
  dec = vp.TaskonomyDecoder(out_channels=3, eval_only=False)
  for p in dec.parameters():
    p.requires_grad = True
  enc.train(True)
  dec.train(True)
  params = list(enc.parameters()) + list(dec.parameters())
  opt = torch.optim.Adam(params, lr=1e-4)
  x = torch.rand(batch, 3, res, res) * 2 - 1
  y = torch.rand(batch, 3, res, res) * 2 - 1

  def run():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.l1_loss(dec(enc(x)), y)
    loss.backward()
    opt.step()
  return run


def images_per_second(fn, batch: int, steps: int) -> float:
  fn()  # compile / warm up
  fn()
  t = time.perf_counter()
  for _ in range(steps):
    fn()
  return batch * steps / (time.perf_counter() - t)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--steps", type=int, default=3)
  args = p.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)
  print(f"cpu cores: {os.cpu_count()}, jax {jax.__version__} ({jax.devices()[0].platform}), "
        f"torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps")
  print(f"{'size':>6} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6}")
  for res in args.sizes:
    a = images_per_second(ours(res, args.batch), args.batch, args.steps)
    b = images_per_second(theirs(res, args.batch), args.batch, args.steps)
    print(f"{res:>6} {a:>11.2f} {b:>12.2f} {a / b:>6.2f}x", flush=True)


if __name__ == "__main__":
  main()
