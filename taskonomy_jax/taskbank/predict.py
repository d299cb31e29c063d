"""Running the task bank on one image: the small interface the demo page and videos use.

A `Predictor` is any callable `image -> {task name: output}`, where `image` is `(R, R, 3)` float32
in [-1, 1] and each output has the task's `spec.output_shape(R)` (no batch axis). The web demo and
`taskonomy visualize` only see this interface, so a checkpointed task bank, randomly initialised
networks (for trying the tools without weights) or a transfer all plug in the same way.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from PIL import Image

from taskonomy_jax import models, tasks

Predictor = Callable[[np.ndarray], dict[str, np.ndarray]]


class ImageError(ValueError):
  """An upload that is not a usable image; the message says why and what is accepted."""


class ImageTooLargeError(ImageError):
  """An image over the size limit (bytes or pixels)."""


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
  """Decodes an uploaded image in memory (nothing is written), checking size limits first.

  Raises:
    ImageTooLargeError: more than `max_bytes` bytes, or more than `max_pixels` pixels (checked
      from the header, before the pixels are decoded, so a decompression bomb is never expanded).
    ImageError: not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, ...).
  """
  if len(data) > max_bytes:
    raise ImageTooLargeError(
        f"the image is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
  if not data:
    raise ImageError("the upload is empty: choose a PNG or JPEG image")
  try:
    img = Image.open(io.BytesIO(data))
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    # Pillow refuses headers declaring over twice its MAX_IMAGE_PIXELS (the warning is raised
    # only where warnings are errors): too large, not "not an image". Its message gives the
    # header's pixel count.
    declared = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(declared.group(1)):,} pixels" if declared else "over Pillow's own limit"
    raise ImageTooLargeError(f"the image is {size} (from its header); the limit is "
                             f"{max_pixels:,} pixels") from None
  except Exception as e:  # Pillow raises several types for non-images
    raise ImageError(f"the file is not an image Pillow can read ({type(e).__name__}); "
                     "upload a PNG, JPEG, GIF, BMP or WebP image") from None
  w, h = img.size
  if w * h > max_pixels:
    raise ImageTooLargeError(f"the image is {w}x{h} = {w * h:,} pixels; the limit is "
                             f"{max_pixels:,} pixels")
  try:
    img.load()
  except Exception as e:
    raise ImageError(f"the image could not be decoded ({type(e).__name__}: {e}); upload an "
                     "intact PNG or JPEG") from None
  return img.convert("RGB")


def prepare_image(img: Image.Image | np.ndarray, resolution: int) -> np.ndarray:
  """Centre-crops to a square and resizes to `resolution`: (R, R, 3) float32 in [-1, 1].

  Accepts a PIL image or a uint8 (H, W, 3) array.
  """
  if isinstance(img, np.ndarray):
    img = Image.fromarray(np.asarray(img, np.uint8))
  img = img.convert("RGB")
  w, h = img.size
  side = min(w, h)
  left, top = (w - side) // 2, (h - side) // 2
  img = img.crop((left, top, left + side, top + side)).resize(
      (resolution, resolution), Image.BILINEAR)
  return np.asarray(img, np.float32) / 127.5 - 1.0


def views_for(spec: tasks.TaskSpec, image: np.ndarray) -> np.ndarray:
  """The network input for one image: (1, R, R, 3), or (1, V, ., ., 3) for multi-view tasks.

  On a single image, multi-view tasks (pose, egomotion, point matching) see the same image in
  every view (the answer is then "no motion" / "same point" for a perfect network), and jigsaw
  sees the image's 3x3 tiles in order.
  """
  if spec.num_tiles > 1:
    k = round(spec.num_tiles ** 0.5)
    t = image.shape[0] // k
    # The encoder takes sides that are multiples of 16: sample each tile down to one.
    side = max(16, t - t % 16)
    pick = (np.arange(side) * t / side).astype(int)
    tiles = [image[i * t:(i + 1) * t, j * t:(j + 1) * t][pick][:, pick]
             for i in range(k) for j in range(k)]
    return np.stack(tiles)[None]
  if spec.num_views > 1:
    return np.repeat(image[None, None], spec.num_views, axis=1)
  return image[None]


def views_for_batch(spec: tasks.TaskSpec, images: np.ndarray) -> np.ndarray:
  """`views_for` of each image of a batch `(B, R, R, 3)`, stacked: `(B, ...)`."""
  return np.concatenate([views_for(spec, image) for image in images])


def predict_batch(predictor: Predictor, images: np.ndarray) -> dict[str, np.ndarray]:
  """Every task's outputs for a batch of images `(B, R, R, 3)`: `{task: (B, ...)}`.

  One forward pass per network when the predictor has a `predict_batch` method (a batched
  predictor); otherwise the images run one at a time and the outputs are stacked.
  """
  batched = getattr(predictor, "predict_batch", None)
  if batched is not None:
    return batched(images)
  outs = [predictor(image) for image in images]
  return {name: np.stack([o[name] for o in outs]) for name in outs[0]}


def he_init(shapes: Any, rng: np.random.Generator) -> Any:
  """Random parameters for a pytree of shapes (from `jax.eval_shape(net.init, ...)`).

  Kernels ~ N(0, 2 / fan_in) (He et al.; fan_in = all kernel axes but the last), biases and
  batch-norm shifts and means 0, batch-norm scales and variances 1. Filling shapes with numpy is
  seconds for the whole task bank, where running 25 flax `init`s eagerly on a small CPU takes
  minutes; the networks are random either way.
  """
  def fill(path, leaf) -> np.ndarray:
    name = str(getattr(path[-1], "key", path[-1]))
    shape = leaf.shape
    if name == "kernel":
      fan_in = int(np.prod(shape[:-1])) or 1
      return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(leaf.dtype)
    if name in ("scale", "var"):
      return np.ones(shape, leaf.dtype)
    return np.zeros(shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def random_init_predictor(task_names: Sequence[str] | None = None,
                          config: Mapping[str, Any] | None = None,
                          resolution: int = 64, seed: int = 0, jit: bool = True) -> Predictor:
  """A task bank of randomly initialised networks (`taskonomy_jax.models.build`).

  For trying the tools without trained weights: outputs have the right shapes and ranges but
  no meaning. `config` is the model config (`width`, `blocks`, ...); the default is small so it
  runs on a laptop CPU. `jit=False` skips compilation (faster for a few images: compiling 25
  networks takes minutes on a small CPU).
  """

  # Paper-size decoders (up to 1024 channels) take over a minute each to initialise on a small
  # CPU; 1/16 of the width takes seconds.
  config = dict(config or {"width": 8, "blocks": (1, 1, 1, 1), "fc_hidden": 64,
                           "decoder_width_multiplier": 1 / 16})
  specs = [tasks.get(n) for n in task_names] if task_names else tasks.trainable()
  dummy = np.zeros((resolution, resolution, 3), np.float32)
  nets = {}
  rng = np.random.default_rng(seed)
  for spec in specs:
    net = models.build(spec, config)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), views_for(spec, dummy))
    nets[spec.name] = (spec, jax.jit(net.apply) if jit else net.apply, he_init(shapes, rng))

  def predict(image: np.ndarray) -> dict[str, np.ndarray]:
    if image.shape != (resolution, resolution, 3):
      raise ValueError(f"expected a ({resolution}, {resolution}, 3) image, got {image.shape}")
    return {name: np.asarray(apply(params, views_for(spec, image)))[0]
            for name, (spec, apply, params) in nets.items()}

  def batch(images: np.ndarray) -> dict[str, np.ndarray]:
    if images.ndim != 4 or images.shape[1:] != (resolution, resolution, 3):
      raise ValueError(f"expected (B, {resolution}, {resolution}, 3) images, got "
                       f"{images.shape}")
    return {name: np.asarray(apply(params, views_for_batch(spec, images)))
            for name, (spec, apply, params) in nets.items()}

  predict.resolution = resolution  # type: ignore[attr-defined]
  predict.predict_batch = batch  # type: ignore[attr-defined]
  return predict
