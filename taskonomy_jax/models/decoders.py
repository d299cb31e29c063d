"""Task decoders: the 15-layer pixel decoder and the fully connected heads (paper Sec. 4).

The pixel decoder follows the released PyTorch port (`visualpriors.TaskonomyDecoder`) layer for
layer: 13 conv/deconv layers with BN + leaky ReLU(0.2), a 3x3 output conv (the 15th counted layer
of the paper is the output) and tanh for regression outputs. Its four stride-2 deconvolutions use
TensorFlow's 'SAME' transposed-convolution alignment, which the port emulates with a (1, 0, 1, 0)
zero pad, a padding-1 ConvTranspose2d and dropping the first row and column; in JAX that is one
transposed convolution with explicit padding ((2, 1), (2, 1)) on the dilated input (derivation in
BUILD_NOTES.md, "Networks"), with the spatially flipped PyTorch kernel. It is written as `nn.Conv`
with `input_dilation=2`: the very `lax.conv_general_dilated` call `nn.ConvTranspose` makes (same
`kernel` parameter), but through `nn.Conv`'s pluggable convolution (models/kernels.py).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from taskonomy_jax.models import conv as conv_lib
from taskonomy_jax.models import kernels as kernels_lib
from taskonomy_jax.models.resnet import PAD1

# (out_channels, upsample) of the 13 hidden layers, as in the paper-size decoder.
PIXEL_DECODER_LAYERS: tuple[tuple[int, bool], ...] = (
    (1024, False), (1024, False), (512, False), (256, False), (256, False), (128, False),
    (64, True), (64, False), (32, True), (32, False), (16, True), (32, False), (16, True))
DECONV_PADDING = ((2, 1), (2, 1))


def deconv(features: int, dtype: Any = jnp.float32,
           conv_general_dilated: conv_lib.ConvFn = jax.lax.conv_general_dilated,
           name: str | None = None) -> nn.Conv:
  """The decoder's stride-2 3x3 transposed convolution (TF 'SAME' alignment): (B, h, w, C) ->
  (B, 2h, 2w, features). Kernel (3, 3, C, features), no bias, as `nn.ConvTranspose` with
  `padding=DECONV_PADDING` (the same lax call, written as a conv on the 2x-dilated input)."""
  return nn.Conv(features, (3, 3), padding=DECONV_PADDING, input_dilation=(2, 2),
                 use_bias=False, dtype=dtype, name=name,
                 conv_general_dilated=conv_general_dilated)


class PixelDecoder(nn.Module):
  """(B, h, w, C_rep) representation -> (B, h * 2^k, w * 2^k, out_channels).

  Attributes:
    out_channels: channels of the prediction.
    upsample_steps: how many of the 4 deconvolutions upsample (4: 16 -> 256; 2 for colorization's
      1/4 resolution output). The others become stride-1 convolutions, so depth is unchanged.
    width_multiplier: scales every hidden width (1.0 = paper).
    apply_tanh: squash to [-1, 1] (regression targets); False for logits.
    kernels: what runs the layers (models/kernels.py; same function whichever). None: the
      backend's choice for `conv_impl='auto'`.
  """

  out_channels: int
  upsample_steps: int = 4
  width_multiplier: float = 1.0
  apply_tanh: bool = True
  # Narrowest hidden layer: at small width multipliers the last layers would keep 1 channel,
  # a bottleneck that cannot even reproduce a target's mean image (BUILD_NOTES.md, "The
  # taxonomy pipeline and its gates").
  min_channels: int = 1
  dtype: Any = jnp.float32
  kernels: kernels_lib.Kernels | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    ups_left = self.upsample_steps
    kernels = self.kernels or kernels_lib.select()
    conv, norm = kernels.conv(self.dtype), kernels.norm(train, self.dtype)
    for i, (channels, upsample) in enumerate(PIXEL_DECODER_LAYERS):
      features = max(self.min_channels, round(channels * self.width_multiplier))
      if upsample and ups_left > 0:
        ups_left -= 1
        x = deconv(features, self.dtype, kernels.conv_general_dilated, name=f"layer{i}")(x)
      else:
        x = conv(features, (3, 3), padding=PAD1, name=f"layer{i}")(x)
      x = norm(name=f"bn{i}")(x)
      x = nn.leaky_relu(x, 0.2)
    if ups_left:
      raise ValueError(f"upsample_steps={self.upsample_steps} exceeds the decoder's 4 deconvs")
    x = conv(self.out_channels, (3, 3), padding=PAD1, use_bias=True, name="output")(x)
    return jnp.tanh(x) if self.apply_tanh else x


class PixelShuffleHead(nn.Module):
  """(B, h, w, C) -> (B, h * 2^k, w * 2^k, out_channels): one 1x1 conv to 4^k * out_channels
  channels, each pixel's channels laid out as its 2^k x 2^k block (depth to space).

  The CPU-size transfer readouts' output: per output pixel a linear function of the readout's
  features at its cell, so a readout measures what the representation holds rather than what a
  15-layer decoder trained on a few hundred views can make of it, and converges in hundreds of
  steps (BUILD_NOTES.md, "The taxonomy pipeline and its gates"). Not in the paper, whose readouts
  end in the full decoder.
  """

  out_channels: int
  upsample_steps: int = 4
  apply_tanh: bool = True
  dtype: Any = jnp.float32
  # Only the output pixel at (offset, offset) of every 2^k x 2^k block: (B, h, w, out_channels),
  # the values the full output has there, from 1/4^k of the 1x1 conv (the same variables). For
  # a loss that reads one pixel per block (`losses.grid_block_offset`).
  only_block_offset: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    f = 2 ** self.upsample_steps
    b, h, w, _ = x.shape
    c = self.out_channels
    if self.only_block_offset is not None:
      if not 0 <= self.only_block_offset < f:
        raise ValueError(f"only_block_offset must be in [0, {f}), got {self.only_block_offset}")
      first = (self.only_block_offset * f + self.only_block_offset) * c  # depth-to-space order
      x = ColumnsDense(f * f * c, columns=(first, first + c), dtype=self.dtype, name="output")(x)
      return jnp.tanh(x) if self.apply_tanh else x
    x = nn.Dense(f * f * c, dtype=self.dtype, name="output")(x)
    x = x.reshape(b, h, w, f, f, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, h * f, w * f, c)
    return jnp.tanh(x) if self.apply_tanh else x


class ColumnsDense(nn.Module):
  """`nn.Dense(features)`'s variables (same names, shapes, initialisers), applied for output
  columns [start, stop) only: (..., D) -> (..., stop - start)."""

  features: int
  columns: tuple[int, int]
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    start, stop = self.columns
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel[:, start:stop], bias[start:stop],
                                              dtype=self.dtype)
    return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ()))) + bias


class FCHead(nn.Module):
  """Flattened representation(s) -> vector: `num_layers - 1` x (Dense, BN, ReLU, dropout), Dense.

  The original's `encoder_multilayers_fc_bn`: 2 layers for single-image vector tasks and pose,
  3 for jigsaw; hidden 2048; dropout 0.5 (keep prob in the original: 0.5).

  Args (call):
    x: (B, D) flat features.
  Returns:
    (B, out_features).
  """

  out_features: int
  num_layers: int = 2
  hidden: int = 2048
  dropout: float = 0.5
  dtype: Any = jnp.float32
  kernels: kernels_lib.Kernels | None = None  # its BatchNorm; None: the backend's

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    norm = (self.kernels or kernels_lib.select()).norm(train, self.dtype)
    for i in range(self.num_layers - 1):
      x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name=f"fc{i}")(x)
      x = norm(name=f"bn{i}")(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
    return nn.Dense(self.out_features, dtype=self.dtype, name="output")(x)


def flatten_nhwc(x: jax.Array) -> jax.Array:
  """(B, h, w, c) -> (B, h * w * c) in NHWC order (the order the original TF weights expect)."""
  return x.reshape(x.shape[0], -1)
