"""Evaluating the task bank: each network against a trivial baseline on held-out views.

The baseline is a constant prediction computed on the training split, chosen by the task's loss
(`BASELINES`): the mean target for regressions (per pixel for pixel tasks, over valid pixels),
the majority class for classifications, the mean distribution for soft (distilled) targets, and
a constant embedding for the metric-learning segmentations (every pair judged "same"); a
metric with another best constant overrides it (`METRIC_BASELINES`: the class frequencies for
cross entropy, colorization's metric). Network
and baseline are scored with the task's own metric (`train.metrics`) over the same held-out
examples, all at once (mIoU is not a mean of per-batch values).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import tqdm

from taskonomy_jax import files, tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.taskbank import data as data_lib
from taskonomy_jax.taskbank import train as train_lib
from taskonomy_jax.train import metrics

HIGHER_IS_BETTER = frozenset({"accuracy", "miou", "pair_accuracy"})
EVAL_FILE = "evaluation.json"
# Held-out splits a bank is scored on: choose settings on `validation`, report `test` once.
HELD_OUT_SPLITS = ("validation", "test")
_LOGIT_SCALE = 10.0  # a one-hot "logit" that makes softmax put ~all mass on the class


def collect(examples: Iterable[Mapping[str, np.ndarray]], limit: int) -> dict[str, np.ndarray]:
  """Stacks up to `limit` examples' arrays: {key: (N, ...)}."""
  rows = []
  for i, ex in enumerate(examples):
    if i == limit:
      break
    rows.append(ex)
  if not rows:
    raise ValueError("no examples to evaluate on")
  return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


def _weights(batch: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
  w = batch.get("mask")
  return np.ones(shape, np.float64) if w is None else np.asarray(w, np.float64).reshape(shape)


def _mean_target(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                 resolution: int) -> np.ndarray:
  y = np.asarray(train["targets"], np.float64)  # (N, H, W, C) or (N, C)
  w = _weights(train, y.shape[:-1] if spec.pixel_output else (len(y),))[..., None]
  return (np.sum(y * w, 0) / np.maximum(np.sum(w, 0), 1e-12)).astype(np.float32)


def _class_counts(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray]) -> np.ndarray:
  y = np.asarray(train["targets"])
  w = _weights(train, y.shape)
  return np.bincount(y.reshape(-1), weights=w.reshape(-1), minlength=spec.channels)


def _majority_class(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                    resolution: int) -> np.ndarray:
  logits = np.zeros(spec.output_shape(resolution), np.float32)
  logits[..., int(np.argmax(_class_counts(spec, train)))] = _LOGIT_SCALE
  return logits


def _class_prior(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                 resolution: int) -> np.ndarray:
  counts = _class_counts(spec, train)
  logp = np.log(np.maximum(counts / counts.sum(), 1e-12))
  return np.broadcast_to(logp, spec.output_shape(resolution)).astype(np.float32)


def _mean_distribution(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                       resolution: int) -> np.ndarray:
  p = np.mean(np.asarray(train["targets"], np.float64), 0)
  return np.log(np.maximum(p / p.sum(), 1e-12)).astype(np.float32)


def _constant_embedding(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                        resolution: int) -> np.ndarray:
  del train
  return np.zeros(spec.output_shape(resolution), np.float32)


BaselineFn = Callable[[tasks.TaskSpec, Mapping[str, np.ndarray], int], np.ndarray]
BASELINES: dict[str, BaselineFn] = {
    "l1": _mean_target, "l2": _mean_target,
    "softmax_xent": _majority_class, "weighted_softmax_xent": _majority_class,
    "soft_xent": _mean_distribution, "metric_embedding": _constant_embedding,
}
# Where the metric's best constant is not the loss's: under cross entropy it is the class
# frequencies themselves, not all mass on the majority class.
METRIC_BASELINES: dict[str, BaselineFn] = {"xent": _class_prior}


def loss_baseline(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                  resolution: int) -> np.ndarray:
  """The best constant prediction under the task's training *loss* where it differs from
  `baseline_prediction`'s: the class frequencies for (weighted) cross entropy against labels."""
  if spec.loss in ("softmax_xent", "weighted_softmax_xent"):
    return _class_prior(spec, train, resolution)
  return baseline_prediction(spec, train, resolution)


def baseline_prediction(spec: tasks.TaskSpec, train: Mapping[str, np.ndarray],
                        resolution: int) -> np.ndarray:
  """The constant prediction, `spec.output_shape(resolution)`, from stacked training examples."""
  if spec.metric in METRIC_BASELINES:
    return METRIC_BASELINES[spec.metric](spec, train, resolution)
  if spec.loss not in BASELINES:
    raise ValueError(f"{spec.name} has loss {spec.loss!r}, which has no baseline; losses with "
                     f"one: {sorted(BASELINES)}")
  return BASELINES[spec.loss](spec, train, resolution)


def score(spec: tasks.TaskSpec, pred: np.ndarray, held_out: Mapping[str, np.ndarray]) -> float:
  """The task's metric of predictions (N, *output) on stacked held-out examples."""
  batch = {"targets": held_out["targets"]}
  if "mask" in held_out:
    batch["mask"] = held_out["mask"]
  return float(metrics.task_metric(spec, np.asarray(pred, np.float32), batch))


def predict_all(apply: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray,
                batch_size: int) -> np.ndarray:
  return np.concatenate([np.asarray(apply(inputs[i:i + batch_size]))
                         for i in range(0, len(inputs), batch_size)])


def evaluate_task(spec: tasks.TaskSpec, apply: Callable[[np.ndarray], np.ndarray],
                  train: Mapping[str, np.ndarray], held_out: Mapping[str, np.ndarray],
                  resolution: int, batch_size: int = 16) -> dict[str, Any]:
  """{task, metric, network, baseline, higher_is_better, beats_baseline, n_train, n_eval}."""
  base = baseline_prediction(spec, train, resolution)
  n = len(held_out["targets"])
  net = score(spec, predict_all(apply, held_out["inputs"], batch_size), held_out)
  bl = score(spec, np.broadcast_to(base, (n, *base.shape)), held_out)
  higher = spec.metric in HIGHER_IS_BETTER
  return {"task": spec.name, "metric": spec.metric, "network": net, "baseline": bl,
          "higher_is_better": higher, "beats_baseline": bool(net > bl if higher else net < bl),
          "n_train": len(train["targets"]), "n_eval": n}


def default_table_path(workdir: str, split: str = "validation") -> str:
  """`<bank>/evaluation.json` for the validation split, `<bank>/evaluation_<split>.json` else."""
  name = EVAL_FILE if split == "validation" else EVAL_FILE.replace(".json", f"_{split}.json")
  return os.path.join(workdir, name)


def evaluate_bank(workdir: str, out: str | None = None,
                  split: str = "validation") -> dict[str, Any]:
  """Evaluates every trained network of a bank on the held-out `split`; writes the JSON table
  (atomically, row by row, so a killed run resumes).

  Returns {"rows": [...], "split": split, "bank": ..., "resolution": ..., "data": {...}}.

  Raises:
    ValueError: `split` is not one of HELD_OUT_SPLITS.
  """
  if split not in HELD_OUT_SPLITS:
    raise ValueError(f"split must be one of {HELD_OUT_SPLITS} (the training split is not held "
                     f"out), got {split!r}")
  tb = bank_lib.TaskBank.load(workdir)
  cfg = tb.config
  out = out or default_table_path(workdir, split)
  # Resumable: a row is reused while its task's done record (what was trained) and its metric
  # are unchanged.
  saved = load_table(out) if os.path.isfile(out) else {}
  previous = ({r["task"]: r for r in saved["rows"]}
              if saved and saved.get("split", "validation") == split else {})
  rows = []
  for name in tqdm.tqdm(tb.task_names, desc="evaluating", unit="task"):
    spec = tasks.get(name)
    if spec.decoder == "none":
      continue
    done = train_lib.done_record(workdir, name)
    if (name in previous and previous[name].get("trained") == done
        and previous[name].get("metric") == spec.metric):
      rows.append(previous[name])
      continue
    eval_cfg = train_lib.task_settings(cfg, name)["eval"]
    train = collect(data_lib.dataset(spec, cfg["data"], "train", tb.resolution),
                    eval_cfg["max_train_examples"])
    held = collect(data_lib.dataset(spec, cfg["data"], split, tb.resolution),
                   eval_cfg["max_examples"])
    row = evaluate_task(spec, tb.batch_apply(name), train, held, tb.resolution,
                        eval_cfg["batch_size"])
    rows.append({**row, "trained": done})
    files.write_json_atomic(out, _table(rows, workdir, tb, cfg, split))  # survives a kill
  table = _table(rows, workdir, tb, cfg, split)
  files.write_json_atomic(out, table)
  return table


def _table(rows: list[dict], workdir: str, tb: Any, cfg: Mapping[str, Any],
           split: str) -> dict[str, Any]:
  return {"rows": rows, "split": split, "bank": os.path.abspath(workdir),
          "resolution": tb.resolution, "data": cfg["data"]}


def markdown_table(table: Mapping[str, Any]) -> str:
  lines = ["| task | metric | network | baseline | better |", "| --- | --- | --- | --- | --- |"]
  for r in table["rows"]:
    arrow = "higher" if r["higher_is_better"] else "lower"
    lines.append(f"| {r['task']} | {r['metric']} ({arrow}) | {r['network']:.4g} | "
                 f"{r['baseline']:.4g} | {'yes' if r['beats_baseline'] else 'NO'} |")
  won = sum(r["beats_baseline"] for r in table["rows"])
  lines.append(f"\n{won} of {len(table['rows'])} networks beat their baseline.")
  return "\n".join(lines)


def load_table(path: str) -> dict[str, Any]:
  with open(path) as f:
    return json.load(f)
