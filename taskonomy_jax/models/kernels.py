"""The layer implementations the networks are built from, chosen once per network and backend.

Every network computes the same function with the same variables whatever runs its layers; what
differs per backend is speed. Three layers have hand-written forms, each measured faster on
XLA:CPU only (BUILD_NOTES.md, "The CPU train step"):

  - the convolution (`conv.py`; named by the config's `conv_impl`, 'auto' picks per backend),
  - BatchNorm's training-mode gradient (`batchnorm.BatchNorm`),
  - max pooling's gradient (`pooling.max_pool`; on an H200 it left the paper-size step unchanged).

Elsewhere the networks run XLA's convolution and flax's `nn.BatchNorm` and `nn.max_pool` until a
measurement there says otherwise (`CUSTOM_GRADIENT_BACKENDS`). The config-level choice stays a
string (`conv_impl`, recorded in checkpoints' configs); the top-level modules (`TaskNetwork`,
`transfer.readout.Readout`) turn it into a `Kernels` here and pass the functions down, as flax's
ResNet example passes `conv` and `norm`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from taskonomy_jax.models import batchnorm, pooling
from taskonomy_jax.models import conv as conv_lib

ModuleDef = Callable[..., nn.Module]
PoolFn = Callable[[jax.Array, tuple[int, int], tuple[int, int]], jax.Array]

# PyTorch's BatchNorm2d defaults (momentum 0.1 == flax momentum 0.9, eps 1e-5): the published
# weights were exported with these, so conversion is exact.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# Backends whose networks run `batchnorm.BatchNorm` and `pooling.max_pool`: where their
# gradients were measured faster than autodiff of flax's layers.
CUSTOM_GRADIENT_BACKENDS = frozenset({"cpu"})


def reduce_window_max_pool(x: jax.Array, window: tuple[int, int], stride: tuple[int, int]
                           ) -> jax.Array:
  """flax's unpadded max pool, `pooling.max_pool`'s signature; autodiff's gradient."""
  return nn.max_pool(x, window, strides=stride, padding="VALID")


@dataclasses.dataclass(frozen=True)
class Kernels:
  """What runs the convolutions, BatchNorms and max pools of one network.

  Attributes:
    conv_general_dilated: `nn.Conv`'s convolution (conv.py).
    batch_norm: a module class with `nn.BatchNorm`'s attributes and variables.
    max_pool: (x, window, stride) -> unpadded max pool of (B, H, W, C) `x`.

  The defaults are XLA's and flax's own layers. Frozen and made of module-level functions, so
  two selections for one backend compare equal (module attributes are hashed by jit).
  """

  conv_general_dilated: conv_lib.ConvFn = jax.lax.conv_general_dilated
  batch_norm: ModuleDef = nn.BatchNorm
  max_pool: PoolFn = reduce_window_max_pool

  def conv(self, dtype: Any) -> ModuleDef:
    """`nn.Conv` without bias in `dtype`, through `conv_general_dilated`."""
    return functools.partial(nn.Conv, use_bias=False, dtype=dtype,
                             conv_general_dilated=self.conv_general_dilated)

  def norm(self, train: bool, dtype: Any) -> ModuleDef:
    """The networks' BatchNorm: PyTorch's momentum and epsilon, batch statistics when `train`,
    running averages otherwise; output in `dtype`."""
    return functools.partial(self.batch_norm, use_running_average=not train,
                             momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)


def select(conv_impl: str = conv_lib.AUTO, backend: str | None = None) -> Kernels:
  """The kernels of one (unstacked) network on `backend` (default: jax's).

  Args:
    conv_impl: a name in `conv.CONV_IMPLS`, or 'auto' (the backend's `conv.unstacked_impl`).
  Raises:
    ValueError: unknown `conv_impl`.
  """
  backend = backend or jax.default_backend()
  conv_fn = conv_lib.get(conv_lib.unstacked_impl(backend) if conv_impl == conv_lib.AUTO
                         else conv_impl)
  if backend in CUSTOM_GRADIENT_BACKENDS:
    return Kernels(conv_fn, batchnorm.BatchNorm, pooling.max_pool)
  return Kernels(conv_fn)
