"""AHP normalisation and win rates on known answers and the paper's stated properties."""

import json

import numpy as np
import pytest

from taskonomy_jax.taxonomy import ahp


def _consistent_wins(weights):
  """W[i, j] = w_i / (w_i + w_j): then W / W.T = w_i / w_j exactly, a consistent AHP matrix."""
  w = np.asarray(weights, np.float64)
  return w[:, None] / (w[:, None] + w[None, :])


@pytest.mark.parametrize("seed", range(20))
def test_consistent_matrices_recover_their_weights(seed):
  rng = np.random.default_rng(seed)
  # Keep ratios inside the clip range so W is not clipped.
  weights = rng.uniform(1.0, 50.0, size=rng.integers(2, 12))
  recovered = ahp.ahp_affinities(_consistent_wins(weights))
  np.testing.assert_allclose(recovered, weights / weights.sum(), rtol=1e-9)


def test_two_sources_closed_form():
  # For S = 2 the principal eigenvector of [[1, r], [1/r, 1]] is proportional to (r, 1).
  p = 0.8
  r = p / (1 - p)
  np.testing.assert_allclose(ahp.ahp_affinities(np.array([[0.5, p], [1 - p, 0.5]])),
                             [r / (1 + r), 1 / (1 + r)])


def test_affinities_are_positive_sum_to_one_and_follow_dominance():
  rng = np.random.default_rng(0)
  # Source k's losses are shifted by k: a lower index is better on most examples.
  losses = rng.normal(size=(6, 500)) + np.arange(6)[:, None] * 0.5
  aff = ahp.affinities_from_losses(losses)
  assert np.all(aff > 0) and aff.sum() == pytest.approx(1.0)
  assert list(np.argsort(-aff)) == list(range(6))


def test_permutation_equivariance():
  rng = np.random.default_rng(1)
  losses = rng.normal(size=(7, 300))
  perm = rng.permutation(7)
  np.testing.assert_allclose(ahp.affinities_from_losses(losses[perm]),
                             ahp.affinities_from_losses(losses)[perm], rtol=1e-9)


def test_clipping_keeps_a_perfect_winner_finite():
  wins = np.array([[0.5, 1.0, 1.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])
  aff = ahp.ahp_affinities(wins)
  assert np.all(np.isfinite(aff))
  # The clipped ratio of winner to loser is 0.999 / 0.001 = 999, for each loser.
  assert aff[0] / aff[1] == pytest.approx(999.0, rel=1e-6)
  assert aff[1] == pytest.approx(aff[2])


def test_tournament_matrix_against_brute_force():
  rng = np.random.default_rng(2)
  losses = rng.integers(0, 4, size=(5, 40)).astype(float)  # many ties
  wins = ahp.tournament_matrix(losses)
  for i in range(5):
    for j in range(5):
      expected = sum(1.0 if a < b else 0.5 if a == b else 0.0
                     for a, b in zip(losses[i], losses[j], strict=True)) / 40
      assert wins[i, j] == pytest.approx(expected)
      assert wins[i, j] == pytest.approx(ahp.win_rate(losses[i], losses[j]))
  np.testing.assert_allclose(wins + wins.T, np.ones((5, 5)))


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="square"):
    ahp.ahp_affinities(np.ones((2, 3)) * 0.5)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    ahp.ahp_affinities(np.array([[0.5, 2.0], [-1.0, 0.5]]))
  with pytest.raises(ValueError, match="NaN"):
    ahp.tournament_matrix(np.array([[np.nan, 1.0], [0.0, 1.0]]))
  with pytest.raises(ValueError, match=r"\(N,\)"):
    ahp.win_rate(np.ones(3), np.ones(4))


def test_published_affinities_have_the_ahp_normalisation(paper_results_dir):
  # Every published target's candidates (all orders, plus `self`) sum to 1, as AHP's scaled
  # eigenvector does, and every affinity is positive.
  data = json.loads((paper_results_dir / "all_affinities.json").read_text())
  totals = {}
  for key, value in data.items():
    assert value > 0, key
    target = key.split("__")[-1]
    totals[target] = totals.get(target, 0.0) + value
  assert len(totals) == 22
  for target, total in totals.items():
    assert total == pytest.approx(1.0, abs=1e-6), target
