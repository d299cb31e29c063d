"""A finished taxonomy run (`taskonomy taxonomy`) as a predictor for people.

    tp = TransferPredictor.load("out/taxonomy")        # the taxonomy's chosen transfers
    outputs = tp(image)                                # (R, R, 3) in [-1, 1] -> {target: output}

The run's task networks are a task bank already (`pipeline.Run.bank_dir`, which `TaskBank.load`,
`taskonomy serve --bank` and `visualize --bank` read). `TransferPredictor` runs transfer
readouts (paper Sec. 3.2): the image through the frozen source encoder(s) of that bank,
representations concatenated channel-wise and zero-padded as in training, then that readout's
copy of its stacked checkpoint (the readouts into one target train *stacked*,
taskonomy_jax/transfer/training.py; copy k is cut out again here).

A run's config is needed to rebuild the networks: the `config` argument (a ConfigDict, or
`path.py[:arg]` as given to `taskonomy taxonomy --config`), else `<workdir>/config.json`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from taskonomy_jax import config_files, tasks
from taskonomy_jax.taskbank import bank as bank_lib
from taskonomy_jax.train import checkpoint
from taskonomy_jax.transfer import pipeline, stages
from taskonomy_jax.transfer import readout as readout_lib

CONFIG_FILE = "config.json"
TAXONOMY_FILE = "taxonomy.json"

ConfigLike = ml_collections.ConfigDict | Mapping[str, Any] | str | os.PathLike | None


# --- the run ---------------------------------------------------------------------------------

def load_run_config(workdir: str | os.PathLike, config: ConfigLike = None,
                    overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config of the run in `workdir`: `config` if given (a ConfigDict / dict, or a config
  file `path.py[:arg]` with the run's `--set` `overrides`), else `<workdir>/config.json`.

  Raises:
    FileNotFoundError: no config given and the run has no config.json.
    ValueError: overrides without a config file.
  """
  if not pathlib.Path(workdir).is_dir():
    raise FileNotFoundError(f"{workdir} is not a folder; give the workdir of a `taskonomy "
                            "taxonomy` run")
  if overrides and not isinstance(config, str | os.PathLike):
    raise ValueError("config overrides (--set) need the config file they apply to (--config)")
  if isinstance(config, ml_collections.ConfigDict):
    return config
  if isinstance(config, Mapping):
    return ml_collections.ConfigDict(dict(config))
  if config is not None:
    c = config_files.load_config(str(config))
    config_files.apply_overrides(c, list(overrides))
    return c
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(
        f"{workdir} has no {CONFIG_FILE}; give the run's config (the --config, e.g. "
        "taxonomy:tiny, with the same --set overrides)")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def open_run(workdir: str | os.PathLike, config: ConfigLike = None) -> pipeline.Run:
  """The pipeline's own view of a finished run (paths, groups), checked to exist."""
  run = pipeline.Run(load_run_config(workdir, config), pathlib.Path(workdir))
  if not run.stage_dir("taskbank").is_dir():
    raise FileNotFoundError(f"{workdir} is not a taxonomy run with a trained task bank (no "
                            f"{run.stage_dir('taskbank').name}/); run `taskonomy taxonomy` first")
  return run


def _members(unit: pathlib.Path) -> Any:
  if not stages.is_done(unit):
    raise FileNotFoundError(f"{unit} is not finished (no {stages.MARKER} marker)")
  return json.loads((unit / "members.json").read_text())


def _copy(stacked: Mapping[str, Any], k: int) -> dict[str, Any]:
  """Copy k of stacked variables (every leaf (K, ...) -> (...))."""
  return jax.tree.map(lambda a: np.asarray(a[k]), dict(stacked))


def _check_fits(module, sample: np.ndarray, variables: Mapping[str, Any], what: str) -> None:
  """Refuses variables whose shapes differ from what `module` builds (a config other than the
  run's): the error names the first mismatching parameter."""
  want = jax.eval_shape(lambda: module.init(jax.random.key(0), sample, train=False))
  want = {c: want.get(c, {}) for c in ("params", "batch_stats")}
  got = {c: variables.get(c, {}) for c in ("params", "batch_stats")}
  flat_want = dict(jax.tree_util.tree_flatten_with_path(want)[0])
  flat_got = dict(jax.tree_util.tree_flatten_with_path(got)[0])
  for path in sorted(set(flat_want) | set(flat_got), key=str):
    a, b = flat_want.get(path), flat_got.get(path)
    if a is None or b is None or tuple(a.shape) != tuple(np.shape(b)):
      name = jax.tree_util.keystr(path)
      raise ValueError(
          f"{what}: checkpoint parameter {name} has shape {None if b is None else np.shape(b)} "
          f"but the config builds {None if a is None else a.shape}; give the config the run "
          "was trained with (its --config and --set)")


def bank_of(run: pipeline.Run, names: Sequence[str]) -> Any:
  """The run's task bank (`TaskBank`) with the networks `names`."""
  unknown = sorted({tasks.get(n).name for n in names} - set(run.bank))
  if unknown:
    raise ValueError(f"{unknown} not in this run's task bank; it has {run.bank}")
  return bank_lib.TaskBank.load(str(run.bank_dir), [tasks.get(n).name for n in names])


# --- transfers -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Transfer:
  """Target <- sources. `sources == (target,)` is the target's own network (what the taxonomy
  serves a supervised target with)."""

  target: str
  sources: tuple[str, ...]

  @property
  def own_network(self) -> bool:
    return self.sources == (self.target,)

  def __str__(self) -> str:
    return f"{self.target}<-{'+'.join(self.sources)}"

  @classmethod
  def parse(cls, text: str) -> Transfer:
    """'target<-src1+src2' (registry names or aliases) -> Transfer (sources sorted, as the
    pipeline names higher-order transfers)."""
    target, sep, srcs = text.strip().partition("<-")
    names = [s.strip() for s in srcs.split("+") if s.strip()]
    if not sep or not target.strip() or not names:
      raise ValueError(f"transfer {text!r} is not of the form target<-source[+source...]")
    sources = tuple(sorted({tasks.get(s).name for s in names}))
    return cls(tasks.get(target.strip()).name, sources)


def chosen_transfers(run: pipeline.Run) -> list[Transfer]:
  """What the run's taxonomy (`08_taxonomy/out/taxonomy.json`) serves each target with."""
  path = run.stage_dir("taxonomy") / "out" / TAXONOMY_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing: the run has no taxonomy yet (finish "
                            "`taskonomy taxonomy`, or name transfers as target<-source)")
  served = json.loads(path.read_text())["served"]
  return [Transfer(s["target"], tuple(s["sources"])) for s in served]


def _find_readout(run: pipeline.Run, transfer: Transfer) -> tuple[str, str, int]:
  """(stage, unit, copy index) of a transfer's readout in the stacked checkpoints."""
  if transfer.target not in run.targets:
    raise ValueError(f"{transfer.target} is not a target of this run; targets: {run.targets}")
  stage = "transfers1" if len(transfer.sources) == 1 else "transfers_high"
  unit = run.unit_of(stage, transfer.target)
  members = _members(unit) if stages.is_done(unit) else []
  want = [transfer.target, sorted(transfer.sources)]
  for k, (t, srcs) in enumerate(members):
    if [t, sorted(srcs)] == want:
      return stage, unit.name, k
  have = sorted({str(Transfer(t, tuple(s))) for t, s in members if t == transfer.target})
  raise ValueError(f"no trained readout for {transfer}; this run trained: {', '.join(have)}")


def _plus(head: Callable[[np.ndarray], np.ndarray],
          transform: tuple[np.ndarray, float] | None) -> Callable[[np.ndarray], np.ndarray]:
  """A residual readout's prediction: its output times the scale plus the offset image
  (`pipeline.residual`: the target's median or mean; None: unchanged)."""
  if transform is None:
    return head
  mean, scale = transform
  return lambda x: head(x) * np.float32(scale) + mean


class TransferPredictor:
  """The chosen transfers of a run as a `Predictor`: image (R, R, 3) in [-1, 1] ->
  {target: output}, with `titles` {target: 'target <- sources'} for drawing."""

  def __init__(self, resolution: int, transfers: Sequence[Transfer],
               encoders: Mapping[str, Callable[[np.ndarray], np.ndarray]],
               heads: Mapping[str, Callable[..., np.ndarray]], channels: Mapping[str, int],
               source_stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None):
    self.resolution = resolution
    self.transfers = list(transfers)
    self._encoders, self._heads, self._channels = encoders, heads, dict(channels)
    self._stats = dict(source_stats or {})

  @property
  def task_names(self) -> list[str]:
    return [t.target for t in self.transfers]

  @property
  def titles(self) -> dict[str, str]:
    return {t.target: (f"{t.target} (own)" if t.own_network else str(t).replace("<-", " <- "))
            for t in self.transfers}

  @classmethod
  def load(cls, workdir: str | os.PathLike,
           transfers: Sequence[str | Transfer] | None = None,
           config: ConfigLike = None) -> TransferPredictor:
    """The transfers of the run in `workdir`: `transfers` ('target<-src1+src2' or Transfer;
    at most one per target), default the taxonomy's chosen one per target.

    Raises:
      FileNotFoundError: not a finished run (or no taxonomy and no `transfers`).
      ValueError: a transfer the run did not train, two transfers into one target.
    """
    run = open_run(workdir, config)
    chosen = chosen_transfers(run) if transfers is None else [
        t if isinstance(t, Transfer) else Transfer.parse(t) for t in transfers]
    # One image in: the multi-view targets (poses, egomotion, point matching) are left out of
    # the taxonomy's transfers, and refused when named.
    multi_view = [t for t in chosen if tasks.get(t.target).num_views > 1]
    if multi_view and transfers is not None:
      raise ValueError(f"{', '.join(map(str, multi_view))}: multi-view targets take several "
                       "views; the predictor maps one image to single-view targets")
    chosen = [t for t in chosen if t not in multi_view]
    if not chosen:
      raise ValueError("no transfers to run")
    targets = [t.target for t in chosen]
    if len(set(targets)) != len(targets):
      raise ValueError(f"one transfer per target, got {', '.join(map(str, chosen))}")
    own = [t.target for t in chosen if t.own_network]
    needed = sorted({s for t in chosen if not t.own_network for s in t.sources})
    bank = bank_of(run, sorted(set(needed) | set(own)))

    def encoder(model, variables):
      fn = jax.jit(lambda v, x: model.apply(v, x, False, method=lambda m, x, t: m.encoder(x, t)))
      return lambda x: np.asarray(fn(variables, x))

    def network(model, variables):
      fn = jax.jit(functools.partial(model.apply, train=False))
      return lambda x: np.asarray(fn(variables, x))

    encoders = {s: encoder(*bank.network(s)) for s in needed}
    # A target's own network in its targets' units (standardised targets mapped back).
    heads: dict[str, Callable[..., np.ndarray]] = {t: bank.batch_apply(t) for t in own}
    h = int(run.config.data.resolution) // int(run.config.model.get("output_stride", 16))
    # The readouts were trained on standardised sources, to predict a residual over the target's
    # offset image: the same transforms, from the same cached arrays (pipeline.source_stats,
    # pipeline.residual).
    stats = pipeline.source_stats(run, needed)
    stacked_cache: dict[tuple[str, str], dict[str, Any]] = {}
    channels: dict[str, int] = {}  # {target: its readout's input channels}
    for t in chosen:
      if t.own_network:
        continue
      stage, unit, k = _find_readout(run, t)
      if (stage, unit) not in stacked_cache:
        stacked_cache[stage, unit] = checkpoint.load_variables(str(run.ckpt / stage / unit))
      variables = _copy(stacked_cache[stage, unit], k)
      module = readout_lib.build(tasks.get(t.target), pipeline.readout_config(run))
      channels[t.target] = pipeline.input_channels(run, stage)
      _check_fits(module, np.zeros((1, h, h, channels[t.target]), np.float32), variables,
                  f"readout {t}")
      heads[t.target] = _plus(network(module, variables), pipeline.residual(run, t.target))
    # Sources in the order of the trained readout's input (members.json's order: sorted).
    chosen = [t if t.own_network else Transfer(t.target, tuple(sorted(t.sources)))
              for t in chosen]
    return cls(int(run.config.data.resolution), chosen, encoders, heads, channels, stats)

  def readout_input(self, transfer: Transfer, reps: Mapping[str, np.ndarray]) -> np.ndarray:
    """The sources' representations (B, h, w, C) each, concatenated channel-wise and
    zero-padded to the readout's input channels (`pipeline.input_channels` of its stage), as
    `training.StackedInputs` builds them."""
    def standardized(s):
      if s not in self._stats:
        return reps[s]
      mean, std = self._stats[s]
      return (reps[s] - mean) / std
    x = np.concatenate([standardized(s) for s in transfer.sources], axis=-1)
    return readout_lib.pad_channels(x, self._channels[transfer.target])

  def batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """(B, R, R, 3) in [-1, 1] -> {target: (B, ...) output}."""
    images = np.asarray(images, np.float32)
    reps = {s: enc(images) for s, enc in self._encoders.items()}
    return {t.target: self._heads[t.target](
        images if t.own_network else self.readout_input(t, reps)) for t in self.transfers}

  def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    r = self.resolution
    if np.shape(image) != (r, r, 3):
      raise ValueError(f"expected a ({r}, {r}, 3) image in [-1, 1], got shape {np.shape(image)}")
    return {k: v[0] for k, v in self.batch(np.asarray(image)[None]).items()}
