"""Transfers per hour: K readouts stacked in one compiled step vs the same readouts one by one.

Every variant runs the training loop's own step (`loop.make_train_step` over
`readout.stacked_apply`) on the same synthetic inputs, in one process, alternating, on the same
hardware. Each job is timed in three parts: init (jitted parameter init), compile (trace, lower
and XLA-compile the step) and step (seconds per training step once compiled).

  - batched, K readouts: one job of a K-stacked model (vmapped; `conv_impl` 'auto' resolves to
    the backend's stacked convolution, taskonomy_jax/models/conv.py). A transfer costs
    (init + compile + steps * step) / K.
  - sequential_fresh: each transfer its own job (what one training process per transfer costs,
    as the original code ran them), a single readout with XLA's convolution: init + compile +
    steps * step per transfer, whatever K is. Process start-up and data loading, which a real
    separate job also pays, are *not* counted (in the baseline's favour).
  - sequential_reused: K single readouts through one compiled step (the best case for one by
    one): (init + compile + K * steps * step) / K per transfer.

Transfers/hour = 3600 / seconds per transfer; every number is the median over `repeats`
alternating repeats. `measure()` returns plain numbers (a suite runner calls it with small
sizes); the command line prints a table and can write JSON and a scaling plot:

  .venv/bin/python benchmarks/transfers_batched.py --readouts 1 4 16 64 --plot scaling.png
  .venv/bin/python benchmarks/transfers_batched.py --target room_layout --impls patches xla
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import re
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from taskonomy_jax import files, tasks
from taskonomy_jax.models import conv
from taskonomy_jax.train import loop
from taskonomy_jax.transfer import readout, training

OPT = {"name": "adam", "learning_rate": 1e-3, "weight_decay": 2e-6}
_GROUPS = re.compile(r"(feature|batch)_group_count = (\d+)")


def _problem(spec: tasks.TaskSpec, k: int, batch: int, side: int, channels: int,
             seed: int = 0) -> dict[str, jax.Array]:
  """One batch of K readouts' inputs (B, K, side, side, channels), targets and masks."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch, k, side, side, channels)).astype(np.float32)
  shape = spec.output_shape(16 * side)
  y = np.tanh(rng.normal(size=(batch, k, *shape))).astype(np.float32)
  m = np.ones((batch, k, *(shape[:-1] if spec.pixel_output else ())), np.float32)
  return {"inputs": jnp.asarray(x), "targets": jnp.asarray(y), "mask": jnp.asarray(m)}


def time_job(spec: tasks.TaskSpec, module: readout.Readout, k: int, steps: int, batch: int,
             side: int, channels: int) -> dict[str, float]:
  """One training job of K stacked copies of `module`, from nothing: seconds to init, to
  compile the step, per step; and the grouped convolutions in the step's lowered HLO."""
  data = _problem(spec, k, batch, side, channels)
  tx = training.optimizer(OPT)
  start = time.perf_counter()
  variables = jax.block_until_ready(
      readout.init_stacked(module, data["inputs"][:, 0], list(range(k))))
  init_s = time.perf_counter() - start
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                          batch_stats=variables["batch_stats"],
                          opt_state=tx.init(variables["params"]))
  rng = jax.random.key(0)
  start = time.perf_counter()
  lowered = jax.jit(loop.make_train_step(readout.stacked_apply(module),
                                         readout.stacked_loss(spec), tx)).lower(state, data, rng)
  step_fn = lowered.compile()
  compile_s = time.perf_counter() - start
  groups = [int(n) for _, n in _GROUPS.findall(lowered.as_text()) if int(n) > 1]
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, data, rng)
  loss = float(jax.block_until_ready(metrics["loss"]))
  if not np.isfinite(loss):
    raise FloatingPointError(f"K={k} job ended with loss {loss}")
  return {"init_s": init_s, "compile_s": compile_s,
          "step_s": (time.perf_counter() - start) / steps, "grouped_convs": len(groups)}


def _rates(job: dict[str, float], single: dict[str, float], k: int, steps: int
           ) -> dict[str, float]:
  batched = (job["init_s"] + job["compile_s"] + steps * job["step_s"]) / k
  fresh = single["init_s"] + single["compile_s"] + steps * single["step_s"]
  reused = (single["init_s"] + single["compile_s"]) / k + steps * single["step_s"]
  return {"batched": 3600 / batched, "sequential_fresh": 3600 / fresh,
          "sequential_reused": 3600 / reused}


def measure(target: str = "depth_zbuffer", readouts: Sequence[int] = (1, 4, 16, 64),
            steps: int = 120, batch: int = 16, side: int = 4, channels: int = 32,
            decoder_width: float = 1 / 16, fc_hidden: int = 32, repeats: int = 2,
            impls: Sequence[str] = (conv.AUTO,), single_impl: str = "xla",
            progress: bool = False) -> dict[str, Any]:
  """Transfers/hour of batched vs one-by-one readout training, per K in `readouts`.

  Args:
    target: a pixel or vector task (the readouts' target).
    readouts: the K values (readouts per compiled step) of the sweep.
    steps: training steps per transfer; batch: examples per step; side, channels: the
      representation (side x side x channels; the pipeline's 64x64 input at order 4: 4, 32).
    impls: conv implementations of the batched variant ('auto' = the backend's stacked choice).
    single_impl: the one-by-one baseline's conv ('xla'; on a GPU 'patches' is faster for one
      small readout, so it is the fairer baseline there).
  Returns:
    JSON-able: the settings, `single` (the one-readout job's medians), and per impl and K the
    job's medians, transfers/hour of each variant and batched / baseline ratios.
  """
  if repeats < 1 or steps < 1 or not readouts:
    raise ValueError(f"need repeats >= 1, steps >= 1 and some readouts; got {repeats}, "
                     f"{steps}, {list(readouts)}")
  spec = tasks.get(target)
  cfg = {"readout_channels": 8, "decoder_width_multiplier": decoder_width,
         "fc_hidden": fc_hidden, "dropout": 0.5}
  single_module = readout.build(spec, {**cfg, "conv_impl": single_impl})
  modules = {i: readout.build(spec, {**cfg, "conv_impl": conv.stacked_impl() if i == conv.AUTO
                                     else i}) for i in impls}
  args = (steps, batch, side, channels)
  singles, jobs = [], {i: {k: [] for k in readouts} for i in impls}
  for r in range(repeats):  # alternate, so load changes hit every variant alike
    singles.append(time_job(spec, single_module, 1, *args))
    if progress:
      j = singles[-1]
      print(f"repeat {r} single {single_impl}: init {j['init_s']:.1f} s, compile "
            f"{j['compile_s']:.1f} s, step {1e3 * j['step_s']:.1f} ms", flush=True)
    for k in readouts:
      for i in impls:
        jobs[i][k].append(time_job(spec, modules[i], k, *args))
        if progress:
          j = jobs[i][k][-1]
          print(f"repeat {r} {i:>7} K={k:3}: init {j['init_s']:.1f} s, compile "
                f"{j['compile_s']:.1f} s, step {1e3 * j['step_s']:.1f} ms", flush=True)

  def med(rows):
    return {key: float(np.median([row[key] for row in rows])) for key in rows[0]}

  out: dict[str, Any] = {
      "target": spec.name, "steps": steps, "batch": batch, "side": side, "channels": channels,
      "decoder_width": decoder_width, "repeats": repeats, "backend": jax.default_backend(),
      "stacked_conv_impl": conv.stacked_impl(), "single_conv_impl": single_impl,
      "single": med(singles), "batched": {}}
  for i in impls:
    name = conv.stacked_impl() if i == conv.AUTO else i
    out["batched"][name] = {}
    for k in readouts:
      per_repeat = [_rates(j, s, k, steps) for j, s in zip(jobs[i][k], singles, strict=True)]
      rates = med(per_repeat)
      out["batched"][name][str(k)] = {
          **med(jobs[i][k]), "transfers_per_hour": rates,
          "vs_sequential_fresh": rates["batched"] / rates["sequential_fresh"],
          "vs_sequential_reused": rates["batched"] / rates["sequential_reused"]}
  return out


def plot(result: dict[str, Any], path: str) -> None:
  """Transfers/hour against readouts per compiled step (log-log), written atomically."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  baselines_drawn = False
  for impl, rows in result["batched"].items():
    ks = [int(k) for k in rows]
    ax.plot(ks, [rows[str(k)]["transfers_per_hour"]["batched"] for k in ks], "o-",
            label=f"batched ({impl} conv)")
    if not baselines_drawn:
      ax.plot(ks, [rows[str(k)]["transfers_per_hour"]["sequential_reused"] for k in ks], "s--",
              label="one by one, one compiled step reused")
      ax.plot(ks, [rows[str(k)]["transfers_per_hour"]["sequential_fresh"] for k in ks], "^:",
              label="one by one, a job per transfer")
      baselines_drawn = True
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("readouts per compiled step (K)")
  ax.set_ylabel("transfers / hour")
  ax.set_title(f"{result['target']}: {result['steps']} steps of batch {result['batch']}, "
               f"{result['backend']}", fontsize=9)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=120)
  plt.close(fig)
  files.write_atomic(pathlib.Path(path), buf.getvalue())


def _table(result: dict[str, Any]) -> str:
  s = result["single"]
  lines = [f"target {result['target']}, {result['steps']} steps of batch {result['batch']}, "
           f"representation {result['side']}x{result['side']}x{result['channels']}, "
           f"{result['backend']}; medians of {result['repeats']} repeats",
           # Results written before `single_conv_impl` existed had XLA's conv.
           f"single readout ({result.get('single_conv_impl', 'xla')} conv): init "
           f"{s['init_s']:.2f} s, compile {s['compile_s']:.2f} s, step {1e3 * s['step_s']:.2f} ms",
           f"{'conv':>8} {'K':>4} {'init s':>7} {'compile s':>9} {'step ms':>8} {'grouped':>7} "
           f"{'batched/h':>10} {'fresh/h':>9} {'reused/h':>9} {'x fresh':>8} {'x reused':>8}"]
  for impl, rows in result["batched"].items():
    for k, r in rows.items():
      t = r["transfers_per_hour"]
      lines.append(f"{impl:>8} {k:>4} {r['init_s']:7.2f} {r['compile_s']:9.2f} "
                   f"{1e3 * r['step_s']:8.2f} {r['grouped_convs']:7.0f} {t['batched']:10.0f} "
                   f"{t['sequential_fresh']:9.0f} {t['sequential_reused']:9.0f} "
                   f"{r['vs_sequential_fresh']:8.1f} {r['vs_sequential_reused']:8.1f}")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--target", default="depth_zbuffer")
  p.add_argument("--readouts", type=int, nargs="+", default=[1, 4, 16, 64],
                 help="K values: readouts per compiled step")
  p.add_argument("--steps", type=int, default=120, help="steps per transfer (pipeline: 120)")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--side", type=int, default=4, help="representation side (64x64 input: 4)")
  p.add_argument("--channels", type=int, default=32, help="max order 4 x 8 channels")
  p.add_argument("--decoder-width", type=float, default=1 / 16)
  p.add_argument("--fc-hidden", type=int, default=32)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--impls", nargs="+", default=[conv.AUTO],
                 choices=[conv.AUTO, *conv.CONV_IMPLS], help="batched variant's conv")
  p.add_argument("--single-impl", default="xla", choices=conv.CONV_IMPLS,
                 help="the one-by-one baseline's conv")
  p.add_argument("--json", help="also write the result here")
  p.add_argument("--plot", help="write a transfers/hour vs K plot here (png, pdf, svg)")
  args = p.parse_args()
  result = measure(args.target, args.readouts, args.steps, args.batch, args.side, args.channels,
                   args.decoder_width, args.fc_hidden, args.repeats, args.impls,
                   args.single_impl, progress=True)
  print(_table(result))
  if args.json:
    files.write_atomic(pathlib.Path(args.json), json.dumps(result, indent=1))
  if args.plot:
    plot(result, args.plot)


if __name__ == "__main__":
  main()
