"""Train-step throughput: our jitted Flax step vs visualpriors' PyTorch encoder+decoder.

Both sides: the paper-size network (ResNet-50 encoder to 16x16x8 at 256x256, 15-layer decoder,
surface-normal head), a full training step (forward, L1 loss, backward, Adam update), float32,
the same batch size, on the same CPU, measured alternately in one process.

  python benchmarks/train_step.py                 # 64, 128, 256; prints a table
  python benchmarks/train_step.py --sizes 64 --batch 4 --steps 3
  python benchmarks/train_step.py --conv-impl patches   # im2col + matmul convolutions
  python benchmarks/train_step.py --jax-default-flags   # without taskonomy_jax/xla_flags.py

Like the training entry points, the command line first sets the XLA:CPU flags of
`taskonomy_jax.xla_flags` (unless XLA_FLAGS names them); `measure()` times whatever the
process has (the suite starts it with the same flags).

Needs the torch extra (torch==2.13.0 CPU, visualpriors).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from taskonomy_jax import models, tasks, xla_flags
from taskonomy_jax.models import conv
from taskonomy_jax.train import loop, losses


@dataclasses.dataclass
class FlaxStep:
  """A jitted training step of one task network and the arguments it runs on."""

  step: Any  # jax.jit(make_train_step(...)), state donated
  state: loop.TrainState
  batch: dict[str, jax.Array]
  key: jax.Array


def flax_step(res: int, batch: int, model_config: Mapping[str, Any] | None = None,
              task: str = "normal", abstract: bool = False) -> FlaxStep:
  """The loop's own train step (forward, task loss, backward, Adam) on random data.

  `model_config` goes to `models.build` (e.g. {"dtype": "bfloat16"}, or a narrow network);
  default: the paper-size network in float32. Inputs: (batch, res, res, 3). `abstract`: the
  state holds only shapes (`jax.eval_shape`), enough to trace or lower the step, and skips
  compiling the initialisation.
  """
  spec = tasks.get(task)
  model = models.build(spec, model_config)
  rng = np.random.default_rng(0)
  b = {"inputs": jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32),
       "targets": jnp.asarray(rng.uniform(-1, 1, (batch, *spec.output_shape(res))),
                              jnp.float32)}
  tx = optax.adam(1e-4)

  def make_state():
    v = (jax.eval_shape(model.init, jax.random.key(0), b["inputs"]) if abstract
         else loop.init_variables(model, b["inputs"], 0))
    return loop.TrainState(step=jnp.zeros((), jnp.int32), params=v["params"],
                           batch_stats=v["batch_stats"], opt_state=tx.init(v["params"]))
  state = jax.eval_shape(make_state) if abstract else make_state()
  step = jax.jit(loop.make_train_step(loop.network_apply(model),
                                      lambda p, bb: losses.task_loss(spec, p, bb), tx),
                 donate_argnums=(0,))
  return FlaxStep(step, state, b, jax.random.key(0))


def ours(res: int, batch: int, model_config: Mapping[str, Any] | None = None
         ) -> Callable[[], None]:
  fs = flax_step(res, batch, model_config)
  step, b, key = fs.step, fs.batch, fs.key
  holder = {"state": fs.state}

  def run():
    holder["state"], m = step(holder["state"], b, key)
    jax.block_until_ready(m["loss"])
  return run


def theirs(res: int, batch: int) -> Callable[[], None]:
  import torch
  from visualpriors import taskonomy_network as vp
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


def step_seconds(fns: Sequence[Callable[[], None]], steps: int) -> list[float]:
  """Median seconds per call of each of `fns`, called in turn `steps` times (after two warm-up
  calls each), so that a slow spell of a shared machine falls on every side alike."""
  for fn in fns:
    fn()  # compile / warm up
    fn()
  times: list[list[float]] = [[] for _ in fns]
  for _ in range(steps):
    for fn, ts in zip(fns, times, strict=True):
      t = time.perf_counter()
      fn()
      ts.append(time.perf_counter() - t)
  return [statistics.median(ts) for ts in times]


def measure(sizes: Sequence[int] = (64, 128, 256), batch: int = 4, steps: int = 3,
            baseline: bool = True, model_config: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
  """img/s of ours and (if `baseline`) visualpriors' PyTorch step per input size: batch over
  the median of `steps` step times, the two sides' steps interleaved (`step_seconds`).

  `model_config` goes to `models.build` for our side (e.g. {"conv_impl": "patches"}).

  Returns {"batch", "steps", "rows": [{"size", "ours", "torch", "ratio"}]}; torch and ratio
  are None without the baseline.
  """
  if baseline:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
  rows = []
  for res in sizes:
    fns = [ours(res, batch, model_config), *([theirs(res, batch)] if baseline else [])]
    a, *b = [batch / s for s in step_seconds(fns, steps)]
    b = b[0] if b else None
    rows.append({"size": res, "ours": a, "torch": b, "ratio": a / b if b else None})
  return {"batch": batch, "steps": steps, "rows": rows}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--conv-impl", default=conv.AUTO, choices=sorted((*conv.CONV_IMPLS, conv.AUTO)),
                 help="our convolutions (taskonomy_jax/models/conv.py; default: the backend's)")
  p.add_argument("--jax-default-flags", action="store_true",
                 help="do not add the training XLA flags (taskonomy_jax/xla_flags.py)")
  args = p.parse_args()
  if not args.jax_default_flags:
    xla_flags.configure_for_training()
  import torch
  print(f"cpu cores: {os.cpu_count()}, jax {jax.__version__} ({jax.devices()[0].platform}), "
        f"torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps, "
        f"conv {args.conv_impl}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"{'size':>6} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6}")
  for res in args.sizes:
    r = measure([res], args.batch, args.steps, model_config={"conv_impl": args.conv_impl})
    r = r["rows"][0]
    print(f"{res:>6} {r['ours']:>11.2f} {r['torch']:>12.2f} {r['ratio']:>6.2f}x", flush=True)


if __name__ == "__main__":
  main()
