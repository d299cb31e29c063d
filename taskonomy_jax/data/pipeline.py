"""grain input pipelines over `tfds.data_source(...)`: sharded, shuffled, decoded, batched, resumable.

The JAX-native idiom (flax examples/gemma/input_pipeline_grain.py), which this module wraps:

    import data_builders.catalog                             # defines the builders for tfds
    split = tfds.split_for_jax_process("train")              # this process's shard
    source = tfds.data_source("taskonomy_synthetic", split=split)
    ds = grain.MapDataset.source(source).shuffle(seed=0).repeat()
    ds = ds.map(SingleViewDecoder(["normal", "depth_zbuffer"])).batch(per_process_batch)
    it = iter(ds.to_iter_dataset())          # it.get_state() / it.set_state(state) to resume

Single-view examples decode each task's target and valid mask from the stored domains
(`targets.py`). Multi-view examples (fixated / non-fixated pose, egomotion, point matching) are
built by `MultiViewSource` from an index of the split's views, deterministically for a seed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding, PartitionSpec

from taskonomy_jax import tasks
from taskonomy_jax.data import encodings as enc
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import targets as targets_lib


def per_process_batch_size(global_batch_size: int, process_count: int) -> int:
  """The batch each JAX process loads so that the processes together make the global batch."""
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f"global batch size {global_batch_size} must be a positive multiple of the "
                     f"process count {process_count}")
  return global_batch_size // process_count


def global_batch(local: Any, mesh: Any, axis: str = "data") -> Any:
  """This process's batch (a pytree of numpy arrays, batch axis first) -> global `jax.Array`s
  sharded over `axis` of `mesh`, the layout a data-parallel `jax.jit` step takes.

  Each process passes its own `per_process_batch_size` slice; the global batch axis is the
  concatenation over processes (`jax.make_array_from_process_local_data`).
  """
  def put(x: np.ndarray) -> jax.Array:
    spec = PartitionSpec(axis, *([None] * (np.ndim(x) - 1)))
    return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), np.asarray(x))
  return jax.tree_util.tree_map(put, local)


def process_split(split: str, process_index: int | None = None,
                  process_count: int | None = None) -> Any:
  """This JAX process's share of `split` (`tfds.split_for_jax_process`); explicit index/count
  simulate other processes."""
  if process_index is None and process_count is None:
    return tfds.split_for_jax_process(split)
  if process_count is None or process_index is None or not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, "
                     f"{process_count}")
  return tfds.even_splits(split, n=process_count, drop_remainder=False)[process_index]


def input_image(stored_rgb: np.ndarray) -> np.ndarray:
  """([B,] H, W, 3) uint8 -> float32 in [-1, 1], the encoder input."""
  return np.asarray(stored_rgb, np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


@dataclasses.dataclass(frozen=True)
class SingleViewDecoder:
  """record -> {"rgb": (H, W, 3) float32, "targets": {task}, "masks": {task}, "point", "view"}.

  A picklable callable for `MapDataset.map`. It also decodes a *batch* of records (every array
  with a leading batch axis), which is how `single_view_dataset` uses it: batching the stored
  integer arrays first, then decoding with vectorised numpy, is faster than decoding one example
  at a time and stacking floats.
  """

  task_names: tuple[str, ...]

  def __init__(self, task_names: Sequence[str]):
    names = tuple(tasks.get(t).name for t in task_names)
    for t in names:
      if t in targets_lib.MULTI_VIEW:
        raise ValueError(f"{t} is a multi-view task: use MultiViewSource")
    object.__setattr__(self, "task_names", names)

  def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
    stored = features_lib.stored_from_record(record)
    out_t, out_m = {}, {}
    for t in self.task_names:
      out_t[t], out_m[t] = targets_lib.single_view_target(t, stored)
    return {"rgb": input_image(stored["rgb"]), "targets": out_t, "masks": out_m,
            "point": np.asarray(record["point"], np.int32),
            "view": np.asarray(record["view"], np.int32)}


class EpochShuffle(grain.MapDataset):
  """A global shuffle, different for each epoch, from one numpy permutation per epoch.

  Deterministic in (seed, index) alone, so grain's index-based iterator state resumes it exactly.
  Replaces `MapDataset.shuffle`, whose per-index Feistel shuffle measured ~0.7 ms per element
  (more than reading and decoding the element); one permutation of N views costs 4N bytes.
  Indices past `len(parent)` (from a later `.repeat()`) select the next epochs.
  """

  def __init__(self, parent: grain.MapDataset, seed: int):
    super().__init__(parent)
    self._seed = int(seed)
    self._perms: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self._parent)

  def __str__(self) -> str:
    return f"EpochShuffle(seed={self._seed})"

  def permutation(self, epoch: int) -> np.ndarray:
    perm = self._perms.get(epoch)
    if perm is None:
      perm = np.random.default_rng([self._seed, epoch]).permutation(len(self._parent))
      perm = perm.astype(np.int64)
      self._perms = {epoch: perm}  # keep only the current epoch's
    return perm

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, i = divmod(int(index), len(self._parent))
    return self._parent[int(self.permutation(epoch)[i]) + epoch * len(self._parent)]


def single_view_dataset(source: Any, task_names: Sequence[str], *, batch_size: int, seed: int,
                        shuffle: bool = True, num_epochs: int | None = None,
                        drop_remainder: bool = True) -> grain.MapDataset:
  """Shuffled (per epoch, by `seed`), decoded and batched single-view examples."""
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = EpochShuffle(ds, seed)
  ds = ds.repeat(num_epochs).batch(batch_size, drop_remainder=drop_remainder)
  return ds.map(SingleViewDecoder(task_names))


def iterator(ds: grain.MapDataset, num_threads: int = 2) -> grain.DatasetIterator:
  """An iterator whose `get_state()` / `set_state()` save and restore its position."""
  opts = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(1, num_threads))
  return iter(ds.to_iter_dataset(opts))


def state_to_bytes(state: Mapping[str, Any]) -> bytes:
  """Iterator state -> JSON bytes (what the training loop stores next to its checkpoint)."""
  return json.dumps(state, sort_keys=True).encode("utf-8")


def state_from_bytes(data: bytes) -> dict[str, Any]:
  return json.loads(data.decode("utf-8"))


# --- multi-view samples --------------------------------------------------------------------------

@dataclasses.dataclass
class ViewIndex:
  """Where each view of a split sits: per record, its building, point, view and point location.

  Attributes: arrays of length N (records in source order): `building` (str), `point`, `view`
  (int), `point_location` (N, 3) float32 metres.
  """

  building: np.ndarray
  point: np.ndarray
  view: np.ndarray
  point_location: np.ndarray

  @classmethod
  def from_source(cls, source: Any) -> ViewIndex:
    rows = [source[i] for i in range(len(source))]
    return cls.from_records(rows)

  @classmethod
  def from_records(cls, rows: Sequence[Mapping[str, Any]]) -> ViewIndex:
    keys = [features_lib.record_key(r) for r in rows]
    return cls(
        building=np.array([k.building for k in keys]),
        point=np.array([k.point for k in keys], np.int64),
        view=np.array([k.view for k in keys], np.int64),
        point_location=np.array([np.asarray(r["point_location"], np.float32) for r in rows],
                                np.float32).reshape(-1, 3))

  def __len__(self) -> int:
    return len(self.point)


MULTI_VIEW_KINDS = {"fixated_pose": 2, "nonfixated_pose": 2, "egomotion": 3,
                    "point_matching": 2}


class MultiViewSource:
  """Random-access source of multi-view samples for one task, deterministic for a seed.

  - fixated_pose: the anchor and another view of the same point.
  - nonfixated_pose: the anchor and a view of a different point of the same building whose
    point lies within `max_distance` metres of the anchor's ("nearby points").
  - egomotion: the anchor and two other views of the same point (as the original's triplets).
  - point_matching: with probability 1/2 a positive pair (same point) else a negative one (a
    nearby different point); label 1 / 0.

  Anchors without a partner of the needed kind are left out. `process_index/process_count`
  take every `process_count`-th anchor, so JAX processes see disjoint anchors; partners come from
  the whole split (the source must cover it). `draws_per_anchor` > 1 makes the source that many
  times longer, item `i` drawing partners afresh for anchor `i % len(anchors)` (draw 0 is the
  partner a source of one draw gives): training sees many pairs per view instead of one fixed
  pair, which a split of ~1,300 views otherwise lets a pose network memorise.
  Each item: {"rgb": (V, H, W, 3) float32, "target", "mask", "records": (V,) record indices}.
  """

  def __init__(self, source: Any, task: str, *, seed: int, index: ViewIndex | None = None,
               max_distance: float = 3.0, process_index: int = 0, process_count: int = 1,
               draws_per_anchor: int = 1):
    self.task = tasks.get(task).name
    if self.task not in MULTI_VIEW_KINDS:
      raise ValueError(f"{task} is not a multi-view task; those are {sorted(MULTI_VIEW_KINDS)}")
    if int(draws_per_anchor) < 1:
      raise ValueError(f"draws_per_anchor must be a positive integer, got {draws_per_anchor}")
    self.draws_per_anchor = int(draws_per_anchor)
    self.source, self.seed, self.max_distance = source, seed, max_distance
    self.index = index if index is not None else ViewIndex.from_source(source)
    self._same_point, self._nearby = self._candidates()
    need_same = {"fixated_pose": 1, "egomotion": 2, "point_matching": 0,
                 "nonfixated_pose": 0}[self.task]
    anchors = [i for i in range(len(self.index))
               if len(self._same_point[i]) >= need_same
               and (self.task != "nonfixated_pose" or self._nearby[i].size > 0)
               and (self.task != "point_matching"
                    or self._same_point[i].size + self._nearby[i].size > 0)]
    if not anchors:
      raise ValueError(f"no view of this split has a partner for {self.task}")
    self.anchors = np.array(anchors[process_index::process_count], np.int64)

  def _candidates(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
    idx = self.index
    same, near = [], []
    for i in range(len(idx)):
      in_building = idx.building == idx.building[i]
      same_point = in_building & (idx.point == idx.point[i])
      same_point[i] = False
      dist = np.linalg.norm(idx.point_location - idx.point_location[i], axis=-1)
      nearby = in_building & (idx.point != idx.point[i]) & (dist <= self.max_distance)
      same.append(np.flatnonzero(same_point))
      near.append(np.flatnonzero(nearby))
    return same, near

  def __len__(self) -> int:
    return len(self.anchors) * self.draws_per_anchor

  def members(self, i: int) -> tuple[list[int], int | None]:
    """Record indices of sample `i` (and the point-matching label), without reading images."""
    if not 0 <= i < len(self):
      raise IndexError(f"sample {i} out of range [0, {len(self)})")
    draw, slot = divmod(i, len(self.anchors))
    anchor = int(self.anchors[slot])
    rng = np.random.default_rng([self.seed, anchor] + ([draw] if draw else []))
    same, near = self._same_point[anchor], self._nearby[anchor]
    if self.task == "fixated_pose":
      return [anchor, int(rng.choice(same))], None
    if self.task == "nonfixated_pose":
      return [anchor, int(rng.choice(near))], None
    if self.task == "egomotion":
      return [anchor, *(int(j) for j in rng.choice(same, size=2, replace=False))], None
    positive = bool(same.size) and (not near.size or rng.random() < 0.5)
    return [anchor, int(rng.choice(same if positive else near))], int(positive)

  def __getitem__(self, i: int) -> dict[str, Any]:
    members, _ = self.members(i)
    records = [self.source[j] for j in members]
    target, mask = self._target(records)
    return {"rgb": np.stack([input_image(r["rgb"]) for r in records]), "target": target,
            "mask": mask, "records": np.array(members, np.int32)}

  def target(self, i: int, records: Sequence[Mapping[str, Any]] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample `i`'s (target, mask, (V,) record indices), without decoding its images.
    `records`: the split's records, already read, to take the samples' views from."""
    members, _ = self.members(i)
    rows = [self.source[j] if records is None else records[j] for j in members]
    return (*self._target(rows), np.array(members, np.int32))

  def _target(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    infos = [enc.decode_point_info(r["point_info"]) for r in records]
    for info, r in zip(infos, records, strict=True):
      key = features_lib.record_key(r)
      info.setdefault("building", key.building)
      info.setdefault("point", key.point)
    return targets_lib.multi_view_target(self.task, infos)


def multi_view_dataset(source: MultiViewSource, *, batch_size: int, seed: int,
                       shuffle: bool = True, num_epochs: int | None = None) -> grain.MapDataset:
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = EpochShuffle(ds, seed)
  return ds.repeat(num_epochs).batch(batch_size, drop_remainder=True)
