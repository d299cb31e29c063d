"""RSA and linear CKA (taxonomy/estimators.py): known answers, the invariances each claims, the
bootstrap against a direct computation, and scores -> table -> solver and back."""

from __future__ import annotations

import itertools
import json
import pathlib
import types

import ml_collections
import numpy as np
import pytest
from scipy import stats

from taskonomy_jax.taxonomy import api, estimators
from taskonomy_jax.taxonomy.affinities import SELF, AffinityTable, Transfer, make_transfer
from taskonomy_jax.transfer import estimates

RNG = np.random.default_rng(0)
X = RNG.normal(size=(120, 12))


def _orthogonal(d: int, seed: int = 1) -> np.ndarray:
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


@pytest.mark.parametrize("measure", estimators.MEASURES)
def test_identical_representations_score_one_and_unrelated_ones_near_zero(measure):
  fn = {"rsa": estimators.rsa, "cka": estimators.linear_cka}[measure]
  assert fn(X, X) == pytest.approx(1.0, abs=1e-5)
  # 400 images, 5 features each: linear CKA of independent Gaussians is ~ 5/400 on average.
  x, y = np.random.default_rng(2).normal(size=(2, 400, 5))
  assert abs(fn(x, y)) < 0.05
  # a grid representation (N, 4, 4, 2) is flattened; symmetric in its arguments
  grid = RNG.normal(size=(120, 4, 4, 2))
  assert fn(X, grid) == pytest.approx(fn(grid, X), abs=1e-5)


def test_cka_is_invariant_to_orthogonal_maps_isotropic_scaling_and_shifts_only():
  y = X @ _orthogonal(12) * 3.7 + 5.0
  assert estimators.linear_cka(X, y) == pytest.approx(1.0, abs=1e-5)
  # jointly permuting the images changes nothing
  p = RNG.permutation(len(X))
  z = RNG.normal(size=(120, 7))
  assert estimators.linear_cka(X[p], z[p]) == pytest.approx(estimators.linear_cka(X, z), abs=1e-5)
  # not invariant to an anisotropic (invertible) scaling: Kornblith et al.'s point
  aniso = X * np.geomspace(1, 100, 12)
  assert estimators.linear_cka(X, aniso) < 0.9


def test_rsa_is_invariant_to_per_image_affine_maps_feature_permutations_and_monotone_maps():
  scale, shift = RNG.uniform(0.5, 3, (120, 1)), RNG.normal(size=(120, 1))
  assert estimators.rsa(X, X * scale + shift) == pytest.approx(1.0, abs=1e-5)
  assert estimators.rsa(X, X[:, RNG.permutation(12)]) == pytest.approx(1.0, abs=1e-5)
  # a general orthogonal map mixes in each image's feature mean: not an invariance of RSA
  assert estimators.rsa(X, X @ _orthogonal(12)) < 0.99
  # a strictly increasing map of the dissimilarities leaves the ranks, hence RSA, unchanged
  d = np.asarray(estimators.rdm(np.asarray(X, np.float32)))
  iu = np.triu_indices(len(X), 1)
  y = RNG.normal(size=(120, 9))
  direct = stats.spearmanr(d[iu], np.asarray(estimators.rdm(np.asarray(y, np.float32)))[iu])
  assert estimators.rsa(X, y) == pytest.approx(direct.statistic, abs=1e-5)
  assert stats.spearmanr(d[iu], np.exp(3 * d[iu])).statistic == pytest.approx(1.0)


def test_rsa_ties_take_midranks_and_a_constant_representation_scores_zero():
  """Repeated images give exactly tied dissimilarities: Spearman's midranks, as scipy's."""
  x = np.repeat(RNG.normal(size=(8, 12)), 5, axis=0)  # 40 images, 8 distinct
  y = RNG.normal(size=(40, 6))
  iu = np.triu_indices(40, 1)
  dx, dy = (np.asarray(estimators.rdm(np.asarray(v, np.float32)))[iu] for v in (x, y))
  assert len(np.unique(dx)) < len(dx) / 10
  assert estimators.rsa(x, y) == pytest.approx(stats.spearmanr(dx, dy).statistic, abs=1e-5)
  assert estimators.rsa(np.ones((40, 6)), y) == 0.0
  assert estimators.linear_cka(np.ones((40, 6)), y) == 0.0
  nan = np.array([[1.0, np.nan, 0.2], [np.nan, 1.0, np.nan], [0.2, np.nan, 1.0]])
  names = ["normal", "random", "reshading"]
  table = estimators.affinity_table(nan, names, ["normal"], kind="score")
  assert table.affinity[make_transfer(["random"], "normal")] == 0.0
  ranked = estimators.affinity_table(nan, names, ["normal"])  # no variation ranks last
  assert ranked.affinity[make_transfer(["random"], "normal")] == 0.5
  eps = estimators.rank_tie_break(3, 1)  # the rank plus eps x the clipped score (NaN: 0)
  assert ranked.affinity[make_transfer(["reshading"], "normal")] == 1.0 + eps * 0.2


def test_all_pairs_and_bootstrap_match_direct_computations():
  reps = [X, X @ _orthogonal(12) * 2, RNG.normal(size=(120, 12))]
  for measure, fn in (("rsa", estimators.rsa), ("cka", estimators.linear_cka)):
    m = estimators.all_pairs(reps, measure)
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)
    assert m[0, 2] == pytest.approx(fn(reps[0], reps[2]), abs=1e-5)
    samples = estimators.bootstrap(reps, measure, num_resamples=3, seed=7)
    assert samples.shape == (3, 3, 3)
    np.testing.assert_array_equal(samples, estimators.bootstrap(reps, measure, 3, seed=7))
    idx = estimators.resample_images(120, 3, seed=7)[1]
    a, b = np.asarray(reps[0], np.float32)[idx], np.asarray(reps[2], np.float32)[idx]
    if measure == "cka":  # a draw is the images repeated as drawn
      assert samples[1, 0, 2] == pytest.approx(fn(a, b), abs=1e-5)
    else:  # ... leaving out the pairs of one image drawn twice; ties take midranks
      iu = np.triu_indices(120, 1)
      keep = idx[iu[0]] != idx[iu[1]]
      da, db = (np.asarray(estimators.rdm(v))[iu][keep] for v in (a, b))
      assert samples[1, 0, 2] == pytest.approx(stats.spearmanr(da, db).statistic, abs=1e-4)
  lo, hi = estimators.intervals(samples)
  assert lo.shape == hi.shape == (3, 3) and (lo <= hi).all()


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="same images"):
    estimators.rsa(X, X[:10])
  with pytest.raises(ValueError, match="unknown measure"):
    estimators.all_pairs([X, X], "cca")
  with pytest.raises(ValueError, match="same images"):
    estimators.all_pairs([X, X[:50]], "cka")


NAMES = ["depth_zbuffer", "normal", "edge_texture", "random"]
SCORES = np.array([[1.0, 0.8, 0.2, -0.1],
                   [0.8, 1.0, 0.3, 0.1],
                   [0.2, 0.3, 1.0, 0.05],
                   [-0.1, 0.1, 0.05, 1.0]])
TARGETS = NAMES[:3]


def test_rankings_round_trip_through_the_table_file_and_the_solver(tmp_path):
  ranks = estimators.rankings(SCORES, NAMES, TARGETS)
  assert ranks["depth_zbuffer"] == ["normal", "edge_texture", "random"]
  scored = estimators.affinity_table(SCORES, NAMES, TARGETS, kind="score")
  assert scored.affinity[make_transfer(["random"], "depth_zbuffer")] == 0.0  # clipped at 0
  assert scored.affinity[make_transfer(["edge_texture"], "depth_zbuffer")] == 0.2
  table = estimators.affinity_table(SCORES, NAMES, TARGETS)  # ranks: 3 sources -> 1, 2/3, 1/3
  eps = estimators.rank_tie_break(4, 3)  # ... plus eps x the clipped score
  assert eps == 1 / 24
  assert [table.affinity[make_transfer([s], "depth_zbuffer")] for s in ranks["depth_zbuffer"]
          ] == pytest.approx([1.0 + eps * 0.8, 2 / 3 + eps * 0.2, 1 / 3])
  assert table.affinity[Transfer((SELF,), "normal")] == 1.0 + eps
  assert scored.affinity[Transfer((SELF,), "normal")] == 1.0
  for t in (table, scored):
    path = t.save(tmp_path / "rsa_affinities.json")
    loaded = AffinityTable.load(path)
    assert loaded.affinity == t.affinity
    assert estimators.table_rankings(loaded) == ranks
    # the solver on the file (`taskonomy solve --data`): one task supervised serves the others
    # by their best-ranked supervised source; the best single choice is normal (scores: 0.8 + 1
    # + 0.3; ranks: 1 + 1 + 1, against depth_zbuffer's 1 + 1 + 2/3)
    tax = api.solve_taxonomy(TARGETS, 1, order=2, data=str(path))
    assert tax.supervised == ("normal",)
  with pytest.raises(ValueError, match="unknown table kind 'raw'; known: rank, score"):
    estimators.affinity_table(SCORES, NAMES, TARGETS, kind="raw")
  served = {s.target: s.transfer for s in tax.served}
  assert served["depth_zbuffer"] == make_transfer(["normal"], "depth_zbuffer")
  assert served["edge_texture"] == make_transfer(["normal"], "edge_texture")
  assert tax.objective == pytest.approx(0.8 + 1.0 + 0.3)


def test_a_supervised_set_is_measured_on_the_transfer_table():
  t = make_transfer
  transfer = AffinityTable(
      {t(["normal"], "depth_zbuffer"): 0.6, t(["normal", "random"], "depth_zbuffer"): 0.7,
       t(["random"], "depth_zbuffer"): 0.1, Transfer((SELF,), "depth_zbuffer"): 0.2,
       Transfer((SELF,), "normal"): 0.5, t(["depth_zbuffer"], "normal"): 0.5},
      quality={t(["normal"], "depth_zbuffer"): 0.3, t(["normal", "random"], "depth_zbuffer"): 0.4},
      gain={t(["normal"], "depth_zbuffer"): 0.7, t(["normal", "random"], "depth_zbuffer"): 0.8,
            Transfer((SELF,), "normal"): 0.9})
  targets = ["depth_zbuffer", "normal"]
  served = estimators.served_from(transfer, targets, ["normal"], order=1)
  assert served == {"depth_zbuffer": t(["normal"], "depth_zbuffer"),
                    "normal": Transfer((SELF,), "normal")}
  q = estimators.measured_quality(transfer, served)
  assert q["mean_quality"] == pytest.approx((0.3 + 0.5) / 2)
  assert q["mean_gain"] == pytest.approx((0.7 + 0.9) / 2)
  served = estimators.served_from(transfer, targets, ["normal", "random"], order=2)
  assert served["depth_zbuffer"] == t(["normal", "random"], "depth_zbuffer")
  assert estimators.served_from(transfer, targets, [], order=2)["normal"] is None
  assert estimators.measured_quality(transfer, {"normal": None})["mean_quality"] is None


def test_estimator_report_of_a_run(tmp_path):
  """The taxonomy stage's `estimators` section on a stand-in run: cached representations in
  which each task's network is a noisy copy of a shared one, and a transfer table."""
  base = RNG.normal(size=(40, 2, 2, 3))
  reps = {n: base + k * RNG.normal(size=base.shape) for k, n in enumerate(NAMES)}
  transfer = estimators.affinity_table(SCORES, NAMES, TARGETS, source="transfer")
  transfer = AffinityTable(transfer.affinity, quality={k: 0.4 for k in transfer.affinity},
                           gain={k: 0.6 for k in transfer.affinity})
  (tmp_path / "timings.json").write_text(json.dumps(
      [{"stage": "transfers1", "unit": "00", "ran": True, "seconds": 10.0},
       {"stage": "taskbank", "unit": "bank", "ran": True, "seconds": 99.0}]))
  run = types.SimpleNamespace(
      config=ml_collections.ConfigDict({
          "taxonomy": {"budget": 1, "graph_budgets": [0], "order": 2},
          "estimators": {"resamples": 5, "probe": False}}),
      bank=NAMES, targets=TARGETS, workdir=tmp_path, rep=lambda n, split: reps[n],
      log=[{"stage": "transfers_high", "unit": "00", "ran": True, "seconds": 5.0},
           {"stage": "transfers1", "unit": "00", "ran": False, "seconds": 0.0}])
  out = tmp_path / "out"
  rep = estimates.estimator_report(run, transfer, out)
  assert rep["split"] == "test" and rep["resamples"] == 5 and rep["images"] == 40
  assert rep["transfer_stage_seconds"] == 15.0
  assert set(rep["transfer_taxonomies"]) == {"0", "1"}
  assert rep["transfer_taxonomies"]["0"]["infeasible"]  # said, not raised
  assert rep["measures"] == list(estimators.MEASURES)  # `estimators.probe` False: no probe
  for measure in estimators.MEASURES:
    m = rep[measure]
    assert set(m["rankings"]) == set(TARGETS)
    assert m["vs_transfer"]["pairs"] == len(TARGETS) * (len(NAMES) - 1)
    assert m["vs_paper"] is None or "spearman_all" in m["vs_paper"]
    lo, hi = m["vs_transfer_interval"]["spearman_all"]
    assert -1 <= lo <= hi <= 1
    assert m["taxonomies"]["1"]["best_from_set"]["mean_quality"] is not None
    assert m["speedup"] > 0 and m["quality_ratio"] > 0
    table = AffinityTable.load(out / m["table"])
    assert sorted(table.targets) == sorted(TARGETS)
  json.dumps(rep)  # JSON-able as report.json holds it
  assert pathlib.Path(out / "estimators").is_dir()
  # The summary script's table: a row per measure, also for reports from before the probe
  # (no `measures` list) and none for reports without the section.
  from experiments import summarize_run
  header = 2
  older = {k: v for k, v in rep.items() if k != "measures"}
  for report in ({"estimators": rep}, {"estimators": older}):
    assert len(summarize_run.estimators(report)) == header + len(estimators.MEASURES)
  assert len(summarize_run.estimators({})) == header


# --- a bank of networks on a folder of images -------------------------------------------------

TINY_MODEL = {"width": 4, "blocks": (1, 1, 1, 1), "rep_channels": 2, "output_stride": 16,
              "decoder_width_multiplier": 0.25, "fc_hidden": 8}


@pytest.fixture(scope="module")
def tiny_banks(tmp_path_factory):
  """The same two random encoders (a pixel task and random projection) written as a folder of
  converted checkpoints (`convert-visualpriors --out DIR/<task>`'s layout) and as a task-bank
  workdir (bank.json and done.json beside them), with 6 PNG images of 32x32."""
  import jax
  from PIL import Image

  from taskonomy_jax import models
  from taskonomy_jax.convert import visualpriors
  from taskonomy_jax.taskbank import train as bank_train

  root = tmp_path_factory.mktemp("estimate")
  names = ["depth_zbuffer", "random"]
  # Random weights of the right shapes, no initialisation compiled (that costs seconds);
  # encoders alone, as visualpriors ships some tasks.
  model = models.build("random", TINY_MODEL)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False),
                          np.zeros((1, 32, 32, 3), np.float32))
  gen = np.random.default_rng(1)

  def weights(path, a):  # He-normal kernels, unit BN scales, zero biases and means, unit vars
    name = path[-1].key
    if name == "kernel":
      return (gen.normal(size=a.shape) * np.sqrt(2 / np.prod(a.shape[:-1]))).astype(np.float32)
    return np.full(a.shape, 1.0 if name in ("scale", "var") else 0.0, np.float32)

  for n in names:
    enc = jax.tree_util.tree_map_with_path(weights, {
        "params": {"encoder": shapes["params"]["encoder"]},
        "batch_stats": {"encoder": shapes["batch_stats"]["encoder"]}})
    for bank in ("converted", "workdir"):
      visualpriors.save(enc, str(root / bank / n))
    (root / "workdir" / n / bank_train.DONE_FILE).write_text("{}")
  (root / "workdir" / bank_train.BANK_FILE).write_text(json.dumps(
      {"resolution": 32, "model": TINY_MODEL, "tasks": names, "per_task": {}}))
  (root / "images").mkdir()
  pixels = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), np.uint8)
  for i, p in enumerate(pixels):
    Image.fromarray(p).save(root / "images" / f"{i}.png")
  return root, names


def test_estimate_from_a_folder_of_converted_checkpoints(tiny_banks):
  from taskonomy_jax.transfer import estimate_bank

  root, names = tiny_banks
  images, files = estimate_bank.load_images(root / "images", 32)
  assert images.shape == (6, 32, 32, 3) and files[0] == "0.png"
  assert images.min() >= -1 and images.max() <= 1
  summary, tables = estimate_bank.estimate_from_bank(
      root / "converted", images, model_config=TINY_MODEL, resolution=32, resamples=3)
  assert summary["networks"] == names and summary["images"] == 6
  for measure in estimators.MEASURES:
    assert summary[measure]["scores"]["random"]["random"] == pytest.approx(1.0, abs=1e-5)
    assert summary[measure]["rankings"]["random"] == ["depth_zbuffer"]
    assert np.shape(summary[measure]["intervals"]["lo"]) == (2, 2)
    assert sorted(tables[measure].targets) == names
  with pytest.raises(FileNotFoundError, match="holds no network"):
    estimate_bank.estimate_from_bank(root / "images", images)
  with pytest.raises(ValueError, match=r"expected \(N, 32, 32, 3\)"):
    estimate_bank.estimate_from_bank(root / "converted", images[:, :16], resolution=32,
                                     model_config=TINY_MODEL)


def test_estimate_command_on_a_task_bank_workdir(tiny_banks, tmp_path, capsys):
  from taskonomy_jax import cli

  root, names = tiny_banks
  out = tmp_path / "est"
  assert cli.main(["estimate", "--bank", str(root / "workdir"), "--images", str(root / "images"),
                   "--out", str(out)]) == 0
  summary = json.loads((out / "estimates.json").read_text())
  assert summary["networks"] == names
  table = AffinityTable.load(out / "cka_affinities.json")
  tax = api.solve_taxonomy(names, 1, data=table)
  assert len(tax.supervised) == 1
  assert "best sources per network" in capsys.readouterr().out
  assert cli.main(["estimate", "--bank", str(tmp_path / "none"), "--images", str(root / "images"),
                   "--out", str(out)]) == 1  # a missing bank: a runtime failure, named


def test_transfer_seconds_counts_every_units_own_time_across_resumed_runs():
  """A resumed run's log has every unit's own time (`unit_seconds`, from its marker); logs
  written before that field count the units that ran; other stages are left out."""
  from taskonomy_jax.transfer.estimates import transfer_seconds
  resumed = [{"stage": "transfers1", "unit": "a", "ran": False, "seconds": 0.0,
              "unit_seconds": 100.0},
             {"stage": "transfers_high", "unit": "a", "ran": True, "seconds": 40.0,
              "unit_seconds": 40.0},
             {"stage": "taskbank", "unit": "bank", "ran": False, "seconds": 0.0,
              "unit_seconds": 500.0}]
  assert transfer_seconds(resumed) == 140.0
  old = [{"stage": "transfers1", "unit": "a", "ran": True, "seconds": 99.0},
         {"stage": "transfers1", "unit": "b", "ran": True, "seconds": 7.0},
         {"stage": "transfers_high", "unit": "a", "ran": False, "seconds": 0.0}]
  assert transfer_seconds(old) == 106.0
  assert transfer_seconds(resumed, old) == 147.0  # b only in the older log
  assert transfer_seconds([{"stage": "transfers1", "unit": "a", "ran": False,
                            "seconds": 0.0}]) is None


def _by_brute_force(rank: np.ndarray, score: np.ndarray, targets: list[int], budget: int):
  """Every supervised set of `budget` networks: its total over targets of the best entry it
  allows (own network if supervised, else its best supervised source), by rank and by score."""
  n = len(rank)
  totals = {}
  for chosen in itertools.combinations(range(n), budget):
    totals[chosen] = tuple(
        sum(1.0 if t in chosen else max(m[s, t] for s in chosen) for t in targets)
        for m in (rank, score))
  return totals


@pytest.mark.parametrize("seed", range(6))
def test_rank_tables_choose_a_best_set_by_rank_and_among_those_the_best_by_score(seed):
  # Scores rounded to 1 decimal over 7 networks: rank totals tie across supervised sets, and
  # the solver's pick among the tied sets must not depend on the order of the targets.
  rng = np.random.default_rng(seed)
  names = ["depth_zbuffer", "normal", "edge_texture", "reshading", "curvature", "jigsaw",
           "random"]
  a = rng.uniform(0, 1, (7, 7)).round(1)
  scores = np.triu(a, 1) + np.triu(a, 1).T + np.eye(7)
  targets = list(range(5))
  rank = np.zeros((7, 7))
  score = np.minimum(np.clip(scores, 0, None), 1.0)
  for t in targets:
    others = [s for s in range(7) if s != t]
    rank[others, t] = stats.rankdata(scores[others, t]) / 6
  totals = _by_brute_force(rank, score, targets, 2)
  best_rank = max(r for r, _ in totals.values())
  best = max(sc for r, sc in totals.values() if r == pytest.approx(best_rank))
  table = estimators.affinity_table(scores, names, [names[t] for t in targets])
  for order in (targets, targets[::-1], [2, 4, 0, 3, 1]):
    tax = api.solve_taxonomy([names[t] for t in order], 2, order=1, data=table)
    chosen = tuple(sorted(names.index(s) for s in tax.supervised))
    assert totals[chosen][0] == pytest.approx(best_rank)  # the rank optimum stands
    assert totals[chosen][1] == pytest.approx(best)  # the best by score among those


def test_the_estimators_section_of_the_config_takes_overrides():
  """`--set estimators.probe=False` reaches `estimator_report` (the test above); a run whose
  config.json predates the section reads the same defaults."""
  from taskonomy_jax import config_files
  from taskonomy_jax.configs import taxonomy as taxonomy_config
  config = taxonomy_config.get_config("tiny")
  assert config.estimators.to_dict() == estimates.DEFAULTS
  config_files.apply_overrides(config, ["estimators.probe=False", "estimators.resamples=7"])
  assert config.estimators.to_dict() == {**estimates.DEFAULTS, "probe": False, "resamples": 7}
  assert estimates.DEFAULTS["probe"] is True  # the section's defaults are not changed in place
