"""The Taskonomy encoder: a fully convolutional ResNet-50 ending in a 16x16x8 representation.

Layout (paper Sec. 4 and supplementary; layer for layer as the released PyTorch port,
`visualpriors.taskonomy_network.TaskonomyEncoder`, so published weights convert exactly):

  pad 3 -> conv7x7/2 (no bias) -> BN -> ReLU -> maxpool 3x3/2 (ceil mode)   256 -> 64
  stage 1: 3 bottlenecks, 64 planes,  the *last* block strides 2 (slim's resnet_v1 layout)  -> 32
  stage 2: 4 bottlenecks, 128 planes, last block strides 2                                 -> 16
  stage 3: 6 bottlenecks, 256 planes, stride 1 (no dilation)                               -> 16
  stage 4: 3 bottlenecks, 512 planes, stride 1                                             -> 16
  conv3x3 2048 -> 8 (no bias) -> BN -> ReLU                                                16x16x8

`output_stride` (16 in the paper) moves the strides: 8 keeps stage 2 at stride 1, 4 keeps every
stage at the stem's resolution. At 64x64 input, stride 4 gives the paper's 16x16x8 grid (the
CPU configs' choice: a 4x4x8 representation holds too little of the scene to transfer from).

The projection shortcut (1x1 conv + BN) sits in the first block of each stage at stride 1; the
strided last block's shortcut is a 1x1 max pool with the stride (i.e. subsampling), as in slim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from taskonomy_jax.models import kernels as kernels_lib
from taskonomy_jax.models import pooling
from taskonomy_jax.models.kernels import ModuleDef, PoolFn

# PyTorch-style symmetric padding: flax's "SAME" pads (0, 1) for stride 2 on even sizes, which
# would shift every strided layer by one pixel relative to the original.
PAD1 = ((1, 1), (1, 1))


# Stage strides for each output stride; the stem (conv /2, pool /2) gives the first factor 4.
STAGE_STRIDES = {4: (1, 1, 1, 1), 8: (2, 1, 1, 1), 16: (2, 2, 1, 1)}


def max_pool_ceil(x: jax.Array, window: int, stride: int,
                  pool: PoolFn = pooling.max_pool) -> jax.Array:
  """Max pool with PyTorch's `ceil_mode=True` and no padding.

  Args:
    x: (B, H, W, C).
    pool: the unpadded max pool (`Kernels.max_pool`).
  Returns:
    (B, ceil((H - window) / stride) + 1, ..., C).
  """
  pads = []
  for size in x.shape[1:3]:
    out = -(-(size - window) // stride) + 1
    pads.append((0, max((out - 1) * stride + window - size, 0)))
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
  return pool(x, (window, window), (stride, stride))


class Bottleneck(nn.Module):
  """ResNet v1 bottleneck: 1x1 -> 3x3 (strided) -> 1x1 (x4 planes), plus shortcut.

  `conv` and `norm` build the layers (`Kernels.conv`, `Kernels.norm`: dtype, the convolution,
  training or inference BatchNorm already bound), as in flax's ResNet example.
  """

  planes: int
  conv: ModuleDef
  norm: ModuleDef
  stride: int = 1
  project: bool = False  # 1x1 conv + BN on the shortcut (first block of a stage)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv, norm = self.conv, self.norm
    y = nn.relu(norm(name="bn1")(conv(self.planes, (1, 1), padding="VALID", name="conv1")(x)))
    y = nn.relu(norm(name="bn2")(conv(self.planes, (3, 3), strides=(self.stride, self.stride),
                                      padding=PAD1, name="conv2")(y)))
    y = norm(name="bn3")(conv(self.planes * 4, (1, 1), padding="VALID", name="conv3")(y))
    shortcut = x
    if self.project:
      shortcut = norm(name="downsample_bn")(
          conv(self.planes * 4, (1, 1), padding="VALID", name="downsample_conv")(x))
    if self.stride > 1:  # slim's 1x1 max pool with stride == subsampling
      shortcut = shortcut[:, ::self.stride, ::self.stride, :]
    return nn.relu(y + shortcut)


class Encoder(nn.Module):
  """Fully convolutional ResNet encoder: (B, H, W, 3) in [-1, 1] -> (B, H/s, W/s, rep_channels),
  s = `output_stride`.

  Attributes:
    width: planes of the first stage (64 in the paper); later stages double it.
    blocks: bottlenecks per stage ((3, 4, 6, 3) = ResNet-50).
    rep_channels: channels of the representation (8 in the paper).
    output_stride: input side / representation side: 16 (paper), 8 or 4.
    dtype: compute dtype (parameters stay float32).
    kernels: what runs the layers (models/kernels.py; same function whichever). None: the
      backend's choice for `conv_impl='auto'`.
  """

  width: int = 64
  blocks: Sequence[int] = (3, 4, 6, 3)
  rep_channels: int = 8
  output_stride: int = 16
  dtype: Any = jnp.float32
  kernels: kernels_lib.Kernels | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.output_stride not in STAGE_STRIDES:
      raise ValueError(f"output_stride must be one of {sorted(STAGE_STRIDES)}, got "
                       f"{self.output_stride}")
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"Encoder expects (B, H, W, 3) images, got shape {x.shape}")
    s = self.output_stride
    if x.shape[1] % s or x.shape[2] % s:
      raise ValueError(f"Encoder input sides must be multiples of its output stride {s}, got "
                       f"{x.shape[1:3]}")
    x = x.astype(self.dtype)
    kernels = self.kernels or kernels_lib.select()
    conv, norm = kernels.conv(self.dtype), kernels.norm(train, self.dtype)
    x = conv(self.width, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), name="conv1")(x)
    x = norm(name="bn1")(x)
    x = max_pool_ceil(nn.relu(x), 3, 2, kernels.max_pool)
    # Output stride 16: no dilation (as the released weights).
    strides = STAGE_STRIDES[self.output_stride]
    for stage, (num_blocks, stride) in enumerate(zip(self.blocks, strides, strict=True)):
      planes = self.width * 2 ** stage
      for b in range(num_blocks):
        last = b == num_blocks - 1
        x = Bottleneck(planes, conv, norm, stride=stride if last else 1, project=b == 0,
                       name=f"layer{stage + 1}_{b}")(x)
    x = conv(self.rep_channels, (3, 3), padding=PAD1, name="compress_conv")(x)
    x = norm(name="compress_bn")(x)
    return nn.relu(x)
