"""Closed-form linear readouts: how much of a target's labels a frozen representation holds.

A directed, training-free estimate of transfer (the linear-probe family of transferability
estimates, e.g. H-score, Bao et al. 2019; LogME, You et al., ICML 2021): for sources s and a
target t, ridge regression from the sources' representations to t's labels, solved in closed
form on the transfer split (the views the readouts train on), scored by its held-out R^2 on the
test views (those the tournaments score). It mirrors a readout linearly:

- pixel targets: each representation cell's features predict that cell's block of target
  pixels (the readout's 1x1 head and depth-to-space, without its two 3x3 convs: a 3x3
  neighbourhood of cells took twice the time for the same taxonomies, docs/tried_and_dropped.md),
  every cell a sample (the primal problem, features x features);
- vector and class targets: the whole grid of every view of a sample predicts its vector (the
  readout's FC head), in the dual (samples x samples: ~660 samples, 2,048 features a view).

Combinations of sources concatenate their features, as the readouts stack them; their normal
equations are blocks of the pairwise ones, computed once per pair. Unlike RSA and CKA this
uses the target's labels (not its network) and is directed, so a source can hold more of a
target than the target's own network and a combination more than each of its parts.

Shapes: N views, a (N, h, w, c) representation grid over (N, H, W[, C]) pixel targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Ridge penalty: this fraction of the mean diagonal of the (centred) normal-equation matrix.
PENALTY = 1e-2


def cells(rep: np.ndarray) -> np.ndarray:
  """A representation grid's cells as rows: (N, h, w, c) -> (N * h * w, c) float32."""
  rep = np.asarray(rep, np.float32)
  return rep.reshape(-1, rep.shape[-1])


def cell_blocks(y: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """Pixel targets by representation cell: (N, H, W[, C]) -> (N * h * w, (H/h) (W/w) C), the
  rows in `cells`' order."""
  y = np.asarray(y, np.float32)
  n, hh, ww = y.shape[:3]
  h, w = grid
  if hh % h or ww % w:
    raise ValueError(f"target {hh}x{ww} is not a whole number of {h}x{w} cells")
  y = y.reshape(n, h, hh // h, w, ww // w, -1).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n * h * w, -1)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(...) int -> (..., num_classes) float32."""
  return (np.asarray(labels)[..., None] == np.arange(num_classes)).astype(np.float32)


def standardizer(y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-column (mean, std) of rows y (n, k) over rows weighted 0/1 by `weight` (n, k)."""
  count = np.maximum(weight.sum(0), 1.0)
  mean = (y * weight).sum(0) / count
  var = (((y - mean) ** 2) * weight).sum(0) / count
  return mean, np.sqrt(var) + 1e-6


def _penalised(a: np.ndarray, penalty: float) -> np.ndarray:
  lam = penalty * max(float(np.mean(np.diag(a))), 1e-12)
  return a + lam * np.eye(len(a), dtype=a.dtype)


def ridge_primal(gram: np.ndarray, cross: np.ndarray, penalty: float = PENALTY) -> np.ndarray:
  """Ridge weights (d, k) from centred normal equations: gram (d, d) = X^T X, cross (d, k) =
  X^T Y."""
  return np.linalg.solve(_penalised(np.asarray(gram, np.float64), penalty),
                         np.asarray(cross, np.float64))


def center_kernels(k_train: np.ndarray, k_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Linear kernels of features centred on the training samples' mean: k_train (n, n) =
  X X^T, k_test (m, n) = X_test X^T -> the same of (X - mu), (X_test - mu)."""
  col = k_train.mean(0)
  total = col.mean()
  return (k_train - col[None] - col[:, None] + total,
          k_test - k_test.mean(1, keepdims=True) - col[None] + total)


def per_sample_errors(pred: np.ndarray | float, y: np.ndarray, weight: np.ndarray,
                      rows_per_sample: int) -> np.ndarray:
  """Per-sample weighted squared errors of centred predictions `pred` against centred targets
  y, both (n * rows_per_sample, k), summed over each sample's rows -> (n,). `pred` 0 gives the
  training mean's errors (the baseline; `r2`'s denominator)."""
  err = np.asarray(pred - y)  # a new array: squared and weighted in place
  err *= err
  err *= weight
  return err.sum(1).reshape(-1, rows_per_sample).sum(1)


def r2(sse: np.ndarray, sst: np.ndarray) -> float:
  """Held-out R^2 = 1 - sum(sse) / sum(sst) over samples (`per_sample_errors` of the
  predictions and of the mean)."""
  return float(1.0 - sse.sum() / max(sst.sum(), 1e-12))


# Penalties the dual problem chooses from by leave-one-out error, as fractions of its kernel's
# mean eigenvalue: with ~660 samples and 2,048-6,144 features a fixed small penalty
# interpolates the training samples, and every source scored below the mean (negative R^2).
DUAL_PENALTIES = tuple(10.0**k for k in range(-3, 4))


@dataclasses.dataclass(frozen=True)
class Spectrum:
  """A centred training kernel's eigendecomposition, from which kernel ridge at any penalty
  and its leave-one-out errors are a few matrix products (the probe tries several penalties).

  Attributes:
    values: (n,) eigenvalues, negative round-off clipped to 0.
    vectors: (n, n) eigenvectors in columns.
  """

  values: np.ndarray
  vectors: np.ndarray

  @property
  def scale(self) -> float:
    """The mean eigenvalue (= the kernel's mean diagonal), the unit of the dual penalties."""
    return max(float(self.values.mean()), 1e-12)

  def shrinkage(self, penalty: float) -> np.ndarray:
    """(n,) eigenvalue / (eigenvalue + penalty x scale): the hat matrix's spectrum."""
    return self.values / (self.values + penalty * self.scale)


def spectrum(k_train: np.ndarray) -> Spectrum:
  """The `Spectrum` of a centred linear kernel k_train (n, n) (`center_kernels`)."""
  values, vectors = np.linalg.eigh(np.asarray(k_train, np.float64))
  return Spectrum(np.maximum(values, 0.0), vectors)


def ridge_dual(train: Spectrum, k_test: np.ndarray, y: np.ndarray, penalty: float = PENALTY
               ) -> np.ndarray:
  """Kernel ridge predictions (m, k) of centred targets y (n, k) from the training kernel's
  spectrum and the centred test kernel k_test (m, n): K_test (K + penalty x scale I)^-1 y."""
  coef = (train.vectors.T @ np.asarray(y, np.float64)) / (
      train.values + penalty * train.scale)[:, None]
  return np.asarray(k_test, np.float64) @ (train.vectors @ coef)


def loo_penalty(train: Spectrum, y: np.ndarray, weight: np.ndarray,
                penalties: tuple[float, ...] = DUAL_PENALTIES) -> float:
  """The penalty (a fraction of the kernel's mean eigenvalue, as `ridge_dual`'s) with the
  least weighted leave-one-out squared error of kernel ridge on centred targets y (n, k): each
  sample's left-out residual is (y - H y)_i / (1 - H_ii), H the hat matrix."""
  y = np.asarray(y, np.float64)
  vy, squares = train.vectors.T @ y, train.vectors**2
  best, best_err = penalties[0], np.inf
  for p in penalties:
    shrink = train.shrinkage(p)
    fitted = train.vectors @ (shrink[:, None] * vy)
    leverage = np.minimum(squares @ shrink, 1.0 - 1e-9)
    err = float(((((y - fitted) / (1.0 - leverage)[:, None]) ** 2) * weight).sum())
    if err < best_err:
      best, best_err = p, err
  return best
