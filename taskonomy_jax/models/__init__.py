"""Flax (linen) networks of Taskonomy: `build(task, config)` is the one factory.

linen rather than nnx: parameters are plain pytrees, so stacking many transfer readouts and
`jax.vmap`-ing one apply function over them (taskonomy_jax/transfer) needs no extra machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from taskonomy_jax import tasks
from taskonomy_jax.models import conv
from taskonomy_jax.models.decoders import FCHead, PixelDecoder
from taskonomy_jax.models.networks import TaskNetwork
from taskonomy_jax.models.resnet import Encoder

__all__ = ["DTYPES", "Encoder", "FCHead", "PixelDecoder", "TaskNetwork", "build"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_FIELDS = ("width", "blocks", "rep_channels", "output_stride", "decoder_width_multiplier",
           "decoder_min_channels", "fc_hidden", "dropout", "conv_impl", "linear_output")


def build(task: str | tasks.TaskSpec, config: Mapping[str, Any] | None = None) -> TaskNetwork:
  """The network for `task` (any registry name or a `TaskSpec`).

  Args:
    task: task name (registry, original code name or alias) or spec.
    config: model settings (a `ConfigDict` or dict): `width`, `blocks`, `rep_channels`,
      `output_stride` (16: the paper's 16x16 grid at 256x256; 4 gives it at 64x64),
      `decoder_width_multiplier`, `fc_hidden`, `dropout`, `dtype` ('float32' | 'bfloat16',
      the compute dtype; parameters stay float32), `conv_impl` (models/conv.py: 'auto', 'xla',
      'patches', 'mixed', 'polyphase', 'polyphase_matmul'; 'auto' picks per backend),
      `linear_output` (no tanh on a regression output: the network learns standardised,
      unbounded targets). Missing keys take the paper's values ('auto' for conv_impl).

  Raises:
    UnknownTaskError: unknown task name. ValueError: unknown config key or dtype.
  """
  spec = task if isinstance(task, tasks.TaskSpec) else tasks.get(task)
  config = dict(config or {})
  unknown = set(config) - set(_FIELDS) - {"dtype"}
  if unknown:
    raise ValueError(f"unknown model config keys {sorted(unknown)}; accepted: "
                     f"{sorted((*_FIELDS, 'dtype'))}")
  dtype = config.pop("dtype", "float32")
  if dtype not in DTYPES:
    raise ValueError(f"model dtype {dtype!r} is not supported; accepted: {sorted(DTYPES)}")
  conv.get(config.get("conv_impl", conv.AUTO))  # a bad name fails here, not at apply
  if "blocks" in config:
    config["blocks"] = tuple(config["blocks"])
  return TaskNetwork(spec=spec, dtype=DTYPES[dtype], **config)
