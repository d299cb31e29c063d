"""The linear-probe estimator on a run: closed-form readouts from the bank's cached
representations to each target's labels, and their held-out losses as transfer tournaments.

`taxonomy/linear_probe.py` holds the math. Here a run's representations and labels become, per
target, the held-out losses of the candidates the transfers have (every other network of the
bank at first order; orders 2 to `transfer.max_order` over the `transfer.beam` best first-order
sources, by held-out R^2 here as by AHP affinity there; the target's own network) as an
`affinity.TargetLosses`, so that the AHP turns them into an affinity table as it does the
transfers' losses. Fitted on the transfer split (`validation`), scored on `test`, per target:

- pixel targets (`CELLS`): each cell's features predict its block of pixels, standardised per
  value for regressions, one-hot for semantic classes; a view's loss is the squared error over
  its valid pixels;
- unsupervised segmentations (`REPRESENTATION`): their segment ids are arbitrary per view, so no
  fixed map can predict them; the target's own network, trained on them, gives them
  coordinates, and its representation (standardised) is predicted per cell instead;
- vectors and classes of one or several views (`VECTOR`: layout, poses, point matching, class
  distributions): kernel ridge on every view's whole grid, its penalty chosen by leave-one-out
  error on the fitting split; a sample's loss is its squared error.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import linear_probe as lp
from taskonomy_jax.taxonomy.affinities import AffinityTable
from taskonomy_jax.transfer import affinity, readout, training

CELLS, REPRESENTATION, VECTOR = "cells", "representation", "vector"
FIT_SPLIT, SCORE_SPLIT = "validation", "test"


def kind_of(spec: tasks.TaskSpec) -> str:
  """How the probe reads a target's labels (the module docstring)."""
  if not spec.pixel_output:
    return VECTOR
  return REPRESENTATION if spec.loss == "metric_embedding" else CELLS


@dataclasses.dataclass(frozen=True)
class Labels:
  """One target's labels on one split, in the rows the probe predicts.

  Attributes:
    values: (N h w, k) per cell or (N_t, k) per sample, centred (the fitting split's means),
      standardised for regressions; on the fitting split, zero where not counted.
    weight: the same shape: 1 where an entry counts.
    per_cell: True for cell rows (the primal problem), False for one row per sample (dual).
    records: per-sample rows of a multi-view target: (N_t, V) view indices; else None.
  """

  values: np.ndarray
  weight: np.ndarray
  per_cell: bool
  records: np.ndarray | None = None


def _raw_labels(spec: tasks.TaskSpec, target: np.ndarray, mask: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, bool]:
  """(values, weight broadcast to them, standardise?) before cells and centring."""
  target, mask = np.asarray(target), np.asarray(mask, np.float32)
  if spec.loss in ("softmax_xent", "weighted_softmax_xent"):
    values, standardize = lp.one_hot(target, spec.channels), False
  else:  # regressions keep their units up to standardisation; class distributions do not
    values, standardize = np.asarray(target, np.float32), readout.is_regression(spec)
  if spec.pixel_output and values.ndim == 3:
    values = values[..., None]
  weight = np.broadcast_to(mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim)),
                           values.shape).astype(np.float32)
  return values, weight, standardize


def _centred(fit: tuple[np.ndarray, np.ndarray], score: tuple[np.ndarray, np.ndarray],
             standardize: bool, per_cell: bool, records: tuple[np.ndarray | None, ...]
             ) -> tuple[Labels, Labels]:
  (yf, wf), (ys, ws) = fit, score
  mean, sd = lp.standardizer(yf, wf)
  scale = sd if standardize else np.ones_like(sd)
  return (Labels(((yf - mean) / scale * wf).astype(np.float32), wf, per_cell, records[0]),
          Labels(((ys - mean) / scale).astype(np.float32), ws, per_cell, records[1]))


def split_labels(spec: tasks.TaskSpec, fit: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                 score: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                 grid: tuple[int, int]) -> tuple[Labels, Labels]:
  """A `CELLS` or `VECTOR` target's fitting and scoring `Labels` from (target, mask, records)
  of each split: targets (N, H, W[, C]) or (N_t, ...), masks (N, H, W) or (N_t,), records
  (N_t, V) or None."""
  kind = kind_of(spec)
  if kind == REPRESENTATION:
    raise ValueError(f"{spec.name}'s labels are read through its network "
                     "(representation_labels)")
  (yf, wf, std), (ys, ws, _) = (_raw_labels(spec, t, m) for t, m, _ in (fit, score))
  if kind == CELLS:
    yf, wf, ys, ws = (lp.cell_blocks(a, grid) for a in (yf, wf, ys, ws))
  else:
    yf, wf, ys, ws = (a.reshape(len(a), -1) for a in (yf, wf, ys, ws))
  return _centred((yf, wf), (ys, ws), std, kind == CELLS, (fit[2], score[2]))


def representation_labels(fit_rep: np.ndarray, score_rep: np.ndarray) -> tuple[Labels, Labels]:
  """A `REPRESENTATION` target's labels: its network's representations (N, h, w, c) of each
  split, one row per cell, standardised."""
  rows = [lp.cells(r) for r in (fit_rep, score_rep)]
  return _centred(*[(r, np.ones_like(r)) for r in rows], True, True, (None, None))


class Probe:
  """Closed-form readouts from a bank's representations; normal equations and kernels are
  cached across targets and candidates (so a target's labels are fixed for one Probe: the
  cross products and the mean's baseline errors are kept by target name).

  Args:
    fit_reps, score_reps: {network: (N, h, w, c)} representations of the fitting and scoring
      views (one grid for all).
  """

  def __init__(self, fit_reps: Mapping[str, np.ndarray], score_reps: Mapping[str, np.ndarray]):
    self.names = list(fit_reps)
    self.grid = tuple(np.shape(fit_reps[self.names[0]])[1:3])
    self.num_fit = len(fit_reps[self.names[0]])
    self.num_score = len(score_reps[self.names[0]])
    self.cells: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    self.flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for n in self.names:
      if np.shape(fit_reps[n])[1:3] != self.grid or np.shape(score_reps[n])[1:3] != self.grid:
        raise ValueError(f"{n}'s representation grid {np.shape(fit_reps[n])[1:3]} is not "
                         f"{self.grid}")
      # Per channel on the fitting split, as the transfers' inputs (transfer.standardize_inputs).
      mean, std = training.channel_stats(fit_reps[n])
      fit = (np.asarray(fit_reps[n], np.float32) - mean) / std
      score = (np.asarray(score_reps[n], np.float32) - mean) / std
      cf, cs = lp.cells(fit), lp.cells(score)
      centre = cf.mean(0)
      self.cells[n] = (cf - centre, cs - centre)
      self.flat[n] = (fit.reshape(len(fit), -1), score.reshape(len(score), -1))
    self._grams: dict[tuple[str, str], np.ndarray] = {}
    self._cross: dict[tuple[str, str], np.ndarray] = {}
    self._kernels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    self._spectra: dict[tuple[str, ...], tuple[lp.Spectrum, np.ndarray]] = {}
    self._baselines: dict[str, np.ndarray] = {}

  @property
  def cells_per_view(self) -> int:
    return int(self.grid[0] * self.grid[1])

  def _gram(self, a: str, b: str) -> np.ndarray:
    if (a, b) not in self._grams:
      self._grams[(a, b)] = self.cells[a][0].T @ self.cells[b][0]
      self._grams[(b, a)] = self._grams[(a, b)].T
    return self._grams[(a, b)]

  def _cross_of(self, a: str, target: str, fit: Labels) -> np.ndarray:
    if (a, target) not in self._cross:
      self._cross[(a, target)] = self.cells[a][0].T @ fit.values
    return self._cross[(a, target)]

  def _kernel(self, a: str) -> tuple[np.ndarray, np.ndarray]:
    if a not in self._kernels:
      fit, score = self.flat[a]
      self._kernels[a] = (fit @ fit.T, score @ fit.T)
    return self._kernels[a]

  def losses(self, sources: Sequence[str], target: str, fit: Labels, score: Labels
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per scoring sample (loss, baseline loss) of the readout from `sources` (their features
    concatenated) to `target`'s labels: each (N_score,); the baseline predicts the fitting
    split's mean."""
    rows = self.cells_per_view if fit.per_cell else 1
    if target not in self._baselines:
      self._baselines[target] = lp.per_sample_errors(0.0, score.values, score.weight, rows)
    if fit.per_cell:
      gram = np.block([[self._gram(a, b) for b in sources] for a in sources])
      cross = np.concatenate([self._cross_of(a, target, fit) for a in sources])
      weights = lp.ridge_primal(gram, cross).astype(np.float32)
      dims = np.cumsum([0] + [self.cells[a][1].shape[1] for a in sources])
      pred = sum(self.cells[a][1] @ weights[dims[i]:dims[i + 1]] for i, a in enumerate(sources))
    else:
      train, k_score = self._dual(tuple(sources), fit.records, score.records)
      pred = lp.ridge_dual(train, k_score, fit.values,
                           lp.loo_penalty(train, fit.values, fit.weight))
    return lp.per_sample_errors(pred, score.values, score.weight, rows), self._baselines[target]

  def _dual(self, sources: tuple[str, ...], fit_records: np.ndarray | None,
            score_records: np.ndarray | None) -> tuple[lp.Spectrum, np.ndarray]:
    """The centred training kernel's spectrum and the centred scoring kernel of `sources`;
    kept for single sources of single-view targets, which every such target shares (one
    eigendecomposition each instead of one per target)."""
    shared = len(sources) == 1 and fit_records is None and score_records is None
    if shared and sources in self._spectra:
      return self._spectra[sources]
    k_fit, k_score = lp.center_kernels(*self._sample_kernels(sources, fit_records,
                                                             score_records))
    out = lp.spectrum(k_fit), k_score
    if shared:
      self._spectra[sources] = out
    return out

  def _sample_kernels(self, sources: Sequence[str], fit_records: np.ndarray | None,
                      score_records: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Linear kernels of the samples' features, every view of a sample and every source
    concatenated: the sum of the per-view, per-source kernels."""
    rf = np.arange(self.num_fit)[:, None] if fit_records is None else np.asarray(fit_records)
    rs = (np.arange(self.num_score)[:, None] if score_records is None
          else np.asarray(score_records))
    k_fit, k_score = np.zeros((len(rf), len(rf))), np.zeros((len(rs), len(rf)))
    for a in sources:
      kf, ks = self._kernel(a)
      for v in range(rf.shape[1]):
        k_fit += kf[np.ix_(rf[:, v], rf[:, v])]
        k_score += ks[np.ix_(rs[:, v], rf[:, v])]
    return k_fit, k_score


@dataclasses.dataclass
class ProbeResult:
  """What `probe_targets` measured.

  Attributes:
    names: the bank's networks, in order.
    scores: (S, S) held-out R^2 of the first-order readout from network i to target j (its own
      network on the diagonal); NaN in the columns of networks that are no target.
    per_target: {target: `affinity.TargetLosses`} of its candidates, ready for
      `affinity.affinity_table` (scratch_losses: the baseline's, the fitting split's mean).
    errors: {(sources, target): (loss, baseline)} per scoring sample.
  """

  names: list[str]
  scores: np.ndarray
  per_target: dict[str, affinity.TargetLosses]
  errors: dict[tuple[tuple[str, ...], str], tuple[np.ndarray, np.ndarray]]


def probe_targets(probe: Probe, labels: Mapping[str, tuple[Labels, Labels]], beam: int,
                  max_order: int) -> ProbeResult:
  """Every candidate of every target (`labels`: {target: (fit, score)}, each target a network
  of the probe): first order from every other network, its own network, and orders 2 to
  `max_order` over its `beam` best first-order sources by held-out R^2 (sources sorted by
  name, as `make_transfer`)."""
  names = probe.names
  idx = {n: i for i, n in enumerate(names)}
  scores = np.full((len(names), len(names)), np.nan)
  errors: dict[tuple[tuple[str, ...], str], tuple[np.ndarray, np.ndarray]] = {}
  per_target = {}
  for t, (fit, score) in labels.items():
    if t not in idx:
      raise ValueError(f"target {t!r} has no network among {', '.join(names)}")
    for s in names:
      errors[((s,), t)] = probe.losses((s,), t, fit, score)
      scores[idx[s], idx[t]] = lp.r2(*errors[((s,), t)])
    others = [s for s in names if s != t]
    best = sorted(others, key=lambda s, t=t: (-scores[idx[s], idx[t]], idx[s]))[:beam]
    high = [tuple(sorted(c)) for k in range(2, max_order + 1)
            for c in itertools.combinations(best, k)]
    for combo in high:
      errors[(combo, t)] = probe.losses(combo, t, fit, score)
    candidates = [(s,) for s in others] + high
    self_loss, baseline = errors[((t,), t)]
    per_target[t] = affinity.TargetLosses(
        candidates=candidates, losses=np.stack([errors[(c, t)][0] for c in candidates]),
        self_losses=self_loss, scratch_losses=baseline)
  return ProbeResult(names, scores, per_target, errors)


def probe_table(result: ProbeResult, source: str = "probe estimator") -> AffinityTable:
  """The probe's `AffinityTable`: the AHP of every target's candidates' and own network's
  held-out per-sample losses, as the transfers' table (`affinity.affinity_table`), affinities
  only (no Quality or Gain: nothing was trained). With continuous losses the BIP's optimum is
  rarely tied, unlike on rank tables (docs/estimators.md, "The linear probe")."""
  return AffinityTable(affinity=affinity.affinity_table(result.per_target).affinity,
                       source=source)


def run_labels(run, targets: Sequence[str], grid: tuple[int, int]
               ) -> dict[str, tuple[Labels, Labels]]:
  """{target: (fit, score) Labels} of a pipeline run (`transfer.pipeline.Run`)."""
  views = [run.views(s) for s in (FIT_SPLIT, SCORE_SPLIT)]
  out = {}
  for t in targets:
    spec = tasks.get(t)
    if kind_of(spec) == REPRESENTATION:
      out[t] = representation_labels(*[run.rep(t, s) for s in (FIT_SPLIT, SCORE_SPLIT)])
    else:
      out[t] = split_labels(spec, *[(v.target(t), v.mask(t), v.records(t)) for v in views],
                            grid)
  return out
