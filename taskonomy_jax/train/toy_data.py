"""Small in-memory datasets for any task: tests and smoke runs without the rendered world.

Each example's target is a fixed, learnable function of its input (a random but seeded
projection of the image's colours), so a network can fit it and a loss curve means something.
The real training data (TFDS `taskonomy_synthetic` / `taskonomy`) comes from taskonomy_jax/data.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import grain
import numpy as np

from taskonomy_jax import tasks


class ToySource(Sequence):
  """Random-access source of `num_examples` dict examples ('inputs', 'targets'[, 'mask'])."""

  def __init__(self, spec: tasks.TaskSpec, num_examples: int, resolution: int, seed: int = 0):
    if spec.decoder == "none":
      raise ValueError(f"task {spec.name!r} has no targets to train on")
    if resolution % 16:
      raise ValueError(f"resolution must be a multiple of 16, got {resolution}")
    self.spec, self.n, self.res, self.seed = spec, num_examples, resolution, seed
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))  # the task's fixed function
    views = max(spec.num_views, spec.num_tiles)
    self.proj = rng.normal(size=(3 * (views if not spec.pixel_output else 1),
                                 max(spec.channels, 1))).astype(np.float32)

  def __len__(self) -> int:
    return self.n

  def _image(self, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.uniform(-1, 1, (self.res // 8, self.res // 8, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < self.n:
      raise IndexError(index)
    spec = self.spec
    rng = np.random.default_rng([self.seed, index])
    views = max(spec.num_views, spec.num_tiles)
    imgs = np.stack([self._image(rng) for _ in range(views)])
    example = {"inputs": imgs[0] if views == 1 else imgs}
    if spec.pixel_output:
      s = spec.output_stride
      small = imgs[0].reshape(self.res // s, s, self.res // s, s, 3).mean(axis=(1, 3))
      z = small @ self.proj
      if spec.loss == "metric_embedding":
        target = np.argmax(z[..., :4], axis=-1).astype(np.int32)
      elif spec.dtype == "int32":
        target = np.argmax(z, axis=-1).astype(np.int32)
      else:
        target = np.tanh(z).astype(np.float32)
      if spec.valid_mask == "depth":
        example["mask"] = (small[..., :1] > -0.8).astype(np.float32)
      elif spec.valid_mask == "labels":
        example["mask"] = (small[..., 0] > -0.8).astype(np.float32)
    else:
      z = imgs.mean(axis=(1, 2)).reshape(-1) @ self.proj
      if spec.loss == "soft_xent":
        e = np.exp(3 * (z - z.max()))
        target = (e / e.sum()).astype(np.float32)
      elif spec.dtype == "int32":
        target = np.int32(np.argmax(z))
      else:
        target = np.tanh(z).astype(np.float32)
    example["targets"] = target
    return example


def dataset(spec: tasks.TaskSpec, num_examples: int, resolution: int,
            seed: int = 0) -> grain.MapDataset:
  return grain.MapDataset.source(ToySource(spec, num_examples, resolution, seed))
