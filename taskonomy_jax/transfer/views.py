"""The views of a taxonomy run: the synthetic dataset, built once, decoded into arrays once.

Every later stage (task bank, representations, transfers) reads the same decoded arrays: the
encoder input (N, H, W, 3) in [-1, 1] and, per target task, the training target and its
valid mask, from `taskonomy_jax.data` (one definition of every target). Arrays are `.npy` files,
memory-mapped on read.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from data_builders import catalog
from data_builders.taskonomy_synthetic import taskonomy_synthetic_dataset_builder as synth
from taskonomy_jax import tasks
from taskonomy_jax.data import pipeline

SPLITS = ("train", "validation", "test")


def build_dataset(cfg: Mapping, data_dir: pathlib.Path) -> None:
  """Renders and writes the synthetic TFDS dataset described by `cfg` (resumable by TFDS)."""
  config = synth.SyntheticConfig(
      name=cfg["name"], resolution=cfg["resolution"], num_train=cfg["num_train"],
      num_validation=cfg["num_validation"], num_test=cfg["num_test"],
      points_per_building=cfg["points_per_building"], first_seed=cfg.get("first_seed", 0),
      albedo_drift=cfg.get("albedo_drift"))
  builder = synth.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig())


def decode_split(cfg: Mapping, data_dir: pathlib.Path, split: str, task_names: Sequence[str],
                 out: pathlib.Path, batch: int = 64) -> int:
  """Writes `rgb.npy` and `{task}.target.npy` / `{task}.mask.npy` for one split; returns N."""
  source = catalog.builder("taskonomy_synthetic", cfg["name"],
                           str(data_dir)).as_data_source(split=split)
  decode = pipeline.SingleViewDecoder(task_names)
  parts: dict[str, list[np.ndarray]] = {}
  for start in range(0, len(source), batch):
    records = [source[i] for i in range(start, min(start + batch, len(source)))]
    stacked = {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}
    ex = decode(stacked)
    parts.setdefault("rgb", []).append(ex["rgb"])
    # The camera point each view looks at: views of one point are correlated, so the
    # bootstrap intervals of the run's gates resample points, not views.
    buildings = [b.decode() if isinstance(b, bytes) else str(b) for b in stacked["building"]]
    parts.setdefault("point_key", []).append(
        np.asarray([f"{b}/{int(p)}" for b, p in zip(buildings, stacked["point"], strict=True)]))
    for t in decode.task_names:
      parts.setdefault(f"{t}.target", []).append(np.asarray(ex["targets"][t]))
      parts.setdefault(f"{t}.mask", []).append(np.asarray(ex["masks"][t], np.float32))
  out.mkdir(parents=True, exist_ok=True)
  keys = np.concatenate(parts.pop("point_key"))
  _, point_ids = np.unique(keys, return_inverse=True)
  np.save(out / "point.npy", point_ids.astype(np.int32))
  for name, chunks in parts.items():
    np.save(out / f"{name}.npy", np.concatenate(chunks))
  return len(source)


class Views:
  """Read access to a decoded split: `rgb`, `target(task)`, `mask(task)`, `len()`."""

  def __init__(self, folder: pathlib.Path):
    self.folder = pathlib.Path(folder)
    if not (self.folder / "rgb.npy").is_file():
      raise FileNotFoundError(f"{self.folder} holds no decoded views (rgb.npy missing)")
    self.rgb = np.load(self.folder / "rgb.npy", mmap_mode="r")
    # One memory map per file, however many readouts read it: the peak RSS counts a file's
    # pages once per map (49 stacked readouts mapping each target 7 times: +0.7 GB at 30
    # transfer buildings).
    self._maps: dict[str, np.ndarray] = {}

  def __len__(self) -> int:
    return int(self.rgb.shape[0])

  def target(self, task: str) -> np.ndarray:
    return self._map(f"{tasks.get(task).name}.target.npy")

  def mask(self, task: str) -> np.ndarray:
    return self._map(f"{tasks.get(task).name}.mask.npy")

  def _map(self, name: str) -> np.ndarray:
    if name not in self._maps:
      self._maps[name] = np.load(self.folder / name, mmap_mode="r")
    return self._maps[name]

  @property
  def points(self) -> np.ndarray:
    """(N,) int: which camera point (building and point) each view belongs to."""
    return np.load(self.folder / "point.npy")
