"""Task networks: the shared encoder plus the decoder kind the task registry names.

Every network has a submodule named `encoder`, so an encoder can be restored alone into a new
model (`taskonomy_jax.train.checkpoint.restore_encoder`). Multi-image tasks (pose, egomotion,
point matching) and jigsaw's 9 tiles run the *same* encoder module on every view (shared weights,
paper Sec. 4), flatten each representation and concatenate them before the FC head, as the
original `Siamese` architecture does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from taskonomy_jax import tasks
from taskonomy_jax.models import conv as conv_lib
from taskonomy_jax.models import kernels as kernels_lib
from taskonomy_jax.models.decoders import FCHead, PixelDecoder, PixelShuffleHead, flatten_nhwc
from taskonomy_jax.models.resnet import Encoder

# Losses whose network output is logits (no tanh on the pixel decoder's output).
LOGIT_LOSSES = frozenset({"softmax_xent", "weighted_softmax_xent", "soft_xent"})
# Number of FC layers of the original `metric_net` per decoder kind / task.
FC_LAYERS = {"vector": 2, "siamese": 2, "jigsaw": 3}


class TaskNetwork(nn.Module):
  """Encoder + decoder for one task.

  Inputs: (B, H, W, 3) for single-view tasks, (B, V, H, W, 3) for multi-view tasks and jigsaw
  (V = num_views or num_tiles), floats in [-1, 1]. Output: (B, *spec.output_shape(H)) float32;
  for random projection (no decoder) the (B, H/s, W/s, rep_channels) representation,
  s = `output_stride` (16 in the paper).
  """

  spec: tasks.TaskSpec
  width: int = 64
  blocks: Sequence[int] = (3, 4, 6, 3)
  rep_channels: int = 8
  output_stride: int = 16  # the encoder's (models/resnet.py); the decoder upsamples back
  decoder_width_multiplier: float = 1.0
  decoder_min_channels: int = 1  # the pixel decoder's narrowest hidden layer
  fc_hidden: int = 2048
  dropout: float = 0.5
  dtype: Any = jnp.float32
  conv_impl: str = conv_lib.AUTO  # taskonomy_jax/models/conv.py; 'auto': per backend
  # Trained on standardised targets (taskbank/data.py): unbounded, so no tanh on the output.
  linear_output: bool = False

  def setup(self):
    kernels = kernels_lib.select(self.conv_impl)
    self.encoder = Encoder(width=self.width, blocks=tuple(self.blocks),
                           rep_channels=self.rep_channels, output_stride=self.output_stride,
                           dtype=self.dtype, kernels=kernels)
    self.decoder = build_decoder(self, kernels)

  @property
  def num_views(self) -> int:
    return max(self.spec.num_views, self.spec.num_tiles)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    views = self.num_views
    if views == 1 and (x.ndim != 4 or x.shape[-1] != 3):
      raise ValueError(f"task {self.spec.name!r} takes one image per example: expected "
                       f"(B, H, W, 3), got shape {x.shape}")
    if views > 1 and (x.ndim != 5 or x.shape[1] != views or x.shape[-1] != 3):
      raise ValueError(f"task {self.spec.name!r} takes {views} images per example: expected "
                       f"(B, {views}, H, W, 3), got shape {x.shape}")
    if views == 1:
      rep = self.encoder(x, train)
    else:  # one encoder over all views == shared weights
      b = x.shape[0]
      rep = self.encoder(x.reshape(b * views, *x.shape[2:]), train)
      rep = rep.reshape(b, views, *rep.shape[1:])
    if self.decoder is None:
      return rep.astype(jnp.float32)
    if self.spec.decoder == "pixel":
      out = self.decoder(rep, train)
    else:  # flatten each view's representation, concatenate views
      out = self.decoder(rep.reshape(rep.shape[0], -1) if views > 1 else flatten_nhwc(rep), train)
    return out.astype(jnp.float32)


def _pixel_decoder(net: TaskNetwork, kernels: kernels_lib.Kernels,
                   only_block_offset: int | None = None) -> nn.Module:
  """`net` is a TaskNetwork or a transfer readout: both carry `spec` and the representation's
  `output_stride`; the decoder upsamples from it to the task's own output stride. `kernels`:
  the net's (`kernels.select(net.conv_impl)`). `only_block_offset`: the shuffle head's
  (`PixelShuffleHead`)."""
  stride = net.spec.output_stride
  steps = int(math.log2(net.output_stride)) - int(math.log2(stride))
  if 2 ** int(math.log2(stride)) != stride or steps < 0:
    raise ValueError(f"{net.spec.name}'s output stride {stride} must be a power of 2 no larger "
                     f"than the representation's stride {net.output_stride}")
  squash = applies_tanh(net)
  if getattr(net, "pixel_head", "decoder") == "shuffle":
    return PixelShuffleHead(net.spec.channels, upsample_steps=steps, apply_tanh=squash,
                            dtype=net.dtype, only_block_offset=only_block_offset,
                            name="decoder")
  if only_block_offset is not None:
    raise ValueError("only_block_offset needs the shuffle pixel head")
  return PixelDecoder(net.spec.channels, upsample_steps=steps,
                      width_multiplier=net.decoder_width_multiplier,
                      min_channels=getattr(net, "decoder_min_channels", 1),
                      apply_tanh=squash, dtype=net.dtype, kernels=kernels, name="decoder")


def applies_tanh(net: Any) -> bool:
  """Whether `net`'s pixel decoder squashes its output with tanh: regression outputs only, and
  not where the output is unbounded (a residual readout predicts the target minus its mean
  image, a network trained on standardised targets predicts those)."""
  return (net.spec.loss not in LOGIT_LOSSES and not getattr(net, "residual", False)
          and not getattr(net, "linear_output", False))


def _fc_head(net: TaskNetwork, kernels: kernels_lib.Kernels) -> nn.Module:
  layers = FC_LAYERS["jigsaw" if net.spec.num_tiles > 1 else net.spec.decoder]
  return FCHead(net.spec.channels, num_layers=layers, hidden=net.fc_hidden,
                dropout=net.dropout, dtype=net.dtype, kernels=kernels, name="decoder")


_DECODERS: dict[str, Callable[..., nn.Module | None]] = {
    "pixel": _pixel_decoder,
    "vector": _fc_head,
    "siamese": _fc_head,
    "none": lambda net, kernels: None,
}


def build_decoder(net: Any, kernels: kernels_lib.Kernels, **head_options: Any
                  ) -> nn.Module | None:
  """The decoder of `net.spec.decoder`'s kind, sized by `net`'s decoder settings (a
  `TaskNetwork`, or a transfer readout with the same attributes) and built from `kernels`; None
  for "none". `head_options`: the pixel decoder's keyword arguments (`_pixel_decoder`)."""
  return _DECODERS[net.spec.decoder](net, kernels, **head_options)
