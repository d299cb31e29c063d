"""The views of a taxonomy run: the synthetic dataset, built once, decoded into arrays once.

Every later stage (task bank, representations, transfers) reads the same decoded arrays: the
encoder input (N, H, W, 3) in [-1, 1] and, per target task, the training target and its
valid mask, from `taskonomy_jax.data` (one definition of every target). Arrays are `.npy` files,
memory-mapped on read.

A multi-view target (poses, egomotion, point matching) has its own samples: one per view that
has partners of the kind the task needs (`data.pipeline.MultiViewSource`, one fixed draw),
stored as the (N_t, V) indices of its views among the split's views (`{task}.records.npy`),
its targets and masks, and the camera point of its first view (`{task}.point.npy`).
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


# The record fields a multi-view sample's target is computed from (no images).
_SAMPLE_FIELDS = ("point_info", "building", "point", "view", "point_location")
# The partner draw of the multi-view samples (fixed: every run of a split has the same samples).
SAMPLE_SEED = 0


def decode_split(cfg: Mapping, data_dir: pathlib.Path, split: str, task_names: Sequence[str],
                 out: pathlib.Path, batch: int = 64) -> int:
  """Writes `rgb.npy`, `point.npy` and `{task}.target.npy` / `{task}.mask.npy` for one split
  (and `{task}.records.npy` / `{task}.point.npy` for multi-view tasks); returns N views."""
  source = catalog.builder("taskonomy_synthetic", cfg["name"],
                           str(data_dir)).as_data_source(split=split)
  names = [tasks.get(t).name for t in task_names]
  multi_view = [t for t in names if t in pipeline.MULTI_VIEW_KINDS]
  decode = pipeline.SingleViewDecoder([t for t in names if t not in multi_view])
  parts: dict[str, list[np.ndarray]] = {}
  light: list[dict[str, np.ndarray]] = []  # every record's fields but its images
  for start in range(0, len(source), batch):
    records = [source[i] for i in range(start, min(start + batch, len(source)))]
    light += [{k: r[k] for k in _SAMPLE_FIELDS} for r in records]
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
  index = pipeline.ViewIndex.from_records(light) if multi_view else None
  for task in multi_view:
    samples = pipeline.MultiViewSource(source, task, seed=SAMPLE_SEED, index=index)
    target, mask, records = zip(*(samples.target(i, light) for i in range(len(samples))),
                                strict=True)
    records = np.stack(records)
    np.save(out / f"{task}.target.npy", np.stack(target))
    np.save(out / f"{task}.mask.npy", np.stack(mask).astype(np.float32))
    np.save(out / f"{task}.records.npy", records)
    np.save(out / f"{task}.point.npy", point_ids[records[:, 0]].astype(np.int32))
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

  def records(self, task: str) -> np.ndarray | None:
    """A multi-view task's (N_t, V) view indices of each sample; None for a single-view task,
    whose samples are the views themselves."""
    name = tasks.get(task).name
    return self._map(f"{name}.records.npy") if name in pipeline.MULTI_VIEW_KINDS else None

  def task_points(self, task: str) -> np.ndarray:
    """(N_t,) int: the camera point of each of `task`'s samples (a multi-view sample's is its
    first view's), in the ids of `points`."""
    name = tasks.get(task).name
    if name in pipeline.MULTI_VIEW_KINDS:
      return np.load(self.folder / f"{name}.point.npy")
    return self.points

  def images(self, task: str) -> np.ndarray:
    """`task`'s network inputs: (N, H, W, 3), or (N_t, V, H, W, 3) for a multi-view task."""
    records = self.records(task)
    return self.rgb if records is None else np.asarray(self.rgb)[np.asarray(records)]
