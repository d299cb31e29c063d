"""Ordinal normalisation of transfer results: tournaments, win rates and AHP (paper Sec. 3.3).

Raw transfer losses are not comparable across targets (an L1 on depth and a cross entropy on
scene classes live on different scales), so the paper turns them into ordinal statements ("source
i beat source j on x% of held-out images") and reads one affinity vector per target off the
principal eigenvector of the resulting Analytic Hierarchy Process (AHP) matrix.
"""

from __future__ import annotations

import numpy as np

# The paper clips win rates to [0.001, 0.999] before forming the ratio matrix, so a source that
# won every comparison gets a large but finite ratio instead of a division by zero.
WIN_RATE_CLIP = (0.001, 0.999)


def win_rate(losses_a: np.ndarray, losses_b: np.ndarray) -> float:
  """Fraction of examples on which `a` has the lower loss; ties count one half.

  Args:
    losses_a: (N,) per-example losses of the first model on held-out examples.
    losses_b: (N,) per-example losses of the second model on the same examples.

  Returns:
    A float in [0, 1]. This is the paper's Quality when `b` is the fully supervised network of
    the target, and its Gain when `b` is a network trained from scratch on the transfer budget.
  """
  a, b = np.asarray(losses_a, np.float64), np.asarray(losses_b, np.float64)
  if a.ndim != 1 or a.shape != b.shape or a.size == 0:
    raise ValueError(f"win_rate needs two non-empty (N,) arrays of one shape, got {a.shape} and "
                     f"{b.shape}")
  return float(np.mean((a < b) + 0.5 * (a == b)))


def tournament_matrix(losses: np.ndarray) -> np.ndarray:
  """Pairwise win rates between the candidate sources of one target.

  Args:
    losses: (S, N) per-example held-out losses, one row per candidate transfer to the target.

  Returns:
    (S, S) matrix W with W[i, j] = fraction of examples on which source i beat source j (ties
    count one half); W + W.T = 1 off the diagonal, and the diagonal is 0.5.
  """
  losses = np.asarray(losses, np.float64)
  if losses.ndim != 2 or losses.shape[1] == 0:
    raise ValueError(f"tournament_matrix needs (S, N) losses with N > 0, got {losses.shape}")
  if not np.all(np.isfinite(losses)):
    raise ValueError("tournament_matrix got NaN or infinite losses")
  a, b = losses[:, None, :], losses[None, :, :]
  return np.mean((a < b) + 0.5 * (a == b), axis=-1)


def ahp_affinities(wins: np.ndarray) -> np.ndarray:
  """Affinity of each candidate source for one target from its tournament matrix (Sec. 3.3).

  W is clipped to [0.001, 0.999], W' = W / W.T elementwise (how many times better i is than j),
  and the affinities are W''s principal eigenvector, scaled to sum to 1 (as in the published
  affinities, where each target's candidates sum to 1).

  Args:
    wins: (S, S) tournament matrix, W[i, j] + W[j, i] = 1.

  Returns:
    (S,) positive affinities summing to 1; higher is a better source for the target.
  """
  wins = np.asarray(wins, np.float64)
  if wins.ndim != 2 or wins.shape[0] != wins.shape[1] or wins.shape[0] == 0:
    raise ValueError(f"ahp_affinities needs a square (S, S) matrix, got {wins.shape}")
  if not np.all((wins >= 0) & (wins <= 1)):
    raise ValueError("tournament win rates must lie in [0, 1]")
  clipped = np.clip(wins, *WIN_RATE_CLIP)
  ratios = clipped / clipped.T
  # W' is strictly positive, so Perron-Frobenius gives a unique positive principal eigenvector.
  eigenvalues, eigenvectors = np.linalg.eig(ratios)
  principal = np.real(eigenvectors[:, np.argmax(np.real(eigenvalues))])
  principal = np.abs(principal)
  return principal / principal.sum()


def affinities_from_losses(losses: np.ndarray) -> np.ndarray:
  """(S, N) held-out losses of S candidate transfers to one target -> (S,) AHP affinities."""
  return ahp_affinities(tournament_matrix(losses))
