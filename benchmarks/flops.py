"""FLOPs of a JAX function two ways, and model FLOPs utilisation (MFU).

- `counted_flops(fn, *args)`: traces `fn` to a jaxpr and adds 2 x the multiply-adds of every
  convolution and matrix product in it (nested jaxprs included; a `scan` body counts `length`
  times). Only taps that land on real input count: padding and the holes of a dilated input
  (transposed convolutions) are skipped, which is also how XLA's cost analysis counts, so the
  two agree exactly on a convolution or matmul alone. These are the "model FLOPs" of MFU:
  for a training step the jaxpr holds the forward and the backward convolutions.
- `xla_flops(compiled)`: XLA's own count (`jitted.lower(...).compile().cost_analysis()`), which
  also counts elementwise work (BatchNorm, activations, the optimizer): a little higher.

MFU = model FLOPs per second / the chip's peak dense bf16 matrix rate (`PEAK_BF16`, keyed by
`jax.Device.device_kind`; unknown chips get no MFU rather than a guessed one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.extend import core as jax_core

# Dense (no sparsity) bf16 matrix peak, FLOP/s, from the vendors' data sheets. Matched as a
# lower-case substring of `device_kind`, first match wins, so specific names come first.
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("h100 pcie", 756e12),
    ("h100", 989e12),   # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("h200", 989e12),   # same compute die as H100 SXM
    ("a100", 312e12),
    ("tpu v6 lite", 918e12),
    ("tpu v5 lite", 197e12),
    ("tpu v5", 459e12),  # v5p
    ("tpu v4", 275e12),
)


def peak_flops(device_kind: str) -> float | None:
  """The chip's peak dense bf16 FLOP/s, or None if the chip is not in `PEAK_BF16`."""
  kind = device_kind.lower()
  return next((peak for key, peak in PEAK_BF16 if key in kind), None)


def mfu(model_flops_per_step: float, seconds_per_step: float, device_kind: str) -> float | None:
  """Model FLOPs utilisation in [0, 1]; None for an unknown chip."""
  peak = peak_flops(device_kind)
  if peak is None:
    return None
  if seconds_per_step <= 0:
    raise ValueError(f"seconds_per_step must be > 0, got {seconds_per_step}")
  return model_flops_per_step / seconds_per_step / peak


def _valid_taps(in_size: int, out_size: int, kernel: int, stride: int, pad_lo: int,
                lhs_dil: int, rhs_dil: int) -> int:
  """(output position, kernel tap) pairs of one spatial axis that read a real input element."""
  o = np.arange(out_size)[:, None]
  k = np.arange(kernel)[None, :]
  p = o * stride + k * rhs_dil - pad_lo          # position in the dilated, unpadded input
  real = (p >= 0) & (p <= (in_size - 1) * lhs_dil) & (p % lhs_dil == 0)
  return int(real.sum())


def conv_flops(eqn: Any) -> int:
  """2 x real multiply-adds of one `conv_general_dilated` equation."""
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  out = eqn.outvars[0].aval.shape
  p = eqn.params
  dn = p["dimension_numbers"]
  lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  spatial = 1
  for i in range(len(lhs_spec) - 2):
    spatial *= _valid_taps(lhs[lhs_spec[2 + i]], out[out_spec[2 + i]], rhs[rhs_spec[2 + i]],
                           p["window_strides"][i], p["padding"][i][0],
                           p["lhs_dilation"][i], p["rhs_dilation"][i])
  # Each output element of a given (batch, feature) sums over the kernel's input features;
  # the valid (position, tap) pairs are the same for every batch and feature.
  macs = out[out_spec[0]] * out[out_spec[1]] * rhs[rhs_spec[1]] * spatial
  return 2 * macs


def dot_flops(eqn: Any) -> int:
  """2 x multiply-adds of one `dot_general` equation."""
  lhs = eqn.invars[0].aval.shape
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  out = eqn.outvars[0].aval.shape
  return 2 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)


_COUNTERS: dict[str, Callable[[Any], int]] = {
    "conv_general_dilated": conv_flops, "dot_general": dot_flops}


def jaxpr_flops(jaxpr: Any) -> int:
  """Conv + matmul FLOPs of a (closed) jaxpr, recursing into nested jaxprs."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0
  for eqn in jaxpr.eqns:
    counter = _COUNTERS.get(eqn.primitive.name)
    if counter is not None:
      total += counter(eqn)
      continue
    times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
    for sub in jax_core.jaxprs_in_params(eqn.params):
      total += times * jaxpr_flops(sub)
  return total


def counted_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
  """Conv + matmul FLOPs of one call `fn(*args, **kwargs)` (traced, not run)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def xla_flops(compiled: Any) -> float | None:
  """XLA's FLOP count of a compiled computation (`jit(f).lower(...).compile()`)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
    cost = cost[0] if cost else None
  return None if not cost or "flops" not in cost else float(cost["flops"])


def paper_flops(resolution: int = 256, target: str = "normal", max_order: int = 4
                ) -> dict[str, float]:
  """Counted FLOPs per image at the paper's size (traced only, nothing compiled or run).

  Returns:
    network_step: one training step of a paper-size task network (forward + backward).
    readout_step: one training step of one transfer readout into `target` on a
      (res/16)^2 x (8 * max_order) representation (stacked form, one readout).
    encoder_forward: one forward pass of the encoder (making a representation).
  """
  import jax.numpy as jnp

  from benchmarks import train_step
  from taskonomy_jax import models, tasks
  from taskonomy_jax.train import loop
  from taskonomy_jax.transfer import readout, training
  fs = train_step.flax_step(resolution, 1, task=target, abstract=True)
  network = counted_flops(fs.step, fs.state, fs.batch, fs.key)
  spec = tasks.get(target)
  side, channels = resolution // 16, 8 * max_order
  module = readout.build(spec, {"readout_channels": 8})
  x = jnp.zeros((1, 1, side, side, channels), jnp.float32)
  v = jax.eval_shape(lambda: readout.init_stacked(module, x[:, 0], [0]))
  tx = training.optimizer({"name": "adam", "learning_rate": 1e-3, "weight_decay": 2e-6})
  state = loop.TrainState(step=jnp.zeros((), jnp.int32), params=v["params"],
                          batch_stats=v["batch_stats"],
                          opt_state=jax.eval_shape(tx.init, v["params"]))
  shape = spec.output_shape(resolution)
  batch = {"inputs": x, "targets": jnp.zeros((1, 1, *shape)),
           "mask": jnp.ones((1, 1, *shape[:-1]))}
  step = loop.make_train_step(readout.stacked_apply(module), readout.stacked_loss(spec), tx)
  read = counted_flops(step, state, batch, jax.random.key(0))
  model = models.build(spec)
  img = jnp.zeros((1, resolution, resolution, 3))
  enc_vars = jax.eval_shape(lambda: model.init(jax.random.key(0), img))
  encoder = counted_flops(lambda v, im: model.apply(v, im, method=lambda m, y: m.encoder(y)),
                          enc_vars, img)
  return {"resolution": resolution, "network_step": float(network),
          "readout_step": float(read), "encoder_forward": float(encoder)}
