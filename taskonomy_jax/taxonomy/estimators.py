"""Task relations from frozen representations alone: RSA and linear CKA, no transfer trained.

Taskonomy measures a source's value for a target by training a readout from the source's
representation to the target and scoring it on held-out views (thousands of transfers). Later
work estimates the same relations from the frozen task networks on a few hundred images:

- **RSA** (Representation Similarity Analysis; Dwivedi and Roig, "Representation Similarity
  Analysis for Efficient Task Taxonomy & Transfer Learning", CVPR 2019): each network's
  image-by-image dissimilarity matrix (RDM, 1 - Pearson correlation between the two images'
  representations), and the Spearman correlation of two networks' RDMs over their upper
  triangles. Invariant to scaling and shifting each image's representation, to permuting the
  feature dimensions, and to any strictly increasing map of the dissimilarities.
- **Linear CKA** (centred kernel alignment; Kornblith et al., "Similarity of Neural Network
  Representations Revisited", ICML 2019): the alignment of two networks' centred linear Gram
  matrices, <HKH, HLH> / (||HKH|| ||HLH||). Invariant to orthogonal maps and isotropic scaling
  of either representation and to shifting it (not to general invertible linear maps).

Both are symmetric, 1 for identical representations, near 0 for unrelated ones. `all_pairs`
scores every pair of a bank's networks at once (one compiled program: per network an N x N
matrix, then one matrix product); `bootstrap` redraws the images with replacement (a fixed
seed) and rescoring costs only index gathers. A target's row of the matrix ranks the sources by
their similarity to the target's own network (`rankings`); `affinity_table` turns it into the
`AffinityTable` the BIP reads, and `served_from` / `measured_quality` score a supervised set on
a transfer-based table (Quality and Gain of the transfers it allows).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer

Measure = Literal["rsa", "cka"]
MEASURES: tuple[Measure, ...] = ("rsa", "cka")
RDM_STEPS = 2.0**20  # dissimilarities in [0, 2] are kept to ~1e-6


def flatten(reps: np.ndarray) -> np.ndarray:
  """(N, ...) representations -> (N, D) float32 (a 16x16x8 grid -> 2048 features)."""
  reps = np.asarray(reps, np.float32)
  return reps.reshape(len(reps), -1)


# --- the per-network matrices ----------------------------------------------------------------

def gram(x: jax.Array) -> jax.Array:
  """Linear kernel of the images: x (N, D) -> (N, N) x x^T (uncentred)."""
  return x @ x.T


def center(k: jax.Array) -> jax.Array:
  """H K H with H = I - 11^T/N: (..., N, N) -> (..., N, N). For a linear kernel this equals the
  Gram matrix of the feature-centred representation."""
  return (k - k.mean(-1, keepdims=True) - k.mean(-2, keepdims=True)
          + k.mean((-2, -1), keepdims=True))


def rdm(x: jax.Array) -> jax.Array:
  """Representational dissimilarity matrix: x (N, D) -> (N, N), 1 - Pearson correlation of
  each pair of images' representations (over the D features), 0 on the diagonal. Rounded to
  multiples of 2^-20, so that equal dissimilarities (repeated images) tie exactly however the
  compiled program ordered its sums, and take Spearman's midranks."""
  z = x - x.mean(1, keepdims=True)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  return jnp.round((1.0 - z @ z.T) * RDM_STEPS) / RDM_STEPS


# --- comparing the matrices ------------------------------------------------------------------

def _global_ranks(rdms: jax.Array) -> jax.Array:
  """Each network's ranks of its distinct-image dissimilarities: (T, N, N) RDMs -> (T, N, N)
  int32, symmetric, in 0 .. N(N-1)/2 - 1 off the diagonal (one sort per network). Tied values
  share the lowest rank of their run, so `_rsa`'s counting gives them their midrank."""
  t, n = rdms.shape[:2]
  iu = np.triu_indices(n, 1)
  upper = rdms[:, iu[0], iu[1]]
  order = jnp.argsort(upper, axis=-1)
  ordered = jnp.take_along_axis(upper, order, -1)
  pos = jnp.arange(order.shape[-1], dtype=jnp.int32)
  new = jnp.concatenate([jnp.ones((t, 1), bool), ordered[:, 1:] != ordered[:, :-1]], axis=-1)
  start = jax.lax.cummax(jnp.where(new, pos, 0), axis=1)
  ranks = jnp.zeros(order.shape, jnp.int32).at[jnp.arange(t)[:, None], order].set(start)
  out = jnp.zeros((t, n, n), jnp.int32).at[:, iu[0], iu[1]].set(ranks)
  return out + jnp.swapaxes(out, 1, 2)


def _correlations(a: jax.Array, w: jax.Array) -> jax.Array:
  """Pearson correlations between the rows of a (T, M), each entry weighted by w (M,) in {0, 1}:
  (T, T)."""
  n = w.sum()
  mean = (a * w).sum(-1, keepdims=True) / n
  z = (a - mean) * w
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  return z @ z.T


def _cka(grams: jax.Array, idx: jax.Array) -> jax.Array:
  """(T, N, N) uncentred Gram matrices, the images drawn `idx` (N,) -> (T, T) linear CKA."""
  g = center(grams[:, idx][:, :, idx]).reshape(len(grams), -1)
  g = g / jnp.maximum(jnp.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
  return g @ g.T


def _rsa(ranks: jax.Array, idx: jax.Array) -> jax.Array:
  """(T, N, N) `_global_ranks`, the images drawn `idx` (N,) -> (T, T) RSA (Spearman).

  The drawn pairs of distinct images are a multiset of the full sample's pairs, so their ranks
  among themselves follow from the full ranks by counting (no sort per draw): a pair's rank is
  the number of drawn pairs below it, plus the midrank among those tied with it (its own copies
  and equal dissimilarities: Spearman's tie rule). Pairs of one image drawn twice have
  dissimilarity 0 in every network and are left out.
  """
  t, n = ranks.shape[:2]
  iu = np.triu_indices(n, 1)
  a, b = idx[iu[0]], idx[iu[1]]
  valid = a != b
  w = valid.astype(jnp.float32)
  r = jnp.where(valid, ranks[:, a, b], 0)  # (T, M) full-sample ranks of the drawn pairs
  rows = jnp.arange(t)[:, None]
  counts = jnp.zeros((t, len(iu[0])), jnp.float32).at[rows, r].add(w)
  below = jnp.cumsum(counts, axis=-1) - counts
  mid = jnp.take_along_axis(below, r, -1) + (jnp.take_along_axis(counts, r, -1) - 1) / 2
  return _correlations(mid, w)


def _prepare(measure: Measure, reps: tuple[jax.Array, ...]) -> jax.Array:
  """T arrays (N, D_t) -> the (T, N, N) matrices a draw of images is scored from."""
  if measure == "cka":
    return jnp.stack([gram(x) for x in reps])
  return _global_ranks(jnp.stack([rdm(x) for x in reps]))


def _score(measure: Measure, prepared: jax.Array, idx: jax.Array) -> jax.Array:
  return (_cka if measure == "cka" else _rsa)(prepared, idx)


@functools.partial(jax.jit, static_argnums=0)
def _all_pairs(measure: Measure, reps: tuple[jax.Array, ...]) -> jax.Array:
  return _score(measure, _prepare(measure, reps), jnp.arange(reps[0].shape[0]))


def all_pairs(reps: np.ndarray | Sequence[np.ndarray], measure: Measure) -> np.ndarray:
  """Every pair of networks: reps (T, N, D), or T arrays (N, ...) of any widths -> (T, T)
  symmetric scores, 1 on the diagonal (0 for a representation that does not vary). Jit-compiled
  once per (measure, shapes)."""
  check_measure(measure)
  return np.asarray(_all_pairs(measure, _stack(reps)), np.float64)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
  """Linear CKA of two representations of the same N images: x (N, D), y (N, E) -> float in
  [0, 1]."""
  return float(all_pairs(_pair(x, y), "cka")[0, 1])


def rsa(x: np.ndarray, y: np.ndarray) -> float:
  """RSA of two representations of the same N images: x (N, D), y (N, E) -> Spearman
  correlation of their RDMs' upper triangles, in [-1, 1]."""
  return float(all_pairs(_pair(x, y), "rsa")[0, 1])


def _pair(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
  x, y = flatten(x), flatten(y)
  if len(x) != len(y):
    raise ValueError(f"x and y must represent the same images: {len(x)} vs {len(y)} rows")
  return [x, y]


def _stack(reps: np.ndarray | Sequence[np.ndarray]) -> tuple[jax.Array, ...]:
  """T representations of the same N images, each flattened: a tuple of (N, D_t) arrays."""
  arrays = [flatten(r) for r in reps]
  rows = {len(a) for a in arrays}
  if len(rows) != 1:
    raise ValueError(f"every network must represent the same images: got {sorted(rows)} rows")
  if arrays[0].shape[0] < 4:
    raise ValueError(f"need at least 4 images, got {arrays[0].shape[0]}")
  return tuple(jnp.asarray(a) for a in arrays)


def check_measure(measure: str) -> Measure:
  if measure not in MEASURES:
    raise ValueError(f"unknown measure {measure!r}; measures: {', '.join(MEASURES)}")
  return measure  # type: ignore[return-value]


@functools.partial(jax.jit, static_argnums=0)
def _resampled(measure: Measure, reps: tuple[jax.Array, ...], draws: jax.Array) -> jax.Array:
  prepared = _prepare(measure, reps)
  return jax.lax.map(functools.partial(_score, measure, prepared), draws)


def resample_images(n: int, num_resamples: int, seed: int = 0) -> np.ndarray:
  """(num_resamples, n) image indices drawn with replacement (numpy's PCG64 with `seed`)."""
  return np.random.default_rng(seed).integers(0, n, size=(num_resamples, n))


def bootstrap(reps: np.ndarray | Sequence[np.ndarray], measure: Measure,
              num_resamples: int = 200, seed: int = 0) -> np.ndarray:
  """The (T, T) scores on `num_resamples` draws of the N images with replacement:
  reps (T, N, D) (or T arrays (N, ...)) -> (num_resamples, T, T). The per-network matrices
  (Gram, RDM ranks) are computed once; each draw gathers their rows and columns (RSA: `_rsa`).
  """
  check_measure(measure)
  x = _stack(reps)
  draws = jnp.asarray(resample_images(len(x[0]), num_resamples, seed))
  return np.asarray(_resampled(measure, x, draws), np.float64)


def intervals(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
  """Percentile interval of bootstrap samples (B, ...) -> (lo, hi), each (...)."""
  a = (1 - level) / 2
  return np.quantile(samples, a, axis=0), np.quantile(samples, 1 - a, axis=0)


# --- scores -> rankings -> an affinity table ---------------------------------------------------

def rankings(scores: np.ndarray, names: Sequence[str], targets: Iterable[str] | None = None
             ) -> dict[str, list[str]]:
  """Per target, the other networks ranked by their score with the target's own network, best
  first: scores (T, T) over `names` -> {target: [source, ...]} (ties: `names` order)."""
  idx = {n: i for i, n in enumerate(names)}
  out = {}
  for t in (names if targets is None else targets):
    others = [s for s in names if s != t]
    out[t] = sorted(others, key=lambda s, t=t: (-scores[idx[s], idx[t]], idx[s]))
  return out


def rank_tie_break(num_networks: int, num_targets: int) -> float:
  """The weight of the score in a rank table's entries: rank values are multiples of 1 / (2 (n -
  1)) (mean ranks of ties are halves), so two supervised sets whose rank totals over T targets
  differ, differ by at least that; T score terms in [0, 1] at this weight move a total by less,
  and the BIP's choice by rank stands (with unit target weights, as the pipeline's)."""
  return 1.0 / (2 * max(num_networks - 1, 1) * (num_targets + 1))


def nonnegative_scores(scores: np.ndarray) -> np.ndarray:
  """Scores (S,) as an affinity reads them: negatives (RSA can give them) and NaN become 0."""
  return np.where(scores > 0, scores, 0.0)  # NaN > 0 is False: 0


def source_ranks(scores: np.ndarray) -> np.ndarray:
  """One target's source scores (S,) as ranks over S: the best 1, the worst 1 / S; ties share
  their mean rank; a NaN score (no variation at all) ranks last."""
  return stats.rankdata(np.where(np.isnan(scores), -np.inf, scores)) / len(scores)


TableKind = Literal["rank", "score"]
TABLE_KINDS: tuple[TableKind, ...] = ("rank", "score")


def affinity_table(scores: np.ndarray, names: Sequence[str], targets: Iterable[str],
                   source: str = "estimator", kind: TableKind = "rank") -> AffinityTable:
  """The estimator's `AffinityTable`, in the format `taskonomy solve --data` reads.

  Per target t (a network of `names`): first-order `s -> t` for every other network s, from
  the score of s with t's own network; `self -> t` = 1.
  - kind 'rank': s's rank among t's n - 1 sources by score over n - 1, so the best source gets
    1 and the worst 1 / (n - 1) (ties share their mean rank; a NaN score, no variation at all,
    ranks last), plus `rank_tie_break(n, T)` x the kind-'score' entry (self: x 1). Per-target
    ranks weigh every target the same in the BIP, as the AHP's per-target normalisation does
    for the transfer affinities; raw scores let the targets whose sources all score high (or
    low) decide the supervised set (docs/estimators.md). Sums of ranks tie often (several
    supervised sets of a budget reach the same total), and the solver's pick among them
    followed the order the targets were given in; the score term picks, among the sets best by
    rank, the one best by score, and is too small to overrule a rank difference.
  - kind 'score': the score itself; negative scores (RSA can give them) and NaN become 0, as an
    affinity must be >= 0 and a source unrelated to the target is worth nothing.
  Higher-order transfers are omitted: the measures compare two networks, and the BIP serves
  every target from first-order transfers (or its own network) when a table has no others, at
  any allowed order. No Quality or Gain: nothing was trained.
  """
  if kind not in TABLE_KINDS:
    raise ValueError(f"unknown table kind {kind!r}; known: {', '.join(TABLE_KINDS)}")
  idx = {n: i for i, n in enumerate(names)}
  affinity: dict[Transfer, float] = {}
  for t in targets:
    if t not in idx:
      raise ValueError(f"target {t!r} has no network among {', '.join(names)}")
    others = [s for s in names if s != t]
    column = np.array([scores[idx[s], idx[t]] for s in others], np.float64)
    clipped = nonnegative_scores(column)
    if kind == "rank":
      eps = rank_tie_break(len(names), len(targets))
      values = source_ranks(column) + eps * np.minimum(clipped, 1.0)
      affinity[Transfer((SELF,), t)] = 1.0 + eps
    else:
      values = clipped
      affinity[Transfer((SELF,), t)] = 1.0
    for s, v in zip(others, values, strict=True):
      affinity[make_transfer([s], t)] = float(v)
  return AffinityTable(affinity, source=source)


def table_rankings(table: AffinityTable) -> dict[str, list[str]]:
  """Per target, the first-order sources of `table` best first (ties: by name); the inverse of
  `affinity_table` on its rankings."""
  out: dict[str, list[tuple[float, str]]] = {}
  for tr, a in table.affinity.items():
    if tr.order == 1 and not tr.is_self:
      out.setdefault(tr.target, []).append((-a, tr.sources[0]))
  return {t: [s for _, s in sorted(v)] for t, v in sorted(out.items())}


# --- a supervised set measured on a transfer-based table ---------------------------------------

def served_from(table: AffinityTable, targets: Iterable[str], supervised: Iterable[str],
                order: int) -> dict[str, Transfer | None]:
  """Per target, the transfer of `table` the BIP would serve it with once `supervised` is fixed:
  its own network if supervised, else the highest-affinity transfer of order <= `order` whose
  sources are all supervised (None when there is none)."""
  sup = set(supervised)
  out: dict[str, Transfer | None] = {}
  for t in targets:
    own = Transfer((SELF,), t)
    if t in sup and own in table.affinity:
      out[t] = own
      continue
    ok = [(a, tr) for tr, a in table.affinity.items()
          if tr.target == t and not tr.is_self and tr.order <= order and set(tr.sources) <= sup]
    out[t] = max(ok, key=lambda p: (p[0], -p[1].order))[1] if ok else None
  return out


def measured_quality(table: AffinityTable, served: Mapping[str, Transfer | None]) -> dict:
  """Quality and Gain (win rates, from `table`) of one transfer per target: {per_target:
  {target: {transfer, quality, gain}}, mean_quality, mean_gain} (means None when a target is
  unserved or unmeasured). A target's own network has Quality 0.5 by definition."""
  rows = {}
  for t, tr in served.items():
    q = None if tr is None else table.quality.get(tr, 0.5 if tr.is_self else None)
    g = None if tr is None else table.gain.get(tr)
    rows[t] = {"transfer": None if tr is None else str(tr), "quality": q, "gain": g}

  def mean(key):
    vals = [r[key] for r in rows.values()]
    return None if not vals or None in vals else float(np.mean(vals))
  return {"per_target": rows, "mean_quality": mean("quality"), "mean_gain": mean("gain")}
