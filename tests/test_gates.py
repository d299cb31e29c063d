"""The gates that say whether a computed taxonomy carries signal (issue 20): known answers."""

import dataclasses
import json
import time

import numpy as np
import pytest
from PIL import Image

from taskonomy_jax.taxonomy import affinities, api, compare, draw, published
from taskonomy_jax.taxonomy.affinities import make_transfer
from taskonomy_jax.transfer import affinity, gates

THREE_D = ["depth_zbuffer", "depth_euclidean", "normal", "reshading", "curvature", "edge_occlusion"]
TWO_D = ["edge_texture", "autoencoding"]
TASKS = THREE_D + TWO_D


def _groups(points: int, views: int) -> np.ndarray:
  return np.repeat(np.arange(points), views)


def _quality(source: str, target: str) -> float:
  """A run with the paper's structure: the depths best for each other, 3D tasks for 3D tasks,
  2D for 2D, random projection worst everywhere."""
  if source == "random":
    return 0.0
  if {source, target} == set(gates.DEPTHS):
    return 0.8
  return 0.5 if (source in THREE_D) == (target in THREE_D) else 0.2


def _run(signal: bool, points: int = 40, views: int = 5, seed: int = 0
         ) -> tuple[dict[str, affinity.TargetLosses], dict, np.ndarray]:
  """Synthetic held-out losses of a run over TASKS (+ random projection as a source).

  Every predictor shares a per-point difficulty (views of one point are correlated). With
  `signal`, sources differ by `_quality` and the task networks are far below the mean/median
  image; without, every transfer is equally good and each network outputs the mean image.
  """
  rng = np.random.default_rng(seed)
  groups = _groups(points, views)
  n = len(groups)
  hard = rng.normal(0, 0.5, points)[groups]
  per_target, baselines = {}, {}
  for t in TASKS:
    cands = [(s,) for s in [*TASKS, "random"] if s != t]
    q = np.array([_quality(c[0], t) if signal else 0.0 for c in cands])
    losses = 1.0 - q[:, None] + hard + rng.normal(0, 0.3, (len(cands), n))
    mean_image = 1.2 + hard + rng.normal(0, 0.3, n)
    median_image = 1.15 + hard + rng.normal(0, 0.3, n)
    own = (0.2 + hard + rng.normal(0, 0.3, n) if signal
           else mean_image + rng.normal(0, 0.05, n))
    per_target[t] = affinity.TargetLosses(cands, losses, own, 1.0 + hard + rng.normal(0, 0.3, n))
    baselines[t] = (mean_image, median_image)
  return per_target, baselines, groups


# --- the bootstrap --------------------------------------------------------------------------------


def test_point_resamples_keep_the_views_of_a_point_together():
  groups = np.array([7, 7, 7, 2, 2, 9, 4, 4, 4, 4])
  mult = gates.point_resamples(groups, 500, seed=1)
  assert mult.shape == (500, 10)
  for g in np.unique(groups):
    cols = mult[:, groups == g]
    assert (cols == cols[:, :1]).all()  # a drawn point brings every one of its views
  # Each resample draws as many points as there are (4), with replacement.
  per_point = np.stack([mult[:, np.flatnonzero(groups == g)[0]] for g in np.unique(groups)], 1)
  assert (per_point.sum(1) == 4).all()
  assert per_point.max() > 1


def test_bootstrap_diff_covers_the_true_difference_at_its_nominal_rate():
  """300 datasets of 100 points with a shared per-point effect and 1-8 views per point: the
  cluster bootstrap's 95% interval covers the true mean difference about 95% of the time (0.944
  over 1,500 datasets; 0.937 with 60 points: percentile intervals run a little narrow with few
  points); resampling views as if independent (every view its own point) covers it far less
  often (about 0.73)."""
  rng = np.random.default_rng(0)
  true_diff, covered, covered_naive = 0.3, 0, 0
  for _ in range(300):
    views = rng.integers(1, 9, 100)
    groups = np.repeat(np.arange(100), views)
    base = rng.gamma(2.0, 1.0, len(groups))
    d = true_diff + rng.normal(0, 1, 100)[groups] + rng.normal(0, 1, len(groups))
    r = gates.bootstrap_diff(base + d, base, groups, num_resamples=400,
                             seed=int(rng.integers(1 << 31)))
    covered += r["low"] <= true_diff <= r["high"]
    naive = gates.bootstrap_diff(base + d, base, np.arange(len(groups)), num_resamples=400)
    covered_naive += naive["low"] <= true_diff <= naive["high"]
  assert 0.90 <= covered / 300 <= 0.99, covered / 300
  assert covered_naive / 300 < 0.85, covered_naive / 300


def test_bootstrap_diff_mean_shapes_and_speed():
  rng = np.random.default_rng(0)
  groups = _groups(400, 5)
  a, b = rng.normal(1, 1, 2000), rng.normal(0, 1, 2000)
  start = time.perf_counter()
  r = gates.bootstrap_diff(a, b, groups, num_resamples=1000)
  assert time.perf_counter() - start < 1.0
  assert r["mean"] == pytest.approx(np.mean(a - b))
  assert r["low"] < r["mean"] < r["high"]
  assert gates.bootstrap_diff(a, b, groups, seed=3) == gates.bootstrap_diff(a, b, groups, seed=3)
  with pytest.raises(ValueError, match="groups"):
    gates.bootstrap_diff(a, b, groups[:-1])
  with pytest.raises(ValueError, match="NaN"):
    gates.bootstrap_diff(np.full(2000, np.nan), b, groups)


# --- networks and transfers -----------------------------------------------------------------------


def test_oracle_network_passes_and_a_mean_image_network_fails():
  rng = np.random.default_rng(0)
  groups = _groups(50, 4)
  hard = rng.gamma(2.0, 0.5, 50)[groups]
  mean_image = hard + 0.5 + rng.normal(0, 0.1, 200)
  median_image = hard + 0.45 + rng.normal(0, 0.1, 200)
  oracle = gates.network_gate(0.3 * hard, mean_image, median_image, groups)
  assert oracle["passes"] and oracle["mean image"]["passes"] and oracle["median image"]["passes"]
  assert oracle["mean image"]["high"] < 0
  copy = gates.network_gate(mean_image + rng.normal(0, 0.05, 200), mean_image, median_image,
                            groups)
  assert not copy["passes"]
  assert not copy["mean image"]["passes"]
  assert copy["mean image"]["low"] < 0 < copy["mean image"]["high"]


def test_transfers_vs_random():
  rng = np.random.default_rng(0)
  groups = _groups(40, 5)
  hard = rng.normal(0, 1, 40)[groups]
  cands = [("normal",), ("edge_texture",), ("random",), ("edge_texture", "normal")]
  noise = rng.normal(0, 0.3, (4, 200))
  losses = hard + noise + np.array([[0.5], [1.0], [1.0], [0.4]])
  out = gates.transfers_vs_random(cands, losses, groups)
  assert set(out) == {"normal", "edge_texture"}  # first order only, random itself left out
  assert out["normal"]["beats_random"] and out["normal"]["high"] < 0
  assert out["normal"]["mean"] == pytest.approx(np.mean(losses[0] - losses[2]))
  assert not out["edge_texture"]["beats_random"]
  with pytest.raises(ValueError, match="random"):
    gates.transfers_vs_random(cands[:2], losses[:2], groups)


# --- known answers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper(paper_results_dir) -> affinities.AffinityTable:
  return published.load_published("default", paper_results_dir)


def test_known_answers_hold_on_the_papers_affinities(paper):
  out = gates.known_answers(compare.first_order(paper), paper.targets)
  assert out["depth_pair"]["passes"] is True
  assert out["depth_pair"]["evidence"]["depth_zbuffer"]["best"] == "depth_euclidean"
  assert out["random_worst_two"]["passes"] is True
  assert set(out["random_worst_two"]["evidence"]) == set(gates.RANDOM_WORST_TWO)
  assert out["random_worse_half"]["passes"] is True
  assert set(out["random_worse_half"]["evidence"]) == set(gates.RANDOM_WORSE_HALF)


def test_known_answers_fail_when_the_data_says_otherwise(paper):
  fo = compare.first_order(paper)
  swapped = dict(fo)
  swapped[("normal", "depth_zbuffer")] = 1.0  # normal now depth_zbuffer's best source
  swapped[("random", "curvature")] = 1.0  # random now curvature's best source
  swapped[("random", "keypoints3d")] = 1.0
  out = gates.known_answers(swapped, paper.targets)
  assert out["depth_pair"]["passes"] is False
  assert out["depth_pair"]["evidence"]["depth_zbuffer"]["best"] == "normal"
  assert out["depth_pair"]["evidence"]["depth_euclidean"]["passes"] is True
  assert out["random_worst_two"]["passes"] is False
  assert [t for t, e in out["random_worst_two"]["evidence"].items() if not e["passes"]] == [
      "curvature"]
  assert out["random_worse_half"]["passes"] is False
  assert out["random_worse_half"]["evidence"]["keypoints3d"]["rank"] == 1


def test_known_answers_by_hand():
  fo = {("a", "edge_occlusion"): 0.5, ("b", "edge_occlusion"): 0.4,
        ("random", "edge_occlusion"): 0.3, ("c", "edge_occlusion"): 0.2,
        ("d", "edge_occlusion"): 0.1, ("edge_occlusion", "edge_occlusion"): 0.9,
        ("a", "normal"): 0.3, ("random", "normal"): 0.2, ("b", "normal"): 0.1,
        ("c", "normal"): 0.05}
  out = gates.known_answers(fo, ["edge_occlusion", "normal"])
  # edge_occlusion: random 3rd of 5 (the target's own encoder is no transfer): two beat it and
  # it beats two, which is the worse half by the rule (at least as many better as worse).
  assert out["random_worse_half"]["evidence"]["edge_occlusion"]["rank"] == 3
  assert out["random_worse_half"]["evidence"]["edge_occlusion"]["of"] == 5
  assert out["random_worse_half"]["passes"] is True
  # normal: two sources are worse than random, so it is not among the two worst.
  assert out["random_worst_two"]["evidence"]["normal"]["worse_sources"] == ["b", "c"]
  assert out["random_worst_two"]["passes"] is False
  # Neither depth is in the run; a task not in `targets` is not looked at.
  assert out["depth_pair"]["passes"] is None
  assert gates.known_answers(fo, ["normal"])["random_worse_half"]["passes"] is None
  fo[("c", "edge_occlusion")] = 0.35  # now three of five beat random
  assert gates.known_answers(fo, ["edge_occlusion"])["random_worse_half"]["evidence"][
      "edge_occlusion"]["rank"] == 4
  assert gates.known_answers(fo, ["edge_occlusion"])["random_worse_half"]["passes"] is True
  fo[("random", "edge_occlusion")] = 0.6  # random now the best
  assert gates.known_answers(fo, ["edge_occlusion"])["random_worse_half"]["passes"] is False


# --- noise on the affinities and on the selection ----------------------------------------------


def test_bootstrap_affinities_are_the_tables_affinities_on_the_resampled_views():
  per_target, _, groups = _run(signal=True, points=10, views=3)
  transfers, samples = gates.bootstrap_affinities(per_target, groups, num_resamples=3, seed=5)
  mult = gates.point_resamples(groups, 3, seed=5)
  for b in range(3):
    views = np.repeat(np.arange(len(groups)), mult[b])
    table = affinity.affinity_table(gates._resampled(per_target, dict.fromkeys(per_target, views)))
    assert samples[b] == pytest.approx([table.affinity[t] for t in transfers], abs=1e-12)


def test_per_target_points_resample_shared_points():
  """Targets measured on different examples (a multi-view target's samples) share each
  resample's draw of camera points; one array for all gives the shared-views resamples."""
  per_target, _, groups = _run(signal=True, points=10, views=3)
  shared = gates.target_resamples(per_target, groups, 4, seed=2)
  assert all(np.array_equal(m, gates.point_resamples(groups, 4, seed=2))
             for m in shared.values())
  # One target keeps only the first view of each of points 0..6, in another order.
  first, other = list(per_target)[:2]
  keep = np.array([np.flatnonzero(groups == p)[0] for p in np.unique(groups)[:7]])[::-1]
  tl = per_target[first]
  fewer = {**per_target, first: affinity.TargetLosses(
      tl.candidates, tl.losses[:, keep], tl.self_losses[keep], tl.scratch_losses[keep])}
  by_target = {**dict.fromkeys(per_target, groups), first: groups[keep]}
  mult = gates.target_resamples(fewer, by_target, 4, seed=2)
  assert mult[first].shape == (4, 7)
  for b in range(4):  # each example counts as often as its point was drawn for every target
    drawn = {int(g): int(m) for g, m in zip(groups, mult[other][b], strict=True)}
    assert [drawn[int(g)] for g in groups[keep]] == mult[first][b].tolist()
  with pytest.raises(ValueError, match="examples"):
    gates.target_resamples(fewer, groups, 4)
  with pytest.raises(ValueError, match="no point ids"):
    gates.target_resamples(fewer, {first: groups[keep]}, 4)
  # The gates run on per-target examples.
  baselines = {t: (tl.self_losses + 1, tl.self_losses + 1) for t, tl in fewer.items()}
  rep = gates.run_gates(fewer, baselines, by_target, budgets=(1.0,), num_resamples=50,
                        interval_resamples=20, selection_resamples=5)
  assert rep["gates"]["networks"]["passes"] is True  # every network 1 below its baselines


def test_affinity_intervals_contain_the_estimate_and_shrink_with_more_data():
  widths = []
  for points in (30, 240):
    per_target, _, groups = _run(signal=True, points=points, views=4)
    table = affinity.affinity_table(per_target)
    iv = gates.affinity_intervals(per_target, groups, num_resamples=200)
    assert set(iv) == set(table.affinity)
    assert all(lo <= table.affinity[t] <= hi for t, (lo, hi) in iv.items())
    widths.append(np.mean([hi - lo for lo, hi in iv.values()]))
  # 8 times the points: about sqrt(8) = 2.8 times narrower.
  assert widths[1] < widths[0] / 2


def _normal_dominates() -> tuple[dict[str, affinity.TargetLosses], np.ndarray]:
  """Three 3D targets whose transfer from normals is below every other loss on every view."""
  rng = np.random.default_rng(0)
  groups = _groups(30, 4)
  targets = ["depth_zbuffer", "reshading", "curvature"]
  per_target = {}
  for t in targets:
    cands = [(s,) for s in [*targets, "normal", "edge_texture", "random"] if s != t]
    losses = 1.0 + rng.random((len(cands), 120))
    losses[cands.index(("normal",))] = 0.1 * rng.random(120)  # below everything on every view
    per_target[t] = affinity.TargetLosses(cands, losses, 0.5 + rng.random(120),
                                          1.0 + rng.random(120))
  return per_target, groups


def test_selection_frequencies_when_one_source_dominates_every_target():
  per_target, groups = _normal_dominates()
  freq = gates.selection_frequencies(per_target, groups, budgets=[0, 1, 2], num_resamples=5)
  assert freq[0] == {"infeasible": 1.0}
  assert freq[1] == {"normal": 1.0}
  assert sum(freq[2].values()) == pytest.approx(1.0)
  assert all("normal" in key.split("+") for key in freq[2])


def test_the_taxonomy_json_and_graph_carry_the_selection_frequencies(tmp_path):
  """report.json's frequencies, read back (`Selection.from_report`), in taxonomy.json, the
  graph's caption and the per-budget figure: normals chosen in 100% of the resamples."""
  per_target, groups = _normal_dominates()
  freq = gates.selection_frequencies(per_target, groups, budgets=[1.0, 2.0], num_resamples=5)
  inputs = _passing_inputs()
  rep = json.loads(json.dumps(gates.report(inputs["networks"], inputs["transfers"],
                                           inputs["known"], frequencies=freq,
                                           selection_resamples=5)))
  assert rep["selection_frequencies"]["1"] == {"normal": 1.0} and rep["selection_resamples"] == 5
  selection = api.Selection.from_report(rep)
  assert selection.resamples == 5 and selection.at(1) == {"normal": 1.0}
  table = affinity.affinity_table(per_target)
  tax = api.solve_taxonomy(list(per_target), 1, data=table)
  assert tax.supervised == ("normal",)
  assert "selection" not in tax.to_json() and tax.selection_caption() is None  # `solve`, the app

  tax = dataclasses.replace(tax, selection=selection)
  draw.write_outputs(tax, tmp_path)
  doc = json.loads((tmp_path / "taxonomy.json").read_text())["selection"]
  assert doc["supervised_set"] == "normal" and doc["chosen"] == 1.0 and doc["resamples"] == 5
  assert doc["frequencies"] == {"normal": 1.0} and doc["source_frequencies"] == {"normal": 1.0}
  assert set(doc["by_budget"]) == {"1", "2"}
  assert tax.selection_caption() == (
      "this supervised set chosen in 100% of 5 resamples of the test views")
  with Image.open(tmp_path / "taxonomy.png") as im:
    assert im.size[0] > 300
  budget2 = dataclasses.replace(api.solve_taxonomy(list(per_target), 2, data=table),
                                selection=selection)
  draw.draw_many([tax, budget2], tmp_path / "taxonomies.png")
  with Image.open(tmp_path / "taxonomies.png") as im:
    assert im.size[1] > 600
  # A budget that was not resampled has no caption and no frequencies, only the other budgets'.
  budget3 = dataclasses.replace(api.solve_taxonomy(list(per_target), 3, data=table),
                                selection=selection)
  assert budget3.selection_caption() is None
  assert budget3.to_json()["selection"]["chosen"] is None


def test_selection_caption_and_source_frequencies():
  assert api.source_frequencies({"a+b": 0.5, "b+c": 0.3, "": 0.1, api.INFEASIBLE: 0.1}) == (
      pytest.approx({"b": 0.8, "a": 0.5, "c": 0.3}))
  assert list(api.source_frequencies({"a": 0.2, "b": 0.8})) == ["b", "a"]  # most frequent first
  assert api.supervised_key(["normal", "curvature"]) == "curvature+normal"
  per_target, _ = _normal_dominates()
  tax = api.solve_taxonomy(list(per_target), 1, data=affinity.affinity_table(per_target))
  chosen = api.Selection({1.0: {"normal": 0.72, "curvature": 0.28}}, 50)
  assert dataclasses.replace(tax, selection=chosen).selection_caption() == (
      "this supervised set chosen in 72% of 50 resamples of the test views")
  never = api.Selection({1.0: {"curvature": 1.0}})  # resamples not recorded
  assert dataclasses.replace(tax, selection=never).selection_caption() == (
      "this supervised set chosen in 0% of the resamples of the test views")
  assert api.Selection.from_report({"gates": {}}) is None


# --- agreement with the paper, the 3D cluster, the report ---------------------------------------


def test_paper_agreement_of_the_published_table_with_itself(paper):
  out = gates.paper_agreement(paper, paper)
  assert out["spearman_all"]["rho"] == pytest.approx(1.0)
  assert out["pairs"] == len(compare.first_order(paper))
  assert out["passes"] is True
  assert out["3d_cohesion_p"]["ours"] < 0.01
  assert out["3d_cohesion_p"]["ours"] == out["similarity_tree"]["ours"]["group_cohesion_p"]


def test_paper_agreement_fails_on_reversed_affinities(paper):
  top = max(paper.affinity.values())  # affinities must be >= 0: reverse the order by top - v
  reversed_table = affinities.AffinityTable(
      {t: top - v if t.order == 1 else v for t, v in paper.affinity.items()})
  out = gates.paper_agreement(reversed_table, paper)
  assert out["spearman_all"]["rho"] == pytest.approx(-1.0)
  assert out["passes"] is False


def test_three_d_cohesion():
  per_target, _, _ = _run(signal=True)
  out = gates.three_d_cohesion(affinity.affinity_table(per_target))
  assert out["tasks"] == sorted(THREE_D)
  assert out["cohesion"] == 1.0 and out["passes"] is True
  small = affinities.AffinityTable({make_transfer([s], t): 0.5 for s in ("normal", "random")
                                    for t in ("normal", "edge_texture") if s != t})
  assert gates.three_d_cohesion(small)["passes"] is None


def test_a_run_with_signal_is_trusted_and_one_without_is_not():
  per_target, baselines, groups = _run(signal=True)
  rep = gates.run_gates(per_target, baselines, groups, converged={"a -> b": True},
                        interval_resamples=50)
  assert json.loads(json.dumps(rep)) == rep  # JSON-able as it is
  assert rep["failed"] == [] and rep["trusted"] is True, gates.summary_lines(rep)
  assert rep["gates"]["transfers_vs_random"]["beats"] == rep["gates"]["transfers_vs_random"]["of"]
  assert rep["gates"]["paper_agreement"]["passes"] is None  # no paper table given
  lines = gates.summary_lines(rep)
  assert lines[-1] == "all gates pass: the taxonomy carries signal"
  assert len(lines) == len(rep["gates"]) + 1
  assert "affinity_intervals" in rep

  per_target, baselines, groups = _run(signal=False)
  rep = gates.run_gates(per_target, baselines, groups, interval_resamples=50)
  assert rep["trusted"] is False
  assert {"networks", "transfers_vs_random"} <= set(rep["failed"])
  assert gates.summary_lines(rep)[-1].startswith("GATES FAILED (networks, transfers_vs_random")
  assert gates.summary_lines(rep)[-1].endswith("this taxonomy is not to be trusted")


def _passing_inputs() -> dict:
  per_target, baselines, groups = _run(signal=True, points=20, views=3)
  table = affinity.affinity_table(per_target)
  return {
      "networks": {t: gates.network_gate(tl.self_losses, *baselines[t], groups, 200)
                   for t, tl in per_target.items()},
      "transfers": {t: gates.transfers_vs_random(tl.candidates, tl.losses, groups,
                                                 num_resamples=200)
                    for t, tl in per_target.items()},
      "known": gates.known_answers(compare.first_order(table), per_target),
      "converged": {make_transfer(["normal"], "reshading"): True, "random -> normal": True},
      "paper": {"pairs": 30, "spearman_all": {"rho": 0.7, "p": 1e-4}, "passes": True},
      "cohesion": {"tasks": THREE_D, "cohesion": 1.0, "p": 0.01, "passes": True},
  }


def _break(inputs: dict, gate: str) -> None:
  if gate == "networks":
    inputs["networks"]["normal"]["passes"] = False
  elif gate == "transfers_vs_random":
    for per in inputs["transfers"].values():
      for r in per.values():
        r["beats_random"] = False
  elif gate == "readouts_converged":
    inputs["converged"]["random -> normal"] = False
  elif gate in ("depth_pair", "random_worst_two", "random_worse_half"):
    inputs["known"][gate]["passes"] = False
    next(iter(inputs["known"][gate]["evidence"].values()))["passes"] = False
  elif gate == "paper_agreement":
    inputs["paper"] = {"pairs": 30, "spearman_all": {"rho": 0.1, "p": 0.6}, "passes": False}
  elif gate == "three_d_cohesion":
    inputs["cohesion"] = {**inputs["cohesion"], "p": 0.4, "passes": False}


@pytest.mark.parametrize("gate", [None, *gates.TITLES])
def test_report_is_trusted_only_when_every_gate_passes(gate):
  inputs = _passing_inputs()
  if gate is not None:
    _break(inputs, gate)
  rep = gates.report(**inputs)
  json.dumps(rep)
  assert rep["trusted"] is (gate is None)
  assert rep["failed"] == ([] if gate is None else [gate])
  last = gates.summary_lines(rep)[-1]
  if gate is None:
    assert last == "all gates pass: the taxonomy carries signal"
  else:
    assert last == f"GATES FAILED ({gate}): this taxonomy is not to be trusted"


def test_training_probe_convergence_is_reported_beside_the_gate_not_gating():
  inputs = _passing_inputs()
  on_train = {make_transfer(["normal"], "reshading"): False, "random -> normal": True}
  gate = gates.report(**inputs, converged_on_train=on_train)["gates"]["readouts_converged"]
  assert gate["passes"] is True  # only the held-out loss gates
  assert gate["train_loss_plateaued"] == (
      "1/2 readouts' loss on transfer-training probe views plateaued")
  assert "train_loss_plateaued" not in gates.report(**inputs)["gates"]["readouts_converged"]


def test_report_without_evidence():
  inputs = _passing_inputs()
  rep = gates.report(inputs["networks"], inputs["transfers"], inputs["known"])
  assert rep["trusted"] is True  # converged, paper and cohesion not given: not applicable
  assert {name for name, g in rep["gates"].items() if g["passes"] is None} == {
      "readouts_converged", "paper_agreement", "three_d_cohesion"}
  assert any("not evaluated" in line for line in gates.summary_lines(rep))
  rep = gates.report({}, inputs["transfers"], inputs["known"])
  assert rep["failed"] == ["networks"]  # a required gate with nothing to judge fails


def test_random_checks_tell_a_tie_from_a_reversal():
  # depth_zbuffer: random ranks 4th of 5 by affinity, but only a source within its interval is
  # below it (a tie); reshading: random 3rd of 4 with two sources worse beyond it (a reversal).
  known = {"evidence": {
      "depth_zbuffer": {"rank": 4, "of": 5, "num_better": 3, "passes": False,
                        "worse_sources": ["a"]},
      "reshading": {"rank": 3, "of": 4, "num_better": 2, "passes": False,
                    "worse_sources": ["c", "d"]}}, "passes": False}
  def diff(low, high):
    return {"mean": (low + high) / 2, "low": low, "high": high, "beats_random": high < 0}
  transfers = {"depth_zbuffer": {"a": diff(-0.01, 0.02), "b": diff(-0.3, -0.1),
                                 "c": diff(-0.2, 0.01), "d": diff(-0.4, -0.2)},
               "reshading": {"a": diff(-0.3, -0.1), "b": diff(-0.02, 0.01),
                             "c": diff(0.05, 0.1), "d": diff(0.01, 0.2)}}
  inputs = _passing_inputs()
  inputs["known"] = {**inputs["known"], "random_worst_two": known}
  inputs["transfers"] = {**inputs["transfers"], **transfers}
  rep = gates.report(**inputs)
  gate = rep["gates"]["random_worst_two"]
  tie, reversal = gate["evidence"]["depth_zbuffer"], gate["evidence"]["reshading"]
  assert tie["better_beyond_interval"] == ["b", "d"] and tie["worse_beyond_interval"] == []
  assert reversal["better_beyond_interval"] == ["a"]
  assert reversal["worse_beyond_interval"] == ["c", "d"]
  assert tie["rank"] == 4 and tie["passes"] is False  # the verdict stays the ranks'
  assert gate["line"] == (
      "0/2 targets right; wrong: depth_zbuffer (no source worse than random beyond the "
      "interval: a tie), reshading (2 sources worse than random beyond the interval)")
  depth_pair = rep["gates"]["depth_pair"]["evidence"]
  assert depth_pair and all("worse_beyond_interval" not in e for e in depth_pair.values())
