"""Training examples of every task from the TFDS Taskonomy datasets, for the one training loop.

`register()` adds `taskonomy_synthetic` (and `taskonomy`, the real dataset) to
`taskonomy_jax.train.task.DATASETS`: `(spec, data config, split, resolution) -> grain.MapDataset`
of per-example dicts `{"inputs", "targets"[, "mask"]}` as `losses.task_loss` reads them. Whoever
trains on them calls it (`taskonomy train`, the task-bank trainer); importing this module
registers nothing. The TFDS builders are opened through `data_builders.catalog`, which defines
them, so TFDS knows them whatever else the process imported.

- One-view tasks decode their target and valid mask with `taskonomy_jax.data.targets`.
- Tasks made from RGB (denoising, inpainting, colorization, jigsaw) build input and target with
  `selfsup.py`, seeded by (seed, example index), so an epoch is reproducible and a resumed run
  sees the same examples.
- Multi-view tasks (poses, egomotion, point matching) take their samples from the data
  pipeline's `MultiViewSource` (pairs and triplets of views of the same or nearby points).

Data config keys: `name`, `builder_config` (e.g. 'r64_tiny'), `data_dir` (None: TFDS default),
`build_if_missing` (render and prepare the synthetic dataset when absent), `seed`,
`train_split` (the dataset split training reads, default 'train'; the from-scratch baselines
of a taxonomy learn from 'validation', the transfer budget), `train_examples` (0: all; else
training reads only the first that many views),
`draws_per_anchor` (training: that many draws of each view or anchor per epoch; fresh partner
views for multi-view tasks, fresh noise / tile permutations for denoising and jigsaw
(`selfsup.RANDOM_SAMPLES`), fresh augmentations with `augment`), `augment` (training only, for
the tasks `AUGMENTABLE` lists: 'hflip' mirrors the image, 'channels' shuffles its RGB channels,
'color' jitters each channel's gain, brightness and contrast; a network that can no longer key
on a building's random material colours has to look at the furniture and the geometry),
`standardize_targets` ('none', 'vectors' or 'regressions'; `has_standardized_targets`),
`target_stats` ({"mean", "std"} per target dimension or pixel channel, from
`target_statistics`: every split's targets standardised with them; the task-bank trainer sets
it for the tasks `standardize_targets` names).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from data_builders import catalog
from taskonomy_jax import tasks
from taskonomy_jax.data import features as features_lib
from taskonomy_jax.data import pipeline
from taskonomy_jax.data import targets as targets_lib
from taskonomy_jax.taskbank import selfsup
from taskonomy_jax.train import task as train_task

# The loop's split names -> the dataset's.
SPLITS = {"train": "train", "eval": "validation", "validation": "validation", "test": "test"}
# Augmentation -> the tasks whose target it leaves unchanged: a mirror image keeps the
# whole-image classes (not a pose); other colours keep classes and geometry (the room's layout,
# its vanishing points, the motion between views).
AUGMENTABLE = {
    "hflip": frozenset({"class_object", "class_scene"}),
    "color": frozenset({"class_object", "class_scene", "fixated_pose", "nonfixated_pose",
                        "egomotion", "point_matching", "room_layout", "vanishing_point"}),
    "channels": frozenset({"class_object", "class_scene"}),
}
AUGMENTATIONS = tuple(AUGMENTABLE)


def builder(name: str, builder_config: str, data_dir: str | None):
  """The TFDS builder object of dataset `name` (`data_builders.catalog`)."""
  return catalog.builder(name, builder_config, data_dir)


def ensure_built(name: str, builder_config: str, data_dir: str | None, build: bool) -> None:
  """Prepares the synthetic dataset if it is missing (nothing is downloaded: it is rendered)."""
  b = builder(name, builder_config, data_dir)
  if b.is_prepared():
    return
  if not build or name != "taskonomy_synthetic":
    raise FileNotFoundError(
        f"dataset {name}/{builder_config} is not prepared in {b.data_dir_root}; build it with "
        f"`taskonomy data build {name} --config {builder_config}`")
  b.download_and_prepare()


@functools.cache
def _source(name: str, builder_config: str, data_dir: str | None, split: str):
  return builder(name, builder_config, data_dir).as_data_source(split=split)


@functools.cache
def _view_index(name: str, builder_config: str, data_dir: str | None, split: str):
  return pipeline.ViewIndex.from_source(_source(name, builder_config, data_dir, split))


def source(cfg: Mapping[str, Any], split: str):
  """The split's random-access TFDS source, built first if missing and allowed. The loop's
  'train' split reads the dataset split `cfg.train_split` names (default 'train')."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; accepted: {sorted(SPLITS)}")
  if split == "train":
    split = cfg.get("train_split") or "train"
    if split not in SPLITS:
      raise ValueError(f"unknown data.train_split {split!r}; accepted: {sorted(SPLITS)}")
  data_dir = cfg.get("data_dir")
  ensure_built(cfg["name"], cfg["builder_config"], data_dir, cfg.get("build_if_missing", True))
  return _source(cfg["name"], cfg["builder_config"], data_dir, SPLITS[split])


class FirstExamples(Sequence):
  """The first `n` records of a source: a network trained on a budget of labelled views (the
  from-scratch baselines on the transfer budget)."""

  def __init__(self, source: Any, n: int):
    self.source, self.n = source, min(int(n), len(source))

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.source[i]


def check_resolution(src: Any, resolution: int) -> None:
  stored = np.asarray(src[0]["rgb"]).shape[0]
  if stored != resolution:
    raise ValueError(f"the dataset's images are {stored}x{stored} but the config asks for "
                     f"resolution {resolution}; pick a builder config of that resolution "
                     "(synthetic: r32_mini, r64_tiny, r64, r64_large, r256)")


class SingleViewExample:
  """Picklable `map_with_index` function: record -> {"inputs", "targets"[, "mask"]}."""

  def __init__(self, spec: tasks.TaskSpec, seed: int):
    self.spec, self.seed = spec, seed

  def __call__(self, index: int, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    spec = self.spec
    stored = features_lib.stored_from_record(record)
    rgb = pipeline.input_image(stored["rgb"])
    make = selfsup.SELF_SUPERVISED.get(spec.name)
    if make is not None:
      inputs, target = make(rgb, np.random.default_rng([self.seed, index]))
      return {"inputs": inputs, "targets": target}
    target, mask = targets_lib.single_view_target(spec.name, stored)
    out = {"inputs": rgb, "targets": target}
    if spec.pixel_output and spec.valid_mask != "none":
      out["mask"] = np.asarray(mask, np.float32)
    return out


def augment_image(image: np.ndarray, augment: tuple[str, ...],
                  rng: np.random.Generator) -> np.ndarray:
  """One training image (H, W, 3) in [-1, 1], mirrored and/or colour-jittered; same range."""
  out = image
  if "hflip" in augment and rng.random() < 0.5:
    out = out[:, ::-1]
  if "channels" in augment:  # the RGB channels in a random order: hue tells nothing
    out = out[..., rng.permutation(3)]
  if "color" in augment:
    unit = (out + 1.0) / 2.0
    gain = rng.uniform(0.6, 1.4, 3) * rng.uniform(0.7, 1.3)  # per channel, then brightness
    mean = unit.mean()
    unit = (unit - mean) * rng.uniform(0.7, 1.3) + mean  # contrast about the image's mean
    out = np.clip(unit * gain, 0.0, 1.0) * 2.0 - 1.0
  return np.ascontiguousarray(out, np.float32)


class FreshDraw:
  """Picklable `map` function over draw indices: draw `i` is view `i % n`, its example made with
  index `i` (a self-supervised sample's own randomness, e.g. jigsaw's permutation, is fresh
  each draw; draw 0 is the view's usual example) and augmented afresh (seeded by seed, view,
  draw), so an epoch of `draws * n` items is reproducible."""

  def __init__(self, source: Any, example: SingleViewExample, augment: tuple[str, ...],
               seed: int):
    self.source, self.example, self.augment, self.seed = source, example, augment, seed

  def __call__(self, i: int) -> dict[str, np.ndarray]:
    draw, view = divmod(int(i), len(self.source))
    out = self.example(int(i), self.source[view])
    rng = np.random.default_rng([self.seed, view, draw])
    return {**out, "inputs": augment_image(out["inputs"], self.augment, rng)}


def check_augment(spec: tasks.TaskSpec, augment: Any) -> tuple[str, ...]:
  """`augment` as a tuple of known names, or ValueError naming what is accepted."""
  names = tuple(augment or ())
  unknown = [a for a in names if a not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f"unknown augmentation(s) {unknown}; accepted: {AUGMENTATIONS}")
  for a in names:
    if spec.name not in AUGMENTABLE[a]:
      raise ValueError(f"augmentation {a!r} would change {spec.name}'s target; only "
                       f"{sorted(AUGMENTABLE[a])} take it")
  return names


class AugmentedViews:
  """Picklable `map_with_index` function: each view of multi-view sample `i` augmented on its
  own (seeded by seed, sample index; the index already tells draws apart)."""

  def __init__(self, augment: tuple[str, ...], seed: int):
    self.augment, self.seed = augment, seed

  def __call__(self, i: int, example: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, int(i)])
    views = [augment_image(v, self.augment, rng) for v in example["inputs"]]
    return {**example, "inputs": np.stack(views)}


# `data.standardize_targets`: which tasks learn standardised targets. 'vectors': the vector
# regressions; 'regressions': every L1/L2 target, pixel ones per channel over valid pixels;
# True / False: the older spelling of 'vectors' / 'none'.
STANDARDIZE = ("none", "vectors", "regressions")


def standardize_choice(value: Any) -> str:
  """`data.standardize_targets` as one of STANDARDIZE, or ValueError naming those."""
  if value is True or value is False or value is None:
    return "vectors" if value else "none"
  if value not in STANDARDIZE:
    raise ValueError(f"data.standardize_targets must be one of {STANDARDIZE}, got {value!r}")
  return value


def has_standardized_targets(spec: tasks.TaskSpec, which: Any = "vectors") -> bool:
  """Whether `spec` learns standardised targets under `data.standardize_targets = which`.

  Vector regressions (room layout, vanishing points, poses, egomotion): their dimensions mix
  metres and radians with spreads from 0.2 to 4, so an unweighted squared error is nearly all
  the widest ones (room layout: the room's centre) and the network learns nothing else
  (BUILD_NOTES.md, "Task bank"). The original standardised them with its dataset's mean/std;
  the bank uses its training split's. Pixel regressions ('regressions'): log depth spreads
  0.04 where edges and shading spread 0.3-0.4, so at one learning rate a small depth network
  jitters around the mean image (BUILD_NOTES.md, "Task bank").
  """
  which = standardize_choice(which)
  if which == "none" or spec.loss not in ("l1", "l2"):
    return False
  return which == "regressions" or not spec.pixel_output


def target_statistics(spec: tasks.TaskSpec, cfg: Mapping[str, Any], resolution: int,
                      max_examples: int = 2048) -> dict[str, list[float]]:
  """Mean and standard deviation of `spec`'s training targets, in their own units.

  Vector targets: per dimension, {"mean": [C], "std": [C]}. Pixel targets: per channel over the
  valid pixels, {"mean": [C], "std": [C]} broadcast over (H, W). Over up to `max_examples`
  training examples spread evenly over the split (all draws of multi-view tasks); a constant
  dimension gets std 1, so it passes through standardisation shifted but unscaled.
  """
  raw = {**dict(cfg), "target_stats": None, "augment": ()}
  ds = dataset(spec, raw, "train", resolution)
  stride = max(1, -(-len(ds) // max_examples))
  examples = [ds[i] for i in range(0, len(ds), stride)]
  y = np.stack([np.asarray(e["targets"], np.float64) for e in examples])
  if spec.pixel_output:
    valid = np.ones(y.shape[:-1], bool) if "mask" not in examples[0] else \
        np.stack([np.asarray(e["mask"]) > 0 for e in examples])
    y = y[valid]  # (valid pixels, C)
  y = y.reshape(len(y), -1)
  std = y.std(0)
  return {"mean": y.mean(0).tolist(), "std": np.where(std > 1e-6, std, 1.0).tolist()}


class StandardizedTargets:
  """Picklable `map` function: targets -> (targets - mean) / std, per dimension."""

  def __init__(self, stats: Mapping[str, Any]):
    self.mean = np.asarray(stats["mean"], np.float32)
    self.std = np.asarray(stats["std"], np.float32)

  def __call__(self, example: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    t = np.asarray(example["targets"], np.float32)
    return {**example, "targets": ((t - self.mean) / self.std).astype(np.float32)}


def _multi_view_example(item: Mapping[str, Any]) -> dict[str, np.ndarray]:
  return {"inputs": item["rgb"], "targets": item["target"]}


def dataset(spec: tasks.TaskSpec, cfg: Mapping[str, Any], split: str,
            resolution: int) -> grain.MapDataset:
  """Examples of `spec` from `split` ('train' or 'eval') of the configured TFDS dataset."""
  ds = _examples(spec, cfg, split, resolution)
  stats = cfg.get("target_stats")
  if stats:
    if not has_standardized_targets(spec, "regressions"):
      raise ValueError(f"target_stats given for {spec.name}, whose targets are not "
                       "standardised (only L1/L2 regressions are)")
    ds = ds.map(StandardizedTargets(stats))
  return ds


def _examples(spec: tasks.TaskSpec, cfg: Mapping[str, Any], split: str,
              resolution: int) -> grain.MapDataset:
  src = source(cfg, split)
  check_resolution(src, resolution)
  seed = int(cfg.get("seed", 0)) + (0 if split == "train" else 1)
  stored = (cfg.get("train_split") or "train") if split == "train" else split
  budget = int(cfg.get("train_examples") or 0) if split == "train" else 0
  if budget:
    if spec.name in pipeline.MULTI_VIEW_KINDS:
      raise ValueError(f"data.train_examples applies to one-view tasks, not {spec.name}")
    src = FirstExamples(src, budget)
  if spec.name in pipeline.MULTI_VIEW_KINDS:
    name, bc, data_dir = cfg["name"], cfg["builder_config"], cfg.get("data_dir")
    # Fresh partners per draw for training; held-out pairs stay one fixed pair per view.
    draws = int(cfg.get("draws_per_anchor", 1)) if split == "train" else 1
    mv = pipeline.MultiViewSource(src, spec.name, seed=seed, draws_per_anchor=draws,
                                  index=_view_index(name, bc, data_dir, SPLITS[stored]))
    ds = grain.MapDataset.source(mv).map(_multi_view_example)
    augment = check_augment(spec, cfg.get("augment"))
    if augment and split == "train":
      ds = ds.map_with_index(AugmentedViews(augment, seed))
    return ds
  augment = check_augment(spec, cfg.get("augment"))
  draws = int(cfg.get("draws_per_anchor", 1)) if split == "train" else 1
  if augment or (draws > 1 and spec.name in selfsup.RANDOM_SAMPLES):
    return grain.MapDataset.range(draws * len(src)).map(
        FreshDraw(src, SingleViewExample(spec, seed), augment if split == "train" else (),
                  seed))
  return grain.MapDataset.source(src).map_with_index(SingleViewExample(spec, seed))


def register() -> None:
  """Makes `data.name: taskonomy_synthetic` (or `taskonomy`) a dataset the one trainer reads."""
  for name in ("taskonomy_synthetic", "taskonomy"):
    # A config without `builder_config` reads the builder's default one.
    default = catalog.builder_class(name).DEFAULT_CONFIG_NAME
    train_task.DATASETS[name] = lambda spec, cfg, split, res, _n=name, _d=default: dataset(
        spec, {"builder_config": _d, **dict(cfg), "name": _n}, split, res)
