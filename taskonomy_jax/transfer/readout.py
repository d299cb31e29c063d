"""Transfer functions (paper Sec. 3.2) and their stacked, vmapped form.

A transfer function reads frozen source representation(s) and predicts a target: two 3x3 conv
layers on the representation (sources concatenated channel-wise for higher order), then the
target's own decoder kind (the 15-layer pixel decoder or the FC head), trained from scratch on
the small transfer budget -- or, with `frozen_target_decoder` (the original's `TransferNet`),
the two layers map into the target network's representation and the target network's own
trained decoder, frozen, predicts from there (`target_decoders`, `freeze`).

Many readouts into one target are trained as *one* model: their parameters are stacked on a
leading readout axis and one apply function is `jax.vmap`-ed over it, so the training loop
(taskonomy_jax/train/loop.py) compiles one step for all of them. Inputs of different orders
share a shape: each readout of the orders 2-4 stage sees its sources' representations
concatenated and zero-padded to `max_order * rep_channels` channels (first-order readouts get
`rep_channels`: `pipeline.input_channels`). A zero input channel changes nothing the readout
computes after init (its first-layer weights multiply zeros), so a padded order-2 readout is
an order-2 readout; the padding does widen the first layer's fan-in, hence its initial scale.

Under `vmap` over kernels, XLA's convolution becomes a grouped convolution, which XLA:CPU runs
slowly; the stacking functions here therefore resolve the modules' `conv_impl='auto'` to the
backend's stacked choice (`conv.for_stacking`: im2col + batched matmul on CPU), the same
function with the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from taskonomy_jax import tasks
from taskonomy_jax.models import conv as conv_lib
from taskonomy_jax.models import kernels as kernels_lib
from taskonomy_jax.models import networks
from taskonomy_jax.models.decoders import flatten_nhwc
from taskonomy_jax.models.resnet import PAD1
from taskonomy_jax.train import losses

PIXEL_HEADS = ("decoder", "shuffle")
# A frozen-target-decoder readout's variables taken from the target network, never trained.
FROZEN = "target"


class TransferFunction(nn.Module):
  """(B, h, w, C_in) source representation(s) -> (B, h, w, rep_channels) in the target network's
  representation space: two 3x3 convs with biases (no BatchNorm follows them: the frozen
  decoder's first normalises with the target encoder's statistics), the second linear, as the
  representation the target's encoder gave its decoder is unbounded too."""

  hidden: int = 8
  rep_channels: int = 8
  dtype: Any = jnp.float32
  conv_impl: str = conv_lib.AUTO

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = kernels_lib.select(self.conv_impl).conv(self.dtype)
    x = nn.relu(conv(self.hidden, (3, 3), padding=PAD1, use_bias=True, name="conv0")(x))
    return conv(self.rep_channels, (3, 3), padding=PAD1, use_bias=True, name="conv1")(x)


class TargetHead(nn.Module):
  """A target network's decoder and output transform, run frozen: (B, h, w, rep_channels) ->
  predictions in the targets' units (B, *spec.output_shape(output_stride * h)).

  The decoder runs in inference mode (BatchNorm on its running statistics, no dropout); its
  output goes through tanh where that network squashes (`squash` 1, else 0), then the statistics
  its targets were standardised with (mean 0, std 1 where they were not). Every variable is the
  target network's (`target_decoders`). Attributes as `TaskNetwork`'s decoder settings.
  """

  spec: tasks.TaskSpec
  output_stride: int = 16
  decoder_width_multiplier: float = 1.0
  decoder_min_channels: int = 1
  fc_hidden: int = 2048
  dropout: float = 0.5
  dtype: Any = jnp.float32
  conv_impl: str = conv_lib.AUTO
  linear_output: bool = True  # tanh, where the target network has one, is `squash`'s

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    decoder = networks.build_decoder(self, kernels_lib.select(self.conv_impl))
    if self.spec.decoder != "pixel":
      z = flatten_nhwc(z)  # as the task network flattens its representation
    out = decoder(z, False).astype(jnp.float32)
    channels = self.spec.channels
    squash = self.param("squash", nn.initializers.zeros, ())
    mean = self.param("mean", nn.initializers.zeros, (channels,))
    std = self.param("std", nn.initializers.ones, (channels,))
    out = squash * jnp.tanh(out) + (1 - squash) * out
    return out * std + mean


class Readout(nn.Module):
  """(B, h, w, C_in) representation(s) -> the target's prediction (B, *spec.output_shape(16h)).
  A multi-view target's input holds its V views' inputs side by side, (B, h, w, V * C).

  Attributes mirror `TaskNetwork`'s decoder settings, so the decoder is built by the same
  factory as the task networks' (`networks.build_decoder`): one definition of each decoder kind.
  """

  spec: tasks.TaskSpec
  readout_channels: int = 8
  output_stride: int = 16  # the representation's (input side / representation side)
  # Predict the target minus its training mean (`residual_target`), with a linear output: a
  # readout starts at the mean image and learns what the representation adds to it.
  residual: bool = False
  # Pixel targets: 'decoder' (the paper: the 15-layer decoder) or 'shuffle' (a 1x1 conv and
  # depth to space: `decoders.PixelShuffleHead`, the CPU size's choice).
  pixel_head: str = "decoder"
  # The original's TransferNet: a `TransferFunction` into the target network's representation
  # (`rep_channels`), then that network's trained decoder, frozen (`TargetHead`). Its variables
  # come from `target_decoders`, and `freeze` keeps the optimizer off them. Otherwise a readout
  # trains its decoder from scratch.
  frozen_target_decoder: bool = False
  rep_channels: int = 8
  decoder_width_multiplier: float = 1.0
  decoder_min_channels: int = 1
  fc_hidden: int = 2048
  dropout: float = 0.5
  dtype: Any = jnp.float32
  conv_impl: str = conv_lib.AUTO  # taskonomy_jax/models/conv.py
  # Output only the pixels the target's loss reads, where that is cheaper and exact: a metric
  # embedding's grid (`losses.grid_sample`) through the shuffle head, one pixel per
  # representation cell, is 1/16 of the head's output at output stride 4. Predictions are then
  # (B, grid, grid, C), from which the loss reads the same values (a grid-sized image is its
  # own grid); for training and held-out losses, not for showing predictions.
  loss_pixels_only: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.frozen_target_decoder:
      return self.target_head(name=FROZEN)(self.transfer_function(name="transfer")(x))
    kernels = kernels_lib.select(self.conv_impl)
    conv, norm = kernels.conv(self.dtype), kernels.norm(train, self.dtype)
    batch, views = x.shape[0], self.spec.num_views
    if views > 1:  # (B, h, w, V * C): each view's block through the same layers, as the
      # task network runs one encoder over every view
      _, h, w, c = x.shape
      x = x.reshape(batch, h, w, views, c // views).transpose(0, 3, 1, 2, 4)
      x = x.reshape(batch * views, h, w, c // views)
    for i in range(2):  # the paper's two-layer readout
      x = conv(self.readout_channels, (3, 3), padding=PAD1, name=f"conv{i}")(x)
      x = norm(name=f"bn{i}")(x)
      x = nn.relu(x)
    if self.spec.decoder == "pixel":
      decoder = networks.build_decoder(self, kernels, only_block_offset=self._loss_block_offset(x))
      out = decoder(x, train)
    else:  # every view's features side by side
      decoder = networks.build_decoder(self, kernels)
      if decoder is None:
        raise ValueError(f"{self.spec.name!r} has no decoder: it cannot be a transfer target")
      out = decoder(x.reshape(batch, -1), train)
    return out.astype(jnp.float32)

  def _loss_block_offset(self, x: jax.Array) -> int | None:
    """The shuffle head's `only_block_offset` under `loss_pixels_only`, else None."""
    if not (self.loss_pixels_only and self.pixel_head == "shuffle"
            and self.spec.loss == "metric_embedding"):
      return None
    block = self.output_stride // self.spec.output_stride
    return losses.grid_block_offset(x.shape[1] * block, block)

  # Named as submodules of a readout; unnamed, they apply on their own variables
  # (`_through_target_heads`).
  @nn.nowrap
  def transfer_function(self, name: str | None = None) -> TransferFunction:
    return TransferFunction(hidden=self.readout_channels, rep_channels=self.rep_channels,
                            dtype=self.dtype, conv_impl=self.conv_impl, name=name)

  @nn.nowrap
  def target_head(self, name: str | None = None) -> TargetHead:
    return TargetHead(spec=self.spec, output_stride=self.output_stride,
                      decoder_width_multiplier=self.decoder_width_multiplier,
                      decoder_min_channels=self.decoder_min_channels, fc_hidden=self.fc_hidden,
                      dropout=self.dropout, dtype=self.dtype, conv_impl=self.conv_impl,
                      name=name)


def build(spec: tasks.TaskSpec, config: Mapping[str, Any]) -> Readout:
  """A readout for target `spec` from `config` (keys: readout_channels, output_stride,
  residual, pixel_head, frozen_target_decoder, rep_channels, decoder_width_multiplier,
  decoder_min_channels, fc_hidden, dropout, conv_impl, loss_pixels_only; missing keys take the
  paper's values, conv_impl 'auto'). `residual` applies to regression targets only."""
  known = {"readout_channels", "output_stride", "residual", "pixel_head", "frozen_target_decoder",
           "rep_channels", "decoder_width_multiplier", "decoder_min_channels", "fc_hidden",
           "dropout", "conv_impl", "loss_pixels_only"}
  unknown = set(config) - known
  if unknown:
    raise ValueError(f"unknown readout config keys {sorted(unknown)}; accepted: {sorted(known)}")
  if not is_transfer_target(spec):
    raise ValueError(f"{spec.name!r} ({spec.decoder} decoder, {spec.num_tiles} tiles) is not a "
                     "transfer target; transfers go to pixel, vector and multi-view tasks")
  config = dict(config)
  conv_lib.get(config.get("conv_impl", conv_lib.AUTO))  # a bad name fails here, not at apply
  if config.get("pixel_head", "decoder") not in PIXEL_HEADS:
    raise ValueError(f"readout pixel_head {config['pixel_head']!r} is unknown; accepted: "
                     f"{PIXEL_HEADS}")
  config["residual"] = bool(config.get("residual", False)) and is_regression(spec)
  if config["residual"] and config.get("frozen_target_decoder", False):
    raise ValueError("a readout through the frozen target decoder predicts the target itself: "
                     "set readout.residual (and standardize_residual) False")
  if config.get("frozen_target_decoder", False) and spec.num_views > 1:
    raise ValueError(f"{spec.name!r} takes {spec.num_views} views: readouts through a frozen "
                     "target decoder go to single-view targets only")
  if config.get("frozen_target_decoder", False):
    config["pixel_head"] = "decoder"  # the task networks' own
  return Readout(spec=spec, **config)


class TargetNetwork(NamedTuple):
  """A trained task network as a frozen-decoder readout reads it: its target's name, the flax
  module and variables, and the statistics its targets were standardised with (or None)."""

  name: str
  module: nn.Module
  variables: Mapping[str, Any]
  target_stats: Mapping[str, Sequence[float]] | None


def target_decoders(module: Readout, networks_of: Sequence[TargetNetwork],
                    variables: Mapping[str, Any]) -> dict[str, Any]:
  """`variables` of K stacked `module` copies (`init_stacked`) with copy k's `FROZEN` part
  (`TargetHead`) set from `networks_of[k]`: its decoder's parameters and BatchNorm statistics,
  whether it squashes its output, and its target statistics.

  Raises:
    ValueError: a network's decoder differs in shape from the readout's (the run's decoder
      settings are not the bank's).
  """
  channels = module.spec.channels
  heads = []
  for net in networks_of:
    squash = module.spec.decoder == "pixel" and networks.applies_tanh(net.module)
    stats = net.target_stats or {"mean": np.zeros(channels), "std": np.ones(channels)}
    heads.append({
        "params": {"decoder": net.variables["params"]["decoder"], "squash": np.float32(squash),
                   **{k: np.broadcast_to(np.asarray(stats[k], np.float32), (channels,))
                      for k in ("mean", "std")}},
        "batch_stats": {"decoder": net.variables.get("batch_stats", {}).get("decoder", {})}})
  stacked = jax.tree.map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]), *heads)
  out = {"params": dict(variables["params"]), "batch_stats": dict(variables["batch_stats"])}
  for collection, got in stacked.items():
    if not got["decoder"] and collection == "batch_stats":
      continue  # a decoder without BatchNorm (the FC head)
    want = flax.traverse_util.flatten_dict(jax.tree.map(jnp.shape, out[collection][FROZEN]))
    have = flax.traverse_util.flatten_dict(jax.tree.map(jnp.shape, got))
    if want != have:
      diff = sorted(set(want.items()) ^ set(have.items()))[:4]
      raise ValueError(f"the target networks' decoders do not fit the readout's (first "
                       f"differences, (path, stacked shape): {diff}); give the run the bank's "
                       "model settings")
    out[collection][FROZEN] = got
  return out


def freeze(tx: optax.GradientTransformation, module: Readout) -> optax.GradientTransformation:
  """`tx` on the trainable parameters of `module` (stacked or not); its `FROZEN` parameters get
  no update at all (not even weight decay) when it reads through a frozen target decoder."""
  if not getattr(module, "frozen_target_decoder", False):
    return tx
  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: "frozen" if k == FROZEN else "train", v)
            for k, v in params.items()}
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def decoder_groups(targets: Sequence[str]) -> tuple[tuple[int, ...], ...]:
  """The indices of the stacked readouts into each target (they share its frozen decoder), in
  order of first appearance: ('a', 'b', 'a') -> ((0, 2), (1,))."""
  groups: dict[str, list[int]] = {}
  for k, t in enumerate(targets):
    groups.setdefault(t, []).append(k)
  return tuple(tuple(g) for g in groups.values())


def is_transfer_target(spec: tasks.TaskSpec) -> bool:
  """Tasks a readout can predict: pixel and vector outputs, of one view or of several (poses,
  egomotion, point matching; not jigsaw's tiles, a source-only task)."""
  return spec.decoder in ("pixel", "vector") or (spec.decoder == "siamese"
                                                 and spec.num_tiles == 1)


def is_regression(spec: tasks.TaskSpec) -> bool:
  """Targets a residual over their mean makes sense for: L1/L2 losses on real values."""
  return spec.loss in ("l1", "l2")


def masked_mean(targets: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
  """The mean target over examples, per element, counting only valid entries.

  Args:
    targets: (N, ...) targets. masks: (N, ...), (N, H, W, 1) or (N, H, W) 1/0 validity, or
      None (all valid).
  Returns:
    (...) float32; 0 where no example is valid.
  """
  t = np.asarray(targets, np.float64)
  if masks is None:
    return t.mean(0).astype(np.float32)
  m = np.broadcast_to(channel_axis(np.asarray(masks, np.float64), t.ndim), t.shape)
  count = m.sum(0)
  return np.where(count > 0, (t * m).sum(0) / np.maximum(count, 1), 0.0).astype(np.float32)


def channel_axis(mask: np.ndarray, ndim: int) -> np.ndarray:
  """A (N, H, W) pixel mask as (N, H, W, 1) for (N, H, W, C) targets (`ndim` = 4)."""
  return mask[..., None] if mask.ndim == ndim - 1 else mask


class ResidualTarget(Sequence):
  """Read-only view of targets (N, ...) as (target - mean) / scale: what a residual readout
  learns (`scale` a scalar, default 1).

  For the L1/L2 losses, loss(prediction, (target - mean) / scale) * scale**p ==
  loss(prediction * scale + mean, target) element by element (p = 1 for L1, 2 for L2;
  `loss_factor`), so held-out losses are those of the readout's full prediction.
  """

  def __init__(self, targets: np.ndarray, mean: np.ndarray, scale: float = 1.0):
    self.targets, self.mean = targets, np.asarray(mean, np.float32)
    self.scale = np.float32(scale)

  def __len__(self) -> int:
    return len(self.targets)

  def __getitem__(self, i):
    return ((np.asarray(self.targets[i], np.float32) - self.mean) / self.scale).astype(np.float32)


def residual_scale(targets: np.ndarray, mean: np.ndarray, masks: np.ndarray | None = None
                   ) -> float:
  """The standard deviation of targets (N, ...) about their mean image over the valid entries
  (`masks` as `masked_mean` takes them): a residual readout's scale. Without it, log depth's
  residual (spread ~0.04) is learned at a step size made for spreads ~0.4 and the readouts
  ended worse than predicting the mean (BUILD_NOTES.md, "The taxonomy pipeline and its gates").
  """
  r = np.asarray(targets, np.float64) - np.asarray(mean, np.float64)
  if masks is not None:
    m = np.broadcast_to(channel_axis(np.asarray(masks) > 0, r.ndim), r.shape)
    r = r[m]
  std = float(np.std(r)) if np.size(r) else 0.0
  return std if std > 1e-6 else 1.0


def loss_factor(spec: tasks.TaskSpec, scale: float) -> float:
  """What a loss on targets divided by `scale` is multiplied by to be in the targets' units."""
  if spec.loss not in ("l1", "l2"):
    raise ValueError(f"{spec.name}'s loss {spec.loss!r} is not L1 or L2")
  return float(scale) ** (2 if spec.loss == "l2" else 1)


def init_stacked(module: nn.Module, sample: jax.Array, seeds: Sequence[int]) -> dict[str, Any]:
  """Variables of `len(seeds)` copies of `module` (readout or task network), stacked.

  Copy k is initialised exactly as `init_stacked(module, sample, [seeds[k]])` would (the
  same key, the same initialisers), which is what makes the batched run equal the one-by-one
  run. `lax.map`, not `vmap`: one copy's init compiled once and looped, bitwise the same values,
  but 2.3x faster to compile at K=4 on CPU (a vmapped init traces the forward pass batched;
  BUILD_NOTES.md "Stacked readouts: transfers/hour").

  Args:
    sample: one batch of one copy's inputs, e.g. (B, h, w, C_in) (values unused).
  Returns:
    {'params': ..., 'batch_stats': ...}, every leaf (K, ...).
  """
  module = conv_lib.for_stacking(module)
  def one(seed):
    v = module.init({"params": jax.random.key(seed)}, sample, train=False)
    return {"params": v["params"], "batch_stats": v.get("batch_stats", {})}
  return jax.jit(lambda s: jax.lax.map(one, s))(jnp.asarray(np.asarray(seeds, np.uint32)))


def stacked_apply(module: nn.Module, shared_inputs: bool = False,
                  groups: Sequence[Sequence[int]] | None = None
                  ) -> Callable[..., tuple[jax.Array, Any]]:
  """The loop's `apply_fn` for K stacked copies of `module` (a `Readout` or a `TaskNetwork`).

  inputs (B, K, ...) -- or (B, ...) given to every copy when `shared_inputs` -- -> predictions
  (K, B, ...). Every copy gets the same dropout key, as it would if trained alone with the same
  seed. A module with `conv_impl='auto'` runs the backend's stacked conv (`conv.for_stacking`).
  Readouts through frozen target decoders run `_through_target_heads` (`groups`: as
  `decoder_groups` gives them; default: one per copy).
  """
  if getattr(module, "frozen_target_decoder", False):
    return _through_target_heads(module, shared_inputs, groups)
  module = conv_lib.for_stacking(module)
  def apply_one(variables, x, train, rngs):
    if train:
      pred, upd = module.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
      return pred, upd.get("batch_stats", {})
    return module.apply(variables, x, train=False), variables.get("batch_stats", {})

  def apply(variables, inputs, train: bool, rngs=None):
    in_axes = (0, None if shared_inputs else 1, None, None)
    return jax.vmap(apply_one, in_axes=in_axes)(variables, inputs, train, rngs)
  return apply


def _through_target_heads(module: Readout, shared_inputs: bool,
                          groups: Sequence[Sequence[int]] | None
                          ) -> Callable[..., tuple[jax.Array, Any]]:
  """`stacked_apply` for readouts through frozen target decoders: the K transfer functions
  vmapped, then each group of copies (readouts into one target, which share its decoder) through
  that decoder once, unstacked, their examples folded into its batch. Unstacked, the decoder
  steps 3x faster on CPU than vmapped over the K copies (im2col at 64x64); one call per group
  rather than per copy compiles 6x faster at the same step time (BUILD_NOTES.md, "Transfers").
  The frozen variables get no gradient (`stop_gradient`; `freeze` keeps the optimizer off them
  too). Nothing here holds BatchNorm statistics that train: they are returned unchanged."""
  transfer = conv_lib.for_stacking(module.transfer_function())
  head = module.target_head()

  def apply(variables, inputs, train: bool, rngs=None):
    del train, rngs  # no BatchNorm or dropout that trains
    params = variables["params"]
    k = jax.tree.leaves(params)[0].shape[0]
    z = jax.vmap(lambda p, x: transfer.apply({"params": p}, x),
                 in_axes=(0, None if shared_inputs else 1))(params["transfer"], inputs)
    frozen = jax.lax.stop_gradient({"params": params[FROZEN],
                                    "batch_stats": variables["batch_stats"].get(FROZEN, {})})
    groups_k = groups or [(i,) for i in range(k)]
    if sorted(i for g in groups_k for i in g) != list(range(k)):
      raise ValueError(f"decoder groups {groups_k} do not cover the {k} stacked readouts once")
    out = [None] * k
    for group in groups_k:
      zs = z[np.asarray(group)]  # (G, B, h, w, c)
      first = jax.tree.map(lambda a, i=group[0]: a[i], frozen)
      pred = head.apply(first, zs.reshape(-1, *zs.shape[2:]))
      for i, p in zip(group, pred.reshape(len(group), -1, *pred.shape[1:]), strict=True):
        out[i] = p
    return jnp.stack(out), variables["batch_stats"]
  return apply


def _member_batch(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  return {k: batch[k] for k in ("targets", "mask", "weights") if k in batch}


def stacked_loss(spec: tasks.TaskSpec) -> Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]:
  """Sum over the K copies of each one's loss: predictions (K, B, ...), batch targets and masks
  (B, K, ...) (copy k's own target) -> scalar.

  `spec` gives the loss (every copy of a stacked model shares its loss and output shape).
  Parameters of different copies are disjoint, so the gradient of the sum with respect to copy
  k's parameters is the gradient of copy k's own loss.
  """
  def loss(pred, batch):
    per = jax.vmap(lambda p, b: losses.task_loss(spec, p, b), in_axes=(0, 1))(
        pred, _member_batch(batch))
    return jnp.sum(per)
  return loss


def per_example_losses(spec: tasks.TaskSpec, pred: jax.Array,
                       batch: Mapping[str, jax.Array]) -> jax.Array:
  """The target's loss on each example separately: (B, ...) predictions -> (B,).

  The same loss function as training (masks and all), applied to batches of one: the held-out
  losses the tournament compares (paper Sec. 3.3).
  """
  def one(p, b):
    return losses.task_loss(spec, p[None], jax.tree.map(lambda a: a[None], b))
  return jax.vmap(one)(pred, _member_batch(batch))


def stacked_per_example_losses(spec: tasks.TaskSpec, pred: jax.Array,
                               batch: Mapping[str, jax.Array]) -> jax.Array:
  """(K, B, ...) predictions, (B, K, ...) targets -> (K, B) per-example losses."""
  return jax.vmap(lambda p, b: per_example_losses(spec, p, b), in_axes=(0, 1))(
      pred, _member_batch(batch))


def pad_channels(rep: np.ndarray, channels: int) -> np.ndarray:
  """(..., c) -> (..., channels) with zeros appended (c <= channels)."""
  c = rep.shape[-1]
  if c > channels:
    raise ValueError(f"representation has {c} channels, more than the {channels} allowed")
  if c == channels:
    return rep
  pad = np.zeros((*rep.shape[:-1], channels - c), rep.dtype)
  return np.concatenate([rep, pad], axis=-1)
