"""The linear-probe estimator (taxonomy/linear_probe.py, transfer/probe.py): layouts, ridge and
its leave-one-out penalty against brute force, labels of every kind, and a bank's probe -> AHP
table -> solver."""

from __future__ import annotations

import numpy as np
import pytest

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import api
from taskonomy_jax.taxonomy import linear_probe as lp
from taskonomy_jax.transfer import probe as probe_lib


def test_cells_and_cell_blocks_line_up_cell_by_cell():
  rep = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
  f = lp.cells(rep)
  assert f.shape == (2 * 3 * 4, 1)
  np.testing.assert_array_equal(f[:, 0], rep.ravel())
  # A target that repeats each cell's value over its 2x2 block of pixels: every row of the
  # cell's block holds that cell's value only, in the rows' order.
  image = np.repeat(np.repeat(rep[..., 0], 2, axis=1), 2, axis=2)  # (2, 6, 8)
  blocks = lp.cell_blocks(image, (3, 4))
  assert blocks.shape == (24, 4)
  np.testing.assert_array_equal(blocks, np.repeat(rep.reshape(-1, 1), 4, axis=1))
  with pytest.raises(ValueError, match="whole number"):
    lp.cell_blocks(image[:, :5], (3, 4))


def test_ridge_recovers_a_linear_map_and_scores_unrelated_features_near_zero():
  gen = np.random.default_rng(0)
  x, x_test = gen.normal(size=(500, 6)), gen.normal(size=(200, 6))
  a = gen.normal(size=(6, 3))
  w = lp.ridge_primal(x.T @ x, x.T @ (x @ a), penalty=1e-8)
  np.testing.assert_allclose(w, a, atol=1e-5)
  ones = np.ones((200, 3))
  y_test = x_test @ a
  assert lp.r2(lp.per_sample_errors(x_test @ w, y_test, ones, 1),
               lp.per_sample_errors(0.0, y_test, ones, 1)) == pytest.approx(1.0)
  noise, noise_test = gen.normal(size=(500, 3)), gen.normal(size=(200, 3))
  w = lp.ridge_primal(x.T @ x, x.T @ noise)
  score = lp.r2(lp.per_sample_errors(x_test @ w, noise_test, ones, 1),
                lp.per_sample_errors(0.0, noise_test, ones, 1))
  assert -0.1 < score < 0.02


def test_centred_kernels_are_those_of_centred_features():
  gen = np.random.default_rng(1)
  x, x_test = gen.normal(size=(30, 5)) + 3, gen.normal(size=(10, 5)) - 1
  k, k_test = lp.center_kernels(x @ x.T, x_test @ x.T)
  mu = x.mean(0)
  np.testing.assert_allclose(k, (x - mu) @ (x - mu).T, atol=1e-9)
  np.testing.assert_allclose(k_test, (x_test - mu) @ (x - mu).T, atol=1e-9)


def test_leave_one_out_penalty_matches_refitting_without_each_sample():
  gen = np.random.default_rng(2)
  x = gen.normal(size=(25, 40))  # more features than samples, as a view's whole grid
  y = x[:, :3] @ gen.normal(size=(3, 2)) + 0.5 * gen.normal(size=(25, 2))
  weight = np.ones_like(y)
  y = y - y.mean(0)
  kernel = x @ x.T
  scale = np.linalg.eigvalsh(kernel).mean()

  def brute_force(p):  # refit kernel ridge on all samples but i, predict i
    err = 0.0
    for i in range(len(x)):
      keep = np.arange(len(x)) != i
      alpha = np.linalg.solve(kernel[np.ix_(keep, keep)] + p * scale * np.eye(len(x) - 1),
                              y[keep])
      err += float(((kernel[i, keep] @ alpha - y[i]) ** 2).sum())
    return err
  errors = {p: brute_force(p) for p in lp.DUAL_PENALTIES}
  train = lp.spectrum(kernel)
  assert lp.loo_penalty(train, y, weight) == min(errors, key=errors.get)
  # unrelated targets are best predicted by the mean: the largest penalty
  assert lp.loo_penalty(train, gen.normal(size=(25, 2)), weight) >= 100
  # the spectral predictions are those of the penalised normal equations
  x_test = gen.normal(size=(7, 40))
  np.testing.assert_allclose(
      lp.ridge_dual(train, x_test @ x.T, y, 0.1),
      x_test @ x.T @ np.linalg.solve(kernel + 0.1 * scale * np.eye(len(x)), y), rtol=1e-7,
      atol=1e-9)


# --- a bank of three "networks" on 4x4 grids of 8x8-pixel views ---------------------------------

GRID, SIDE = 4, 16


def _bank(gen, n):
  """Representations (N, 4, 4, 3) of a network that sees depth, one that sees a vector target's
  signal, and random projection; labels built from them."""
  depthish = gen.normal(size=(n, GRID, GRID, 3)).astype(np.float32)
  vectorish = gen.normal(size=(n, GRID, GRID, 3)).astype(np.float32)
  rand = gen.normal(size=(n, GRID, GRID, 3)).astype(np.float32)
  # depth: each cell's block of pixels is a fixed linear map of the cell's features
  depth = np.repeat(np.repeat(depthish @ np.array([1.0, -2.0, 0.5], np.float32), 4, 1), 4, 2)
  layout = vectorish.reshape(n, -1)[:, :9] * 2.0
  return ({"depth_zbuffer": depthish, "room_layout": vectorish, "random": rand},
          (depth[..., None], np.ones((n, SIDE, SIDE), np.float32), None),
          (layout, np.ones(n, np.float32), None))


def test_a_bank_probe_finds_the_sources_that_hold_each_target_and_solves():
  gen = np.random.default_rng(4)
  fit_reps, fit_depth, fit_layout = _bank(gen, 120)
  score_reps, score_depth, score_layout = _bank(gen, 60)
  probe = probe_lib.Probe(fit_reps, score_reps)
  labels = {
      "depth_zbuffer": probe_lib.split_labels(tasks.get("depth_zbuffer"), fit_depth,
                                              score_depth, probe.grid),
      "room_layout": probe_lib.split_labels(tasks.get("room_layout"), fit_layout, score_layout,
                                            probe.grid)}
  result = probe_lib.probe_targets(probe, labels, beam=2, max_order=2)
  idx = {n: i for i, n in enumerate(result.names)}
  assert result.scores[idx["depth_zbuffer"], idx["depth_zbuffer"]] > 0.99
  assert result.scores[idx["room_layout"], idx["room_layout"]] > 0.9
  assert abs(result.scores[idx["random"], idx["depth_zbuffer"]]) < 0.1
  assert abs(result.scores[idx["depth_zbuffer"], idx["room_layout"]]) < 0.1
  assert np.isnan(result.scores[:, idx["random"]]).all()  # random is no target
  # Candidates as the transfers': every other network, then the beam's pairs.
  depth = result.per_target["depth_zbuffer"]
  assert depth.candidates == [("room_layout",), ("random",), ("random", "room_layout")]
  # The AHP of the held-out losses, as the transfers' table: each target's entries sum to 1
  # and its own network, which holds it best, leads.
  table = probe_lib.probe_table(result)
  for target in ("depth_zbuffer", "room_layout"):
    entries = {str(tr): a for tr, a in table.affinity.items() if tr.target == target}
    assert sum(entries.values()) == pytest.approx(1.0)
    assert max(entries, key=entries.get) == f"self -> {target}"
  # A second single-view vector target reuses the single sources' kernel spectra that the
  # first computed; its losses equal a fresh probe's.
  vanishing = probe_lib.split_labels(
      tasks.get("vanishing_point"), (fit_layout[0][:, ::-1], *fit_layout[1:]),
      (score_layout[0][:, ::-1], *score_layout[1:]), probe.grid)
  assert {("room_layout",), ("random",)} <= set(probe._spectra)
  fresh = probe_lib.Probe(fit_reps, score_reps)
  for source in ("room_layout", "random"):
    np.testing.assert_allclose(probe.losses((source,), "vanishing_point", *vanishing),
                               fresh.losses((source,), "vanishing_point", *vanishing))
  # Each target's own network serves it, so a budget of 2 supervises both; at 1 the solver
  # answers on the same table.
  assert sorted(api.solve_taxonomy(["depth_zbuffer", "room_layout"], 2,
                                   data=table).supervised) == ["depth_zbuffer", "room_layout"]
  assert len(api.solve_taxonomy(["depth_zbuffer", "room_layout"], 1, data=table).supervised) == 1


def test_labels_by_kind_and_bad_grids_are_refused():
  gen = np.random.default_rng(5)
  assert probe_lib.kind_of(tasks.get("segment_unsup2d")) == probe_lib.REPRESENTATION
  assert probe_lib.kind_of(tasks.get("segment_semantic")) == probe_lib.CELLS
  assert probe_lib.kind_of(tasks.get("point_matching")) == probe_lib.VECTOR
  ids = gen.integers(0, 3, (5, SIDE, SIDE))
  with pytest.raises(ValueError, match="through its network"):
    probe_lib.split_labels(tasks.get("segment_unsup2d"), (ids, np.ones(ids.shape), None),
                           (ids, np.ones(ids.shape), None), (GRID, GRID))
  # Semantic classes one-hot per pixel, by cell: 4x4 pixels x 17 classes a row, centred.
  fit, score = probe_lib.split_labels(tasks.get("segment_semantic"),
                                      (ids, np.ones(ids.shape), None),
                                      (ids[:2], np.ones(ids[:2].shape), None), (GRID, GRID))
  assert fit.per_cell and fit.values.shape == (5 * GRID * GRID, 16 * 17)
  np.testing.assert_allclose(fit.values.mean(0), 0, atol=1e-6)
  assert score.values.shape == (2 * GRID * GRID, 16 * 17)
  # Point matching: one row per pair of views, its records kept, classes one-hot.
  pairs = np.array([[0, 1], [2, 3], [4, 0]])
  fit, _ = probe_lib.split_labels(tasks.get("point_matching"),
                                  (np.array([0, 1, 1]), np.ones(3), pairs),
                                  (np.array([1, 0, 1]), np.ones(3), pairs), (GRID, GRID))
  assert not fit.per_cell and fit.values.shape == (3, 2) and fit.records is pairs
  # An unsupervised segmentation: its network's representation, standardised, per cell.
  rep = gen.normal(size=(5, GRID, GRID, 3)) * 4 + 2
  fit, score = probe_lib.representation_labels(rep, rep[:2])
  assert fit.values.shape == (5 * GRID * GRID, 3)
  np.testing.assert_allclose(fit.values.std(0), 1, atol=1e-3)
  reps = {"a": gen.normal(size=(5, GRID, GRID, 2)), "b": gen.normal(size=(5, 2, 2, 2))}
  with pytest.raises(ValueError, match="grid"):
    probe_lib.Probe(reps, reps)
