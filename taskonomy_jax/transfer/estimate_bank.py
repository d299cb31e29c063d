"""RSA and linear CKA between the networks of a bank on a folder of images (no transfer trained).

A bank is either a task-bank workdir (`taskonomy taskbank train`, with its `bank.json`) or a
folder of converted `visualpriors` checkpoints, one subfolder per task as
`taskonomy convert-visualpriors --out DIR/<task>` writes them (the paper-size networks: the
encoders are built at the paper's settings unless a model config is given). Every encoder sees
the images themselves, as the transfers do (taskonomy_jax/transfer/pipeline.py).
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from taskonomy_jax import models, tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import predict
from taskonomy_jax.taskbank import train as bank_train
from taskonomy_jax.taxonomy import estimators
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import training

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
PAPER_RESOLUTION = 256
MAX_IMAGE_BYTES = 64 << 20


def load_encoders(bank_dir: str | os.PathLike, task_names: Sequence[str] | None = None,
                  model_config: Mapping[str, Any] | None = None,
                  resolution: int = PAPER_RESOLUTION) -> tuple[dict[str, tuple[Any, Any]], int]:
  """({task: (flax module, variables)}, input resolution) of a bank's networks.

  A task-bank workdir gives its finished tasks (or `task_names`) at its resolution; otherwise
  every subfolder named after a task that holds a checkpoint (or `task_names`), each network
  built with `model_config` (default: the paper's) for `resolution` (default 256).

  Raises:
    FileNotFoundError: no such folder, or no network in it (or a named one missing).
  """
  root = pathlib.Path(bank_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"no bank at {bank_dir}: no such folder")
  if (root / bank_train.BANK_FILE).is_file():
    bank = bank_lib.TaskBank.load(str(root), task_names)
    return {n: bank.network(n) for n in bank.task_names}, bank.resolution
  if task_names:
    names = [tasks.get(n).name for n in task_names]
  else:
    known = set(tasks.names())
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in known
                   and (p / checkpoint.CHECKPOINT_DIR).is_dir())
  if not names:
    raise FileNotFoundError(
        f"{bank_dir} holds no network: expected a task-bank workdir ({bank_train.BANK_FILE}) or "
        "one folder per task of converted checkpoints (`taskonomy convert-visualpriors --out "
        f"{bank_dir}/<task>`)")
  config = dict(model_config or {})
  nets = {n: (models.build(n, config), checkpoint.load_variables(str(root / n))) for n in names}
  return nets, resolution


def load_images(folder: str | os.PathLike, resolution: int, limit: int | None = None
                ) -> tuple[np.ndarray, list[str]]:
  """The images of a folder (sorted by name; PNG, JPEG, ...), centre-cropped and resized:
  ((N, R, R, 3) float32 in [-1, 1], their file names).

  Raises:
    FileNotFoundError: no such folder or no image in it.
  """
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise FileNotFoundError(f"no image folder at {folder}")
  paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
  if not paths:
    raise FileNotFoundError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
  images = [predict.prepare_image(predict.decode_image(p.read_bytes(), MAX_IMAGE_BYTES,
                                                       MAX_IMAGE_BYTES), resolution)
            for p in paths]
  return np.stack(images), [p.name for p in paths]


def encode_all(nets: Mapping[str, tuple[Any, Any]], images: np.ndarray, batch: int = 8
               ) -> dict[str, np.ndarray]:
  """Every network's frozen encoder on `images` (N, R, R, 3) -> {task: (N, h, w, c)}. Encoders
  of one shape (a bank's usually are: only the decoders differ) run stacked, one compiled
  program for the group (`training.stacked_encode`)."""
  groups: dict[Any, list[str]] = {}
  for n, (_, v) in nets.items():
    enc = {"params": v["params"]["encoder"], "batch_stats": v["batch_stats"]["encoder"]}
    key = (jax.tree.structure(enc), tuple(a.shape for a in jax.tree.leaves(enc)))
    groups.setdefault(key, []).append(n)
  out = {}
  for members in groups.values():
    stacked = jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *[
        {"params": {"encoder": nets[n][1]["params"]["encoder"]},
         "batch_stats": {"encoder": nets[n][1]["batch_stats"]["encoder"]}} for n in members])
    reps = training.stacked_encode(nets[members[0]][0], stacked, images, batch)
    out.update(zip(members, reps, strict=True))
  return {n: out[n] for n in nets}


def estimate_from_bank(bank_dir: str | os.PathLike, images: str | os.PathLike | np.ndarray,
                       task_names: Sequence[str] | None = None,
                       model_config: Mapping[str, Any] | None = None,
                       resolution: int = PAPER_RESOLUTION, resamples: int = 0, seed: int = 0,
                       batch: int = 8
                       ) -> tuple[dict[str, Any], dict[str, AffinityTable]]:
  """RSA and linear CKA between every pair of a bank's networks on `images` (a folder, or an
  (N, R, R, 3) array in [-1, 1] at the bank's resolution). `model_config` and `resolution`:
  of a folder of converted checkpoints (default: the paper's networks at 256x256), see
  `load_encoders`.

  Returns (a JSON-able summary: `images`, `networks`, `encode_seconds` and per measure
  `scores`, `rankings` (every network as a target: the others best first), `seconds`, and with
  `resamples` > 0 bootstrap `intervals`; {measure: the affinity table with every network as a
  target}, for `taskonomy solve --data`).
  """
  nets, resolution = load_encoders(bank_dir, task_names, model_config, resolution)
  if isinstance(images, str | os.PathLike):
    images, _ = load_images(images, resolution)
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[1:] != (resolution, resolution, 3):
    raise ValueError(f"expected (N, {resolution}, {resolution}, 3) images, got {images.shape}")
  start = time.perf_counter()
  reps = encode_all(nets, images, batch)
  names = list(nets)
  summary: dict[str, Any] = {"images": len(images), "networks": names,
                             "encode_seconds": round(time.perf_counter() - start, 3)}
  tables = {}
  for measure in estimators.MEASURES:
    start = time.perf_counter()
    scores = estimators.all_pairs([reps[n] for n in names], measure)
    out = {"scores": {a: dict(zip(names, map(float, row), strict=True))
                      for a, row in zip(names, scores, strict=True)},
           "rankings": estimators.rankings(scores, names),
           "seconds": round(time.perf_counter() - start, 3)}
    if resamples > 0:
      lo, hi = estimators.intervals(
          estimators.bootstrap([reps[n] for n in names], measure, resamples, seed))
      out["intervals"] = {"lo": lo.tolist(), "hi": hi.tolist(), "resamples": resamples,
                          "seed": seed}
    summary[measure] = out
    tables[measure] = estimators.affinity_table(scores, names, names,
                                                source=f"{measure} estimator on {bank_dir}")
  return summary, tables
